"""Any image encoder exported to ONNX, run by ONNX Runtime on the CPU.

For models dsgen has no definition of: whatever was exported with an ``(N, 3, H, W)`` float32
input and an ``(N, d)`` output (an ``(N, d, ...)`` output, a feature map, is mean-pooled over its
trailing axes; a transformer's ``(N, tokens, d)`` output is not recognisable as such, so export
the pooled vector). The input size is the model's own when it is static, else ``image_size``
(default 224). Objects are padded box crops like the other crop encoders (see :mod:`.crops`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dsgen_core.embeddings.encoders._common import IMAGENET_MEAN, IMAGENET_STD, first_line, require_file, sha256_of
from dsgen_core.embeddings.encoders.crops import DEFAULT_PAD, CropEncoder, crop_policy
from dsgen_core.embeddings.spec import EncoderSpec
from dsgen_core.errors import DsgenError

DEFAULT_ONNX_SIZE = 224


def _channels(values: Sequence[float] | None, default: Sequence[float], what: str, path: Path) -> np.ndarray:
    arr = np.asarray(default if values is None else values, dtype=np.float32)
    if arr.shape != (3,) or not np.isfinite(arr).all() or (what == "std" and (arr <= 0).any()):
        raise DsgenError(f"{path}: {what} must be three finite numbers{' above 0' if what == 'std' else ''}, got {values!r}")
    return arr.reshape(3, 1, 1)


class OnnxEncoder(CropEncoder):
    """An ONNX image encoder (see the module doc). ``mean``/``std`` default to ImageNet's; ``threads``
    is ONNX Runtime's intra-op thread count (default: the cores this process may use)."""

    def __init__(self, weights: Path, *, image_size: int | None = None, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, model_version: str | None = None, model_name: str | None = None,
                 pad: float = DEFAULT_PAD, batch_size: int = 32, progress: bool = False, threads: int | None = None) -> None:
        import onnxruntime as ort

        from dsgen_core.inference.detector import cpu_session_options

        super().__init__(pad=pad, batch_size=batch_size, progress=progress)
        self.weights = require_file(Path(weights), "ONNX model")
        try:
            self._session = ort.InferenceSession(str(self.weights), cpu_session_options(threads),
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's pybind errors share no base class narrower than Exception
            raise DsgenError(f"{self.weights}: not an ONNX model ONNX Runtime can load ({first_line(exc)})") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise DsgenError(f"{self.weights}: not an image encoder: it takes {len(inputs)} inputs "
                             f"({', '.join(i.name for i in inputs)}); expected one (N, 3, H, W) image batch")
        model_input = inputs[0]
        shape = list(model_input.shape)
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise DsgenError(f"{self.weights}: not an image encoder: input {model_input.name!r} has shape {shape} "
                             f"(rank {len(shape)}); expected (N, 3, H, W)")
        if model_input.type != "tensor(float)":
            raise DsgenError(f"{self.weights}: input {model_input.name!r} is a {model_input.type}; expected float32 "
                             "(tensor(float))")
        self._input_name = model_input.name
        batch_dim, _, h, w = shape
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            if image_size and (image_size, image_size) != (h, w):
                raise DsgenError(f"{self.weights}: the model's input is fixed at {h}x{w}; image size {image_size} "
                                 "cannot be used")
            self.input_hw = (h, w)
        else:
            size = image_size or DEFAULT_ONNX_SIZE
            if size < 1:
                raise DsgenError(f"image size must be positive, got {size}")
            self.input_hw = (size, size)
        self._fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self.mean = _channels(mean, IMAGENET_MEAN, "mean", self.weights)
        self.std = _channels(std, IMAGENET_STD, "std", self.weights)
        dimension = self._dimension()
        self.spec = EncoderSpec(
            encoder="onnx", model_name=model_name or f"onnx:{self.weights.name}", dimension=dimension,
            model_version=model_version, weights_uri=str(self.weights.resolve()),
            artifact_sha256=sha256_of(self.weights),
            preprocessing={"size": list(self.input_hw), "resize": "bicubic, squashed to the input",
                           "mean": [float(v) for v in self.mean.ravel()], "std": [float(v) for v in self.std.ravel()],
                           "output": "first output, mean-pooled over axes past the second"},
            crop_policy=crop_policy(pad))

    def _dimension(self) -> int:
        """The vector width: the output's second axis when the graph states it, else what a dummy input gives."""
        out_shape: list[Any] = list(self._session.get_outputs()[0].shape)
        if len(out_shape) == 2 and isinstance(out_shape[1], int) and out_shape[1] > 0:
            return int(out_shape[1])
        try:
            probe = self._run(np.zeros((self._fixed_batch or 1, 3, *self.input_hw), np.float32))
        except Exception as exc:  # a graph that cannot run at this size: ONNX Runtime's own error types
            raise DsgenError(f"{self.weights}: fails on a {self.input_hw[0]}x{self.input_hw[1]} input "
                             f"({first_line(exc)}); give the size it was exported for") from exc
        return int(probe.shape[1])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = np.asarray(self._session.run(None, {self._input_name: batch})[0])
        if out.ndim < 2 or out.shape[0] != len(batch):
            raise DsgenError(f"{self.weights}: not an image encoder: its output has shape {out.shape} for a batch of "
                             f"{len(batch)}; expected (N, d)")
        return out.reshape(out.shape[0], out.shape[1], -1).mean(axis=2) if out.ndim > 2 else out

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        if self._fixed_batch is None:
            return self._run(batch)
        size = self._fixed_batch
        parts = []
        for start in range(0, len(batch), size):
            chunk = batch[start:start + size]
            if len(chunk) < size:  # a fixed-batch graph gets zero rows to fill it; their outputs are dropped
                chunk = np.concatenate([chunk, np.zeros((size - len(chunk), *chunk.shape[1:]), np.float32)])
            parts.append(self._run(chunk)[:min(size, len(batch) - start)])
        return np.concatenate(parts).astype(np.float32, copy=False)
