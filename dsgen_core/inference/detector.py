"""Detectors for Ultralytics detect models: ONNX Runtime and PyTorch behind one pre- and post-processing.

Both letterbox to the model's fixed input, run it, then decode with :func:`postprocess`, so their
outputs differ only by what the runtimes compute. Images are BGR ``uint8`` arrays (OpenCV's order,
as Ultralytics takes them) or paths.
"""

from __future__ import annotations

import ast
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsgen_core.errors import DsgenError
from dsgen_core.inference.detections import Detections
from dsgen_core.inference.postprocess import postprocess
from dsgen_core.inference.preprocess import LetterboxParams, letterbox, load_image
from dsgen_core.inference.ultralytics_env import import_ultralytics

if TYPE_CHECKING:
    from ultralytics.nn.tasks import DetectionModel

__all__ = ["Detections", "OnnxDetector", "TorchDetector", "letterbox"]

ImageSource = np.ndarray | Path | str


class _Detector(ABC):
    """The batching loop both runtimes share; subclasses set the attributes and ``_forward``.

    Each thread reuses an input buffer of its own across calls, so threads may share a detector
    (an inference endpoint serves concurrent requests with one): ONNX Runtime's ``run`` is thread-safe.
    """

    names: dict[int, str]
    imgsz: int  # longest side of the model input
    _input_hw: tuple[int, int]
    _fixed_batch: int | None  # None: the model takes any batch size
    _end2end: bool

    def __init__(self, *, conf: float, iou: float, max_det: int) -> None:
        self.conf, self.iou, self.max_det = conf, iou, max_det
        self._local = threading.local()

    @abstractmethod
    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """The model's first output for a ``(B, 3, H, W)`` float32 batch, as numpy."""

    def _buffer(self, size: int) -> np.ndarray:
        """This thread's ``(size, 3, H, W)`` input buffer."""
        buffer: np.ndarray | None = getattr(self._local, "buffer", None)
        if buffer is None or buffer.shape[0] != size:
            # Zeros, not empty: a fixed-batch model also computes the unused rows, and garbage can be slow denormals.
            buffer = self._local.buffer = np.zeros((size, 3, *self._input_hw), np.float32)
        return buffer

    def predict(self, images: Sequence[ImageSource], batch: int = 1, *, conf: float | None = None,
                iou: float | None = None) -> list[Detections]:
        """Detections for each image, in order. ``batch`` images go through the model at once when
        it takes a dynamic batch; a fixed-batch model (the ONNX export's default) sets its own.
        ``conf`` and ``iou`` override the detector's thresholds for this call."""
        if isinstance(images, (str, Path)) or (isinstance(images, np.ndarray) and images.ndim < 4):
            raise DsgenError("predict takes a sequence of images; wrap a single image in a list")
        if batch < 1:
            raise DsgenError(f"batch must be at least 1, got {batch}")
        conf = self.conf if conf is None else conf
        iou = self.iou if iou is None else iou
        size = self._fixed_batch or batch
        buffer = self._buffer(size)
        results: list[Detections] = []
        for start in range(0, len(images), size):
            chunk = images[start:start + size]
            params: list[LetterboxParams] = [letterbox(load_image(src), self._input_hw, out=buffer[i])[1]
                                             for i, src in enumerate(chunk)]
            # A fixed-batch model gets the whole buffer; rows past the chunk hold stale images and are ignored.
            out = self._forward(buffer if self._fixed_batch else buffer[:len(chunk)])
            results += [postprocess(out[i], p, conf=conf, iou=iou, max_det=self.max_det,
                                    end2end=self._end2end) for i, p in enumerate(params)]
        return results


