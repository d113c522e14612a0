"""COCO bbox evaluation of detections against a ground truth, with per-class P/R/F1 and AP.

Definitions (all from COCOeval's accumulated ``precision`` array, area "all", max 100
detections per image, so both backends give the same numbers up to floating-point rounding;
pycocotools divides by ``tp + fp + eps``, so where faster-coco-eval has 1.0 it has 1 - 2e-16):

- ``map50_95`` is COCO's AP (mean over IoU 0.50:0.05:0.95, 101 recall points and the classes),
  ``map50`` the same at IoU 0.5 only; a class's figures are those means over that class alone.
- ``precision``, ``recall``, ``f1`` of a class: the point of its interpolated precision-recall
  curve at IoU 0.5 (sampled at COCO's 101 recall points 0, 0.01, …, 1) with the best F1; the
  first such point when several tie. Recall is therefore a multiple of 0.01, and precision is
  COCO's interpolated one (the best precision reached at that recall or beyond).
- Overall figures are the means over the classes that have ground truth (non-crowd objects),
  as Ultralytics reports them. Classes without ground truth are listed in ``per_class`` with
  ``support == 0`` and zeros, take no part in the means and have no PR curve; with no
  ground truth at all every figure is 0 (``coco_stats`` keeps COCO's ``-1`` there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsgen_core.evaluation.backends import Backend, run_cocoeval
from dsgen_core.evaluation.inputs import prepare

_AREA_ALL = 0
_MAX_DETS_100 = -1


@dataclass(frozen=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    map50: float
    map50_95: float
    support: int  # non-crowd ground-truth objects

    def to_dict(self) -> dict[str, float | int]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "map50": self.map50,
                "map50_95": self.map50_95, "support": self.support}


@dataclass(frozen=True)
class DetectionMetrics:
    precision: float
    recall: float
    f1: float
    map50: float
    map50_95: float
    per_class: dict[str, ClassMetrics]  # by category name, in category-id order
    coco_stats: list[float]  # the 12 numbers of COCOeval.summarize()
    backend: str  # "faster-coco-eval" or "pycocotools"
    # per class with ground truth: (recall points, interpolated precision at IoU 0.5)
    pr_curves: dict[str, tuple[list[float], list[float]]]

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain JSON types (the PR curves are left out: 101 points per class)."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "map50": self.map50,
            "map50_95": self.map50_95,
            "per_class": {name: m.to_dict() for name, m in self.per_class.items()},
            "coco_stats": list(self.coco_stats),
            "backend": self.backend,
        }

    def numbers(self) -> dict[str, float]:
        """Every number of the result (PR curves included), keyed by where it is: for comparing results."""
        out = {k: getattr(self, k) for k in ("precision", "recall", "f1", "map50", "map50_95")}
        for name, c in self.per_class.items():
            out.update({f"{name}.{k}": float(v) for k, v in c.to_dict().items()})
        out.update({f"coco_stats[{i}]": v for i, v in enumerate(self.coco_stats)})
        for name, (recall, precision) in self.pr_curves.items():
            out.update({f"{name}.recall[{i}]": v for i, v in enumerate(recall)})
            out.update({f"{name}.precision[{i}]": v for i, v in enumerate(precision)})
        return out


def evaluate_detections(gt: Mapping[str, Any], detections: Sequence[Mapping[str, Any]], *,
                        backend: Backend = "faster", verbose: bool = False) -> DetectionMetrics:
    """Evaluate COCO results ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``
    against the COCO dict ``gt`` (bbox IoU; crowd objects are COCO's ignore regions).

    ``backend`` is ``"faster"`` (faster-coco-eval) or ``"pycocotools"`` (the reference);
    ``verbose`` lets the backend print its progress and summary. Neither input is modified.
    Raises :class:`DsgenError` for malformed inputs, e.g. a detection naming an image or a
    category that the ground truth does not have. See the module docstring for definitions.
    """
    data = prepare(gt, detections)
    acc = run_cocoeval(data, backend, verbose=verbose)
    iou50 = int(np.flatnonzero(np.isclose(acc.iou_thresholds, 0.5))[0])
    per_iou = acc.precision[:, :, :, _AREA_ALL, _MAX_DETS_100]  # [iou, recall point, class]
    recall_points = [float(r) for r in acc.recall_points]

    per_class: dict[str, ClassMetrics] = {}
    pr_curves: dict[str, tuple[list[float], list[float]]] = {}
    for k, cat in enumerate(data.categories):
        curve = per_iou[iou50, :, k]
        if curve[0] < 0:  # COCOeval's mark for "no ground truth in this class"
            per_class[cat.name] = ClassMetrics(0.0, 0.0, 0.0, 0.0, 0.0, data.support[cat.id])
            continue
        p, r, f1 = _best_f1(curve, acc.recall_points)
        per_class[cat.name] = ClassMetrics(p, r, f1, float(curve.mean()), float(per_iou[:, :, k].mean()),
                                           data.support[cat.id])
        pr_curves[cat.name] = (recall_points, [float(v) for v in curve])

    scored = [per_class[name] for name in pr_curves]
    return DetectionMetrics(
        precision=_mean([m.precision for m in scored]),
        recall=_mean([m.recall for m in scored]),
        f1=_mean([m.f1 for m in scored]),
        map50=_mean([m.map50 for m in scored]),
        map50_95=_mean([m.map50_95 for m in scored]),
        per_class=per_class,
        coco_stats=acc.stats,
        backend=acc.backend,
        pr_curves=pr_curves,
    )


def _best_f1(precision: np.ndarray, recall: np.ndarray) -> tuple[float, float, float]:
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    i = int(np.argmax(f1))
    return float(precision[i]), float(recall[i]), float(f1[i])


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0
