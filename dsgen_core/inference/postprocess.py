"""Raw detect-head output of one image to :class:`Detections` in original pixels."""

from __future__ import annotations

import numpy as np

from dsgen_core.inference.detections import Detections
from dsgen_core.inference.nms import nms
from dsgen_core.inference.preprocess import LetterboxParams


def postprocess(pred: np.ndarray, params: LetterboxParams, *, conf: float, iou: float, max_det: int,
                end2end: bool = False) -> Detections:
    """Decode one image's output.

    ``pred`` is ``(4 + nc, anchors)`` with ``cx, cy, w, h`` in input pixels then one score
    per class (Ultralytics' ``Detect`` head), or ``(k, 6)`` rows ``x1, y1, x2, y2, score, class``
    when ``end2end`` (NMS-free heads such as YOLO26/YOLOv10). Scores must be above ``conf``; each
    anchor keeps its best class only; class-aware NMS at ``iou``; at most ``max_det`` boxes.
    """
    if end2end:
        rows = pred[pred[:, 4] > conf][:max_det]
        boxes, scores, class_ids = rows[:, :4].copy(), rows[:, 4].copy(), rows[:, 5].astype(np.int64)
    else:
        class_scores = pred[4:]
        best = class_scores.max(0)
        idx = np.flatnonzero(best > conf)
        scores, class_ids = best[idx], class_scores[:, idx].argmax(0)
        cx, cy, w, h = pred[:4, idx]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        keep = nms(boxes, scores, class_ids, iou, max_det)
        boxes, scores, class_ids = boxes[keep], scores[keep], class_ids[keep]
    params.to_original(boxes)
    return Detections(boxes.astype(np.float32, copy=False), scores.astype(np.float32, copy=False),
                      class_ids.astype(np.int64, copy=False))
