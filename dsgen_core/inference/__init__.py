"""Inference for Ultralytics detect models: ONNX export, ONNX Runtime and PyTorch detectors with
shared pre- and post-processing, and the parity check between an export and its checkpoint.

Importing this package is cheap: torch, Ultralytics, onnx and onnxruntime load on first use.
"""

from dsgen_core.inference.detections import Detections
from dsgen_core.inference.detector import OnnxDetector, TorchDetector
from dsgen_core.inference.onnx_export import OnnxInfo, export_onnx, read_onnx_info
from dsgen_core.inference.parity import ParityReport, check_onnx_parity, compare_detections
from dsgen_core.inference.postprocess import postprocess
from dsgen_core.inference.preprocess import LetterboxParams, letterbox, load_image, require_local_images

__all__ = [
    "Detections",
    "LetterboxParams",
    "OnnxDetector",
    "OnnxInfo",
    "ParityReport",
    "TorchDetector",
    "check_onnx_parity",
    "compare_detections",
    "export_onnx",
    "letterbox",
    "load_image",
    "postprocess",
    "read_onnx_info",
    "require_local_images",
]
