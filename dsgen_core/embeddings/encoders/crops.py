"""Encoders that see an object as a crop: cut the box (with context), resize, normalise, run a network.

DINOv2, CLIP and ONNX encoders know nothing of boxes, so an object becomes its own small image.
The crop is the box grown by ``pad`` of its size on each side (context helps these models tell a
shape from its background), clipped to the image, squashed to the square input (no centre-crop:
the whole object stays in view whatever its aspect ratio). A whole image goes through the same
resize, so ``embed_boxes(img, box)`` equals ``embed_images(img.crop(padded box))``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from PIL import Image

from dsgen_core.embeddings.encoders._common import (
    batches,
    check_batch_size,
    check_boxes,
    check_images,
    l2_normalise,
    padded_crop_box,
    progress_bar,
    split_rows,
    to_rgb,
)
from dsgen_core.embeddings.spec import EncoderSpec
from dsgen_core.errors import DsgenError

DEFAULT_PAD = 0.1


def crop_policy(pad: float) -> str:
    return f"box+pad{pad:g}"


class CropEncoder(ABC):
    """Batching, cropping and normalisation around a ``(N, 3, H, W) -> (N, d)`` forward pass."""

    spec: EncoderSpec
    input_hw: tuple[int, int]
    mean: np.ndarray
    std: np.ndarray

    def __init__(self, *, pad: float, batch_size: int, progress: bool) -> None:
        if not 0 <= pad <= 1:
            raise DsgenError(f"crop padding must be a share of the box between 0 and 1, got {pad}")
        self.pad = pad
        self.batch_size = check_batch_size(batch_size)
        self.progress = progress

    @property
    def dimension(self) -> int:
        return self.spec.dimension

    @abstractmethod
    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """Raw (not yet normalised) vectors of a ``(N, 3, H, W)`` float32 batch, as ``(N, d)`` numpy."""

    def _tensor(self, im: Image.Image, out: np.ndarray) -> None:
        h, w = self.input_hw
        resized = to_rgb(im).resize((w, h), Image.Resampling.BICUBIC)
        arr = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1)
        np.subtract(arr * np.float32(1 / 255), self.mean, out=out)
        out /= self.std

    def _embed_crops(self, crops: Sequence[Image.Image], desc: str) -> np.ndarray:
        out = np.empty((len(crops), self.dimension), np.float32)
        buffer = np.empty((self.batch_size, 3, *self.input_hw), np.float32)
        with progress_bar(len(crops), self.progress, "img" if desc == "images" else "obj", desc) as bar:
            for sl in batches(len(crops), self.batch_size):
                n = sl.stop - sl.start
                for j, im in enumerate(crops[sl]):
                    self._tensor(im, buffer[j])
                out[sl] = self._forward(buffer[:n])
                bar.update(n)
        return l2_normalise(out)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        check_images(images)
        return self._embed_crops(list(images), "images")

    def embed_boxes(self, images: Sequence[Image.Image], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        checked = check_boxes(images, boxes)
        crops: list[Image.Image] = []
        for im, arr in zip(images, checked, strict=True):
            rgb = to_rgb(im)  # once per image, not per box
            crops += [rgb.crop(padded_crop_box(b, self.pad, im.width, im.height)) for b in arr]
        vectors = self._embed_crops(crops, "objects")
        return split_rows(vectors, [len(b) for b in checked])
