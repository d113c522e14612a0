"""DINOv2 through timm, built from its definition and filled from a weights file the user gives.

timm builds the architecture offline (``pretrained=False``); the file may be timm's own state_dict
or Meta's original DINOv2 layout (timm's filter converts it), ``.safetensors`` or a pickle. The
model is built for the chosen input size (default 224 rather than DINOv2's native 518: 5x fewer
tokens) and the file's position embeddings are resampled to that grid when loading.

The vector is the CLS token after the final norm (DINOv2's global descriptor; its linear probes
add the mean patch token, which mostly adds dimensions for retrieval), L2-normalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from dsgen_core.embeddings.encoders._common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    first_line,
    load_weights,
    no_hub_downloads,
    read_state_dict,
    require_file,
    sha256_of,
    shape_report,
)
from dsgen_core.embeddings.encoders.crops import DEFAULT_PAD, CropEncoder, crop_policy
from dsgen_core.embeddings.spec import EncoderSpec
from dsgen_core.errors import DsgenError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TimmArch:
    timm_name: str
    dimension: int
    patch: int = 14


TIMM_ARCHITECTURES: dict[str, TimmArch] = {
    "dinov2-small": TimmArch("vit_small_patch14_dinov2", 384),
    "dinov2-base": TimmArch("vit_base_patch14_dinov2", 768),
    "dinov2-large": TimmArch("vit_large_patch14_dinov2", 1024),
    "dinov2-small-reg4": TimmArch("vit_small_patch14_reg4_dinov2", 384),
    "dinov2-base-reg4": TimmArch("vit_base_patch14_reg4_dinov2", 768),
    "dinov2-large-reg4": TimmArch("vit_large_patch14_reg4_dinov2", 1024),
}
DEFAULT_TIMM_SIZE = 224


def _build(arch: TimmArch, image_size: int, meta: bool = False) -> torch.nn.Module:
    no_hub_downloads()
    import timm
    import torch

    with torch.device("meta" if meta else "cpu"):
        model = timm.create_model(arch.timm_name, pretrained=False, num_classes=0, img_size=image_size)
    return model.eval()


def _filter(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's own conversion: Meta's DINOv2 layout to timm's, position embeddings resampled to the model's grid."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    try:
        state = dict(checkpoint_filter_fn(state, cast(Any, model)))
    except Exception:  # noqa: BLE001 - a file of another layout: the shape check that follows names what is wrong
        pass
    return {k: v for k, v in state.items() if not k.startswith(("head.", "fc_norm."))}  # a classifier dsgen never uses


def _fitting_arch(state: dict[str, torch.Tensor], exclude: str) -> str | None:
    """The known architecture a mismatched file does fit (built on the meta device: no memory, no time)."""
    if any(k.startswith("visual.") for k in state) or "class_embedding" in state:
        return "kind open_clip (a CLIP image tower: class_embedding, transformer.resblocks.*)"
    for name, arch in TIMM_ARCHITECTURES.items():
        if name == exclude:
            continue
        try:
            model = _build(arch, DEFAULT_TIMM_SIZE, meta=True)
        except Exception:  # noqa: BLE001 - an architecture this timm cannot build on meta is simply not a candidate
            continue
        wrong, missing, unexpected = shape_report(model.state_dict(), _filter(state, model))
        if not (wrong or missing or unexpected):
            return name
    return None


class TimmEncoder(CropEncoder):
    """A DINOv2 ViT from a local weights file; objects are padded box crops (see :mod:`.crops`)."""

    def __init__(self, weights: Path, *, arch: str = "dinov2-base", image_size: int | None = None,
                 model_version: str | None = None, pad: float = DEFAULT_PAD, batch_size: int = 32,
                 progress: bool = False) -> None:
        super().__init__(pad=pad, batch_size=batch_size, progress=progress)
        if arch not in TIMM_ARCHITECTURES:
            raise DsgenError(f"unknown timm architecture {arch!r}; known: {', '.join(TIMM_ARCHITECTURES)}")
        spec_arch = TIMM_ARCHITECTURES[arch]
        size = image_size or DEFAULT_TIMM_SIZE
        if size < spec_arch.patch or size % spec_arch.patch:
            raise DsgenError(f"image size {size} is not a multiple of {arch}'s patch size {spec_arch.patch} (e.g. 224)")
        self.weights = require_file(Path(weights), f"weights file for {arch}")
        state = read_state_dict(self.weights, arch)

        def build(meta: bool) -> torch.nn.Module:
            try:
                return _build(spec_arch, size, meta=meta)
            except Exception as exc:  # timm raises assorted errors for a size it cannot build
                raise DsgenError(f"cannot build {arch} at image size {size}: {first_line(exc)}") from exc

        self.model: Any = load_weights(build, state, self.weights, arch, lambda s: _fitting_arch(s, arch), convert=_filter)
        self.input_hw = (size, size)
        self.mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(IMAGENET_STD, np.float32).reshape(3, 1, 1)
        self.spec = EncoderSpec(
            encoder="timm", model_name=arch, dimension=spec_arch.dimension,
            model_version=model_version or spec_arch.timm_name, weights_uri=str(self.weights.resolve()),
            artifact_sha256=sha256_of(self.weights),
            preprocessing={"size": size, "resize": "bicubic, squashed to a square", "mean": list(IMAGENET_MEAN),
                           "std": list(IMAGENET_STD), "output": "cls token after the final norm"},
            crop_policy=crop_policy(pad))

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            feats = self.model.forward_features(torch.from_numpy(batch))
            return self.model.forward_head(feats, pre_logits=True).numpy()
