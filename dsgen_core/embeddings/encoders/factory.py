"""Encoders by kind and name, and the same encoder again for a recorded embedding version.

An embedding version's vectors are only comparable with vectors of the very same encoder, so
rebuilding one from its spec checks the weights file's sha256 first and, once built, that it
gives the recorded dimension and the recorded spec (preprocessing, crop policy) exactly.
"""

from __future__ import annotations

import re
from pathlib import Path

from dsgen_core.embeddings.encoders._common import require_file, sha256_of
from dsgen_core.embeddings.encoders.backbone import DEFAULT_CENTRE, DEFAULT_ROI, BackboneEncoder
from dsgen_core.embeddings.encoders.clip_encoder import CLIP_ARCHITECTURES, OpenClipEncoder
from dsgen_core.embeddings.encoders.onnx_encoder import OnnxEncoder
from dsgen_core.embeddings.encoders.timm_encoder import TIMM_ARCHITECTURES, TimmEncoder
from dsgen_core.embeddings.spec import Encoder, EncoderSpec
from dsgen_core.errors import DsgenError

KINDS = ("model", "timm", "open_clip", "onnx")
# The names ``arch`` takes per kind; "model" and "onnx" read their architecture from the file.
ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "model": (),
    "timm": tuple(TIMM_ARCHITECTURES),
    "open_clip": tuple(CLIP_ARCHITECTURES),
    "onnx": (),
}
DEFAULT_ARCHITECTURE = {"timm": "dinov2-base", "open_clip": "clip-vit-b32"}
_PAD_POLICY = re.compile(r"box\+pad(\d+(?:\.\d+)?)")


def build_encoder(kind: str, *, weights: Path, arch: str | None = None, model_version: str | None = None,
                  image_size: int | None = None, batch_size: int = 32, progress: bool = False) -> Encoder:
    """An encoder of ``kind`` from a local weights file.

    - ``model``: a dsgen model version's Ultralytics ``.pt`` (the default encoder, :class:`BackboneEncoder`);
      ``image_size`` is its letterbox size (default: its training size), ``model_version`` its id (``m1``).
    - ``timm`` / ``open_clip``: ``arch`` one of ``ARCHITECTURES[kind]`` (default dinov2-base / clip-vit-b32);
      ``image_size`` the input size (default 224).
    - ``onnx``: any ONNX image encoder; ``image_size`` for a model without a fixed input size.
    """
    if kind not in KINDS:
        raise DsgenError(f"unknown encoder kind {kind!r}; known: {', '.join(KINDS)}")
    if image_size is not None and image_size < 1:
        raise DsgenError(f"image size must be positive, got {image_size}")
    if arch is not None and not ARCHITECTURES[kind]:
        raise DsgenError(f"encoder kind {kind!r} reads its architecture from the weights file; drop the architecture "
                         f"{arch!r} (architectures are for {', '.join(k for k, v in ARCHITECTURES.items() if v)})")
    weights = Path(weights)
    if kind == "model":
        return BackboneEncoder(weights, model_version=model_version, imgsz=image_size, batch_size=batch_size,
                               progress=progress)
    if kind == "timm":
        return TimmEncoder(weights, arch=arch or DEFAULT_ARCHITECTURE[kind], image_size=image_size,
                           model_version=model_version, batch_size=batch_size, progress=progress)
    if kind == "open_clip":
        return OpenClipEncoder(weights, arch=arch or DEFAULT_ARCHITECTURE[kind], image_size=image_size,
                               model_version=model_version, batch_size=batch_size, progress=progress)
    return OnnxEncoder(weights, image_size=image_size, model_version=model_version, batch_size=batch_size,
                       progress=progress)


def _pad(spec: EncoderSpec, weights: Path) -> float:
    m = _PAD_POLICY.fullmatch(spec.crop_policy)
    if m is None:
        raise DsgenError(f"{weights}: the embedding version's crop policy {spec.crop_policy!r} is not one this dsgen "
                         "knows for a crop encoder (box+padN)")
    return float(m.group(1))


def _side(value: object) -> int | None:
    """An input size recorded as 224 or [224, 224] (square inputs only)."""
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 2 and value[0] == value[1]:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise DsgenError(f"recorded input size {value!r} is not a square size this dsgen can rebuild")


def encoder_from_spec(spec: EncoderSpec, weights: Path, *, batch_size: int = 32, progress: bool = False) -> Encoder:
    """The encoder an embedding version was made with, from its weights file; refused (one line) when
    the file is not the recorded one (sha256) or the rebuilt encoder would give other vectors
    (dimension, preprocessing, crop policy)."""
    weights = require_file(Path(weights), f"weights file of encoder {spec.model_name}")
    if not spec.artifact_sha256:
        raise DsgenError(f"{weights}: the embedding version ({spec.model_name}) records no weights sha256, so the file "
                         "cannot be checked against it")
    digest = sha256_of(weights)
    if digest != spec.artifact_sha256:
        raise DsgenError(f"{weights}: sha256 {digest[:12]}… differs from the {spec.artifact_sha256[:12]}… recorded for "
                         f"{spec.model_name}; not the weights its vectors were made with")
    p = spec.preprocessing
    enc: Encoder
    if spec.encoder == "model":
        enc = BackboneEncoder(weights, model_version=spec.model_version, imgsz=p.get("imgsz"), layers=p.get("layers"),
                              head=bool(p.get("head", True)), roi=int(p.get("roi", DEFAULT_ROI)),
                              centre=float(p.get("centre", DEFAULT_CENTRE)), batch_size=batch_size, progress=progress)
    elif spec.encoder == "timm":
        enc = TimmEncoder(weights, arch=spec.model_name, image_size=_side(p.get("size")), model_version=spec.model_version,
                          pad=_pad(spec, weights), batch_size=batch_size, progress=progress)
    elif spec.encoder == "open_clip":
        enc = OpenClipEncoder(weights, arch=spec.model_name, image_size=_side(p.get("size")),
                              model_version=spec.model_version, pad=_pad(spec, weights), batch_size=batch_size,
                              progress=progress)
    elif spec.encoder == "onnx":
        # A model with a fixed (possibly non-square) input sets its own size; the spec check below compares it.
        size = p.get("size")
        square = size[0] if isinstance(size, list) and len(size) == 2 and size[0] == size[1] else None
        enc = OnnxEncoder(weights, image_size=square, mean=p.get("mean"), std=p.get("std"),
                          model_version=spec.model_version, model_name=spec.model_name, pad=_pad(spec, weights),
                          batch_size=batch_size, progress=progress)
    else:
        raise DsgenError(f"unknown encoder kind {spec.encoder!r} in the embedding version; known: {', '.join(KINDS)}")
    if enc.spec.dimension != spec.dimension:
        raise DsgenError(f"{weights}: {spec.model_name} built from it gives {enc.spec.dimension}-d vectors, the embedding "
                         f"version records {spec.dimension}-d")
    if enc.spec.fingerprint() != spec.fingerprint():
        for name in ("encoder", "model_name", "preprocessing", "crop_policy"):
            ours, theirs = getattr(enc.spec, name), getattr(spec, name)
            if ours != theirs:
                raise DsgenError(f"{weights}: the rebuilt encoder's {name} differs from the embedding version's "
                                 f"(recorded {theirs!r}, rebuilt {ours!r})")
        raise DsgenError(f"{weights}: the rebuilt encoder's fingerprint differs from the embedding version's")
    return enc