def default_threads() -> int:
    """The cores this process may run on (affinity-aware, unlike ``os.cpu_count``)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


SPIN_ENV = "DSGEN_ORT_SPIN"


def cpu_session_options(threads: int | None = None, *, spin: bool | None = None) -> Any:
    """ONNX Runtime options for CPU inference beside other work on few cores.

    By default workers sleep between parallel sections: spinning ones would busy-wait after each
    run, taking the cores that decode and letterbox the next image (or another job's); on a shared
    2-core machine spinning cut throughput by a third to a half. ``spin`` (default: ``$DSGEN_ORT_SPIN``
    = 1) lets them spin within a run and stop when it ends: on cores nothing else wants, about a
    tenth faster for a tenth more CPU (benchmarks/README.md, bench_inference).
    """
    import onnxruntime as ort

    if spin is None:
        spin = os.environ.get(SPIN_ENV, "").strip().lower() in ("1", "true", "yes")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if spin:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


class OnnxDetector(_Detector):
    """An Ultralytics detect model exported to ONNX, run by ONNX Runtime on the CPU.

    ``names`` and the input size come from the metadata Ultralytics writes into the file.
    ``threads`` is ONNX Runtime's intra-op thread count (default: the cores this process may use);
    ``spin``: see :func:`cpu_session_options`.
    """

    def __init__(self, path: Path, *, conf: float = 0.25, iou: float = 0.7, max_det: int = 300,
                 threads: int | None = None, spin: bool | None = None) -> None:
        import onnxruntime as ort

        super().__init__(conf=conf, iou=iou, max_det=max_det)
        self.path = Path(path)
        if not self.path.is_file():
            raise DsgenError(f"ONNX model not found: {self.path}")
        options = cpu_session_options(threads, spin=spin)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # a YOLO graph is one chain; parallelism is intra-op
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's pybind errors share no base class narrower than Exception
            raise DsgenError(f"cannot load ONNX model {self.path}: {exc}") from exc
        meta = self._session.get_modelmeta().custom_metadata_map
        if "names" not in meta or "imgsz" not in meta:
            raise DsgenError(f"{self.path} has no Ultralytics metadata (names, imgsz); export it with dsgen or Ultralytics")
        if meta.get("task", "detect") != "detect" or meta.get("head") == "RTDETRDecoder":
            raise DsgenError(f"{self.path} is a {meta['task']} model with a {meta.get('head')} head; "
                             "only YOLO detect models are supported")
        self.names = {int(k): str(v) for k, v in ast.literal_eval(meta["names"]).items()}
        self._end2end = meta.get("end2end") == "True"
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        batch_dim, _, h, w = model_input.shape
        # Symbolic dimensions (a dynamic export) are strings; the size it was exported at is in the metadata.
        self._input_hw = (h, w) if isinstance(h, int) and isinstance(w, int) else tuple(ast.literal_eval(meta["imgsz"]))
        self._fixed_batch = batch_dim if isinstance(batch_dim, int) else None
        self.imgsz = max(self._input_hw)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input_name: batch})[0]


class TorchDetector(_Detector):
    """The PyTorch module of an Ultralytics ``.pt`` checkpoint (fused, eval, float32, CPU) with the
    same pre- and post-processing as :class:`OnnxDetector`: the reference its exports are held to.
    It runs on torch's global thread setting (``torch.set_num_threads``)."""

    def __init__(self, weights: Path, *, imgsz: int, conf: float = 0.25, iou: float = 0.7,
                 max_det: int = 300) -> None:
        super().__init__(conf=conf, iou=iou, max_det=max_det)
        self.weights = Path(weights)
        model = load_detect_checkpoint(self.weights)
        stride = int(model.stride.max())
        if imgsz <= 0 or imgsz % stride:
            raise DsgenError(f"imgsz {imgsz} is not a positive multiple of the stride {stride} of {self.weights}")
        self._model = model
        self.names = dict(model.names)
        self.imgsz = imgsz
        self._input_hw = (imgsz, imgsz)
        self._fixed_batch = None
        self._end2end = bool(model.end2end)  # still True when the checkpoint kept only its one-to-one head

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self._model(torch.from_numpy(batch))
        # Outside export mode the head also returns its raw per-level maps.
        return (out[0] if isinstance(out, (tuple, list)) else out).numpy()


def load_detect_checkpoint(weights: Path) -> DetectionModel:
    """The fused, eval-mode float32 model of an Ultralytics detect checkpoint; a user-facing error otherwise."""
    if weights.suffix != ".pt":
        raise DsgenError(f"expected an Ultralytics .pt checkpoint, got {weights}")
    if not weights.is_file():
        raise DsgenError(f"checkpoint not found: {weights}")
    import_ultralytics()
    from ultralytics.nn.tasks import load_checkpoint

    try:
        # An absolute path: Ultralytics re-downloads a corrupt file given by a bare official name (yolov8n.pt).
        model, _ = load_checkpoint(weights.resolve(), device="cpu")
    except Exception as exc:  # torch.load and Ultralytics raise many unrelated types for a bad file
        raise DsgenError(f"cannot load checkpoint {weights}: {exc}") from exc
    from ultralytics.nn.modules import Detect

    if getattr(model, "task", None) != "detect" or not isinstance(model.model[-1], Detect):
        raise DsgenError(f"{weights} is a {getattr(model, 'task', 'unknown')} model with a "
                         f"{type(model.model[-1]).__name__} head; only YOLO detect models are supported")
    # The head export_onnx traces: Ultralytics exports NMS-free models (YOLO26, YOLOv10) with their
    # one-to-many branch unless told nms=False, and fusing drops the branch not selected.
    model.end2end = False
    return model.fuse(verbose=False).eval()
