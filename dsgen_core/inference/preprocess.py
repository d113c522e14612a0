"""Images in, model input out: the letterbox Ultralytics uses for fixed-size models, and its inverse."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dsgen_core.errors import DsgenError

PAD_VALUE = 114
# Ultralytics pads with 114 and scales by 1/255 in float32; the same constants keep inputs bit-identical.
_PAD = np.float32(PAD_VALUE) / np.float32(255)
_SCALE = np.float32(255)


@dataclass(frozen=True)
class LetterboxParams:
    """Where an image landed on the model input: enough to put boxes back on the original."""

    orig_shape: tuple[int, int]  # (height, width) of the original image
    gain: tuple[float, float]  # (x, y) resized / original; per axis because each side is rounded separately
    pad: tuple[int, int]  # (left, top) padding in input pixels

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``(N, 4)`` xyxy boxes from input pixels to original pixels, clipped to the image, in place."""
        (gx, gy), (left, top), (h, w) = self.gain, self.pad, self.orig_shape
        xs, ys = boxes[:, 0::2], boxes[:, 1::2]  # views, so the arithmetic below writes into boxes
        xs -= left
        xs /= gx
        ys -= top
        ys /= gy
        np.clip(xs, 0, w, out=xs)
        np.clip(ys, 0, h, out=ys)
        return boxes


def letterbox(image: np.ndarray, imgsz: int | tuple[int, int], *,
              out: np.ndarray | None = None) -> tuple[np.ndarray, LetterboxParams]:
    """Resize a BGR ``uint8`` image keeping its aspect ratio, centre it on a 114-grey canvas.

    Same arithmetic as Ultralytics ``LetterBox(auto=False)``. Returns the ``(3, H, W)`` float32 RGB
    tensor in ``[0, 1]`` (written into ``out`` when given, so a batch buffer can be reused) and the
    parameters that map boxes back.
    """
    height, width = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    h0, w0 = image.shape[:2]
    r = min(height / h0, width / w0)
    w, h = max(round(w0 * r), 1), max(round(h0 * r), 1)
    left, top = round((width - w) / 2 - 0.1), round((height - h) / 2 - 0.1)
    resized = image if (h, w) == (h0, w0) else cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    if out is None:
        out = np.empty((3, height, width), np.float32)
    # Only the border is filled: the image covers the rest (at 640 px a whole fill wrote 3.7 MB more per image).
    out[:, :top].fill(_PAD)
    out[:, top + h:].fill(_PAD)
    out[:, top:top + h, :left].fill(_PAD)
    out[:, top:top + h, left + w:].fill(_PAD)
    np.divide(resized[..., ::-1].transpose(2, 0, 1), _SCALE, out=out[:, top:top + h, left:left + w])
    return out, LetterboxParams((h0, w0), (w / w0, h / h0), (left, top))


def load_image(source: np.ndarray | Path | str) -> np.ndarray:
    """A BGR ``uint8`` ``(H, W, 3)`` array from a file or an array (grey and BGRA arrays are converted)."""
    image: np.ndarray | None  # cv2.imread gives None for a file it cannot decode
    if isinstance(source, np.ndarray):
        image = source
    else:
        path = Path(source)
        if not path.is_file():
            raise DsgenError(f"image not found: {path}")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DsgenError(f"cannot decode image {path}")
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise DsgenError(f"expected a uint8 HxW, HxWx1, HxWx3 or HxWx4 image array, got {image.dtype} {image.shape}")
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def require_local_images(files: Mapping[int, str | None], what: str) -> dict[int, str]:
    """``files`` (asset id -> image path), refused with the ids of those without a local file.

    Detectors read pixels from disk; images imported without their files (or kept only in S3)
    cannot be run through a model.
    """
    missing = [i for i, uri in files.items() if not uri or not Path(uri).is_file()]
    if missing:
        raise DsgenError(f"{len(missing)} {what} have no local file (asset ids {missing[:5]}, first: {files[missing[0]]!r}); "
                         "import them with --images")
    return {i: str(uri) for i, uri in files.items()}
