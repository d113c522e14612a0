"""Runs COCOeval (bbox) on prepared data with faster-coco-eval or pycocotools.

Both implement the same COCOeval and leave the same accumulated arrays; faster-coco-eval does
the per-image matching and accumulation in C++. Everything the metrics need is read from
those arrays, so the two backends give the same numbers.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dsgen_core.errors import DsgenError
from dsgen_core.evaluation.inputs import EvalData

Backend = Literal["faster", "pycocotools"]
BACKEND_NAMES: dict[str, str] = {"faster": "faster-coco-eval", "pycocotools": "pycocotools"}


@dataclass(frozen=True)
class Accumulated:
    """What ``COCOeval.accumulate()`` and ``summarize()`` leave, for bbox evaluation.

    ``precision`` is indexed ``[iou, recall point, class, area range, max dets]`` with
    ``-1`` where a class has no ground truth in that area range; classes are in category-id
    order, area range 0 is "all" and the last max-dets entry is 100.
    """

    backend: str
    precision: np.ndarray
    iou_thresholds: np.ndarray
    recall_points: np.ndarray
    stats: list[float]


def run_cocoeval(data: EvalData, backend: Backend, *, verbose: bool = False) -> Accumulated:
    if backend not in BACKEND_NAMES:
        raise DsgenError(f"unknown evaluation backend {backend!r}: expected 'faster' or 'pycocotools'")
    categories = [{"id": c.id, "name": c.name} for c in data.categories]
    gt = {"images": data.images, "annotations": data.annotations, "categories": categories}
    dt = {"images": data.images, "annotations": data.detections, "categories": categories}
    # pycocotools prints a dozen lines per run on stdout; faster-coco-eval is told to print
    # there too, so one switch silences or shows both.
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        evaluator = _faster(gt, dt) if backend == "faster" else _pycocotools(gt, dt)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    params = evaluator.params
    return Accumulated(
        backend=BACKEND_NAMES[backend],
        precision=np.asarray(evaluator.eval["precision"], dtype=np.float64),
        iou_thresholds=np.asarray(params.iouThrs, dtype=np.float64),
        recall_points=np.asarray(params.recThrs, dtype=np.float64),
        stats=[float(s) for s in evaluator.stats[:12]],
    )


# The backends are imported when used: a caller of one should not pay for loading the other.
def _faster(gt: dict[str, Any], dt: dict[str, Any]) -> Any:
    from faster_coco_eval import COCO, COCOeval_faster

    return COCOeval_faster(COCO(gt, print_function=print), COCO(dt, print_function=print), iouType="bbox",
                           print_function=print)


def _pycocotools(gt: dict[str, Any], dt: dict[str, Any]) -> Any:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_gt, coco_dt = COCO(), COCO()
    coco_gt.dataset, coco_dt.dataset = gt, dt
    coco_gt.createIndex()
    coco_dt.createIndex()
    return COCOeval(coco_gt, coco_dt, iouType="bbox")
