"""Class confusion matrix of detections, in Ultralytics' layout.

Rows are predicted classes and columns true classes, both in category-id order, with one
extra last index for background: a ground-truth object that no detection matched counts in
the background row, a detection that matched nothing in the background column.

Per image, detections scoring at least ``conf`` are matched to non-crowd ground truth
class-agnostically and greedily: pairs with IoU >= ``iou`` are taken in decreasing IoU
(ties go to the higher-scored detection), each detection and object at most once. An
unmatched detection lying on a crowd region (intersection over the detection's area >=
``iou``, COCO's crowd rule) is not counted, as COCOeval ignores it; crowd objects are never
counted themselves.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dsgen_core.errors import DsgenError
from dsgen_core.evaluation.inputs import prepare


def confusion_matrix(gt: Mapping[str, Any], detections: Sequence[Mapping[str, Any]], *, iou: float = 0.5,
                     conf: float = 0.25) -> tuple[np.ndarray, list[str]]:
    """``(matrix, names)``: an ``(nc+1) x (nc+1)`` int64 count matrix and the ``nc`` class names.

    ``gt`` is a COCO dict and ``detections`` a COCO results list, as for
    :func:`~dsgen_core.evaluation.coco_metrics.evaluate_detections`.
    """
    if not 0.0 < iou <= 1.0:
        raise DsgenError(f"confusion matrix IoU threshold must be in (0, 1], got {iou!r}")
    if not math.isfinite(conf):
        raise DsgenError(f"confusion matrix confidence threshold must be a finite number, got {conf!r}")
    data = prepare(gt, detections)
    index = {c.id: k for k, c in enumerate(data.categories)}
    matrix = np.zeros((len(index) + 1, len(index) + 1), dtype=np.int64)
    objects: dict[int, list[dict[str, Any]]] = defaultdict(list)
    crowds: dict[int, list[dict[str, Any]]] = defaultdict(list)
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ann in data.annotations:
        (crowds if ann["iscrowd"] else objects)[ann["image_id"]].append(ann)
    for det in data.detections:
        if det["score"] >= conf:
            found[det["image_id"]].append(det)
    for image_id in objects.keys() | found.keys():
        _count_image(matrix, objects[image_id], crowds[image_id], found[image_id], index, iou)
    return matrix, [c.name for c in data.categories]


def _count_image(matrix: np.ndarray, objects: list[dict[str, Any]], crowds: list[dict[str, Any]],
                 dets: list[dict[str, Any]], index: dict[int, int], iou: float) -> None:
    background = matrix.shape[0] - 1
    dets = sorted(dets, key=lambda d: -d["score"])
    d_boxes, g_boxes = _boxes(dets), _boxes(objects)
    d_cls = np.array([index[d["category_id"]] for d in dets], dtype=np.int64)
    g_cls = np.array([index[a["category_id"]] for a in objects], dtype=np.int64)

    inter = _intersection(d_boxes, g_boxes)
    union = _area(d_boxes)[:, None] + _area(g_boxes)[None, :] - inter
    ious = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    d_idx, g_idx = np.nonzero(ious >= iou)  # row-major: detections in score order
    order = np.argsort(-ious[d_idx, g_idx], kind="stable")
    d_used = np.zeros(len(dets), dtype=bool)
    g_used = np.zeros(len(objects), dtype=bool)
    for d, g in zip(d_idx[order], g_idx[order], strict=False):
        if not d_used[d] and not g_used[g]:
            d_used[d] = g_used[g] = True
            matrix[d_cls[d], g_cls[g]] += 1
    np.add.at(matrix, (background, g_cls[~g_used]), 1)

    on_crowd = np.zeros(len(dets), dtype=bool)
    if crowds:
        d_area = _area(d_boxes)[:, None]
        inter = _intersection(d_boxes, _boxes(crowds))
        ioa = np.divide(inter, d_area, out=np.zeros_like(inter), where=d_area > 0)
        on_crowd = (ioa >= iou).any(axis=1)
    np.add.at(matrix, (d_cls[~d_used & ~on_crowd], background), 1)


def _boxes(anns: list[dict[str, Any]]) -> np.ndarray:
    return np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)


def _area(boxes: np.ndarray) -> np.ndarray:
    return boxes[:, 2] * boxes[:, 3]


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas of xywh boxes, ``len(a) x len(b)``."""
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    bottom = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    return np.clip(right - left, 0.0, None) * np.clip(bottom - top, 0.0, None)
