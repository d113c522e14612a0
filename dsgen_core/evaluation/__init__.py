"""Detection evaluation: COCO metrics, a confusion matrix and their charts.

- :func:`dsgen_core.evaluation.coco_metrics.evaluate_detections` — COCO mAP with per-class
  precision/recall/F1, on faster-coco-eval or pycocotools (same numbers).
- :func:`dsgen_core.evaluation.confusion.confusion_matrix` — Ultralytics-style class confusion.
- :mod:`dsgen_core.evaluation.charts` — PR-curve and confusion-matrix PNGs.

Importing this package imports neither matplotlib nor a COCO backend; those load when used.
"""

from dsgen_core.evaluation.coco_metrics import ClassMetrics, DetectionMetrics, evaluate_detections
from dsgen_core.evaluation.confusion import confusion_matrix

__all__ = ["ClassMetrics", "DetectionMetrics", "confusion_matrix", "evaluate_detections"]
