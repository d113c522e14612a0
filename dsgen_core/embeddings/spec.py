"""What an encoder is to the rest of dsgen: a spec that decides its vectors, and two calls.

An embedding version records the spec; its fingerprint goes into the Chroma collection, so vectors
of two different encoders are never mixed in one collection.

    enc = build_encoder("model", weights=best_pt, model_version="m1")   # dsgen_core.embeddings.encoders
    vecs = enc.embed_images([img1, img2])                     # (2, d) float32, unit length
    per_image = enc.embed_boxes([img1], [np.array([[x, y, w, h], ...])])   # [(k, d)]
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import orjson
from PIL import Image


@dataclass(frozen=True)
class EncoderSpec:
    """Everything that decides a vector; recorded on the embedding version."""

    encoder: str  # model | timm | open_clip | onnx
    model_name: str  # "dsgen-backbone:m1", "dinov2-base", "clip-vit-b32", "onnx:<file name>"
    dimension: int
    model_version: str | None = None  # the dsgen model version's human id, or the architecture's tag
    weights_uri: str | None = None
    artifact_sha256: str | None = None  # sha256 of the weights file
    preprocessing: dict[str, Any] = field(default_factory=dict)  # input size, mean/std, resize mode
    crop_policy: str = "box"  # how an object becomes an input: "box", "box+pad0.1", "roi-pool"

    def fingerprint(self) -> str:
        """sha256 over the fields that decide a vector (not the file's path: a moved file is the same encoder)."""
        body = {"encoder": self.encoder, "model_name": self.model_name, "dimension": self.dimension,
                "sha256": self.artifact_sha256, "preprocessing": self.preprocessing, "crop_policy": self.crop_policy}
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Encoder(Protocol):
    """An image encoder. Vectors are float32 and L2-normalised (Chroma's cosine space)."""

    spec: EncoderSpec

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """One vector per whole image: shape (len(images), dimension)."""
        ...

    def embed_boxes(self, images: Sequence[Image.Image], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """For each image, one vector per box (``boxes[i]`` is (k, 4) pixel x, y, w, h): shapes (k_i, dimension)."""
        ...
