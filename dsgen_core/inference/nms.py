"""Class-aware non-maximum suppression in numpy, equal to torchvision's greedy NMS per class."""

from __future__ import annotations

import numpy as np

# Candidates are settled this many at a time: one IoU matrix per block replaces a Python step per box,
# and the loop stops as soon as max_det boxes are kept, which is usually within the first block.
_BLOCK = 256


def nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    """Indices of the boxes kept, best score first.

    A box is dropped when a better-scored kept box of the same class overlaps it with IoU > ``iou``.
    ``boxes`` is ``(N, 4)`` xyxy. Ties in score keep the input order (a stable sort), as torchvision does.
    """
    order = np.argsort(-scores, kind="stable")
    b, c = boxes[order], class_ids[order]
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    kept = np.zeros(0, np.intp)
    for start in range(0, len(order), _BLOCK):
        cand = np.arange(start, min(start + _BLOCK, len(order)))
        if kept.size:
            cand = cand[~_suppressed_by(b, c, area, cand, kept, iou).any(1)]
        if not cand.size:
            continue
        within = _suppressed_by(b, c, area, cand, cand, iou)
        alive = np.ones(cand.size, bool)
        new: list[int] = []
        for i in range(cand.size):
            if alive[i]:
                new.append(i)
                if kept.size + len(new) == max_det:
                    break
                alive[i + 1:] &= ~within[i, i + 1:]
        kept = np.concatenate([kept, cand[new]])
        if kept.size >= max_det:
            break
    return order[kept]


def _suppressed_by(b: np.ndarray, c: np.ndarray, area: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                   iou: float) -> np.ndarray:
    """``(len(rows), len(cols))``: same class and IoU above the threshold."""
    br, bc = b[rows], b[cols]
    w = np.minimum(br[:, None, 2], bc[None, :, 2]) - np.maximum(br[:, None, 0], bc[None, :, 0])
    h = np.minimum(br[:, None, 3], bc[None, :, 3]) - np.maximum(br[:, None, 1], bc[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    with np.errstate(divide="ignore", invalid="ignore"):  # two empty boxes: 0/0 is NaN, which suppresses nothing
        overlap = inter / (area[rows, None] + area[None, cols] - inter)
    return (overlap > iou) & (c[rows, None] == c[None, cols])
