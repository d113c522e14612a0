"""Image encoders: the vectors behind similarity search, from weights files on disk.

dsgen never downloads weights: every encoder is built from its definition and filled from a file
the user (or the registry, for a trained model version) gives. Four kinds:

- ``model`` (the default): :class:`BackboneEncoder`, a trained dsgen detection model's own
  features, RoI-pooled per object in one pass per image.
- ``timm``: :class:`TimmEncoder`, DINOv2 ViTs; ``open_clip``: :class:`OpenClipEncoder`, CLIP
  image towers. Objects are padded crops.
- ``onnx``: :class:`OnnxEncoder`, any image encoder exported to ONNX.

:func:`build_encoder` makes one by kind and name; :func:`encoder_from_spec` rebuilds the encoder
of a recorded embedding version and refuses a file or build that would give other vectors.
Importing this package is cheap: torch, timm, open_clip, Ultralytics and ONNX Runtime load when
an encoder is built.
"""

from dsgen_core.embeddings.encoders.backbone import BackboneEncoder
from dsgen_core.embeddings.encoders.clip_encoder import CLIP_ARCHITECTURES, OpenClipEncoder
from dsgen_core.embeddings.encoders.factory import (
    ARCHITECTURES,
    DEFAULT_ARCHITECTURE,
    KINDS,
    build_encoder,
    encoder_from_spec,
)
from dsgen_core.embeddings.encoders.onnx_encoder import OnnxEncoder
from dsgen_core.embeddings.encoders.timm_encoder import TIMM_ARCHITECTURES, TimmEncoder

__all__ = [
    "ARCHITECTURES",
    "CLIP_ARCHITECTURES",
    "DEFAULT_ARCHITECTURE",
    "KINDS",
    "TIMM_ARCHITECTURES",
    "BackboneEncoder",
    "OnnxEncoder",
    "OpenClipEncoder",
    "TimmEncoder",
    "build_encoder",
    "encoder_from_spec",
]
