"""CLIP image encoders through open_clip: the image tower alone, filled from a local weights file.

Only the vision tower is built (the text tower of ViT-B-32 is 40 % of the parameters, and
images are all dsgen embeds). The file may be a whole CLIP state_dict (open_clip's or OpenAI's,
whose ``visual.*`` keys are the same; a TorchScript file of OpenAI's is read too) or the image
tower's own state_dict; the text tower's tensors are ignored. The vector is the projected image
embedding (what CLIP compares with text), L2-normalised.

OpenAI's original weights were trained with QuickGELU, LAION's and DataComp's with GELU; nothing
in a file tells which, so the ``-quickgelu`` names exist for OpenAI files (the wrong one loads but
gives worse vectors).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dsgen_core.embeddings.encoders._common import (
    CLIP_MEAN,
    CLIP_STD,
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
class ClipArch:
    config: str  # open_clip's model config name
    dimension: int


CLIP_ARCHITECTURES: dict[str, ClipArch] = {
    "clip-vit-b32": ClipArch("ViT-B-32", 512),
    "clip-vit-b32-quickgelu": ClipArch("ViT-B-32-quickgelu", 512),
    "clip-vit-b16": ClipArch("ViT-B-16", 512),
    "clip-vit-b16-quickgelu": ClipArch("ViT-B-16-quickgelu", 512),
    "clip-vit-l14": ClipArch("ViT-L-14", 768),
    "clip-vit-l14-quickgelu": ClipArch("ViT-L-14-quickgelu", 768),
}


def _build(arch: ClipArch, image_size: int | None, meta: bool = False) -> torch.nn.Module:
    no_hub_downloads()
    import open_clip  # type: ignore[import-untyped]
    import torch
    from open_clip.model import CLIPVisionCfg, _build_vision_tower  # type: ignore[import-untyped]

    cfg = open_clip.get_model_config(arch.config)
    if cfg is None:
        raise DsgenError(f"this open_clip ({open_clip.__version__}) has no model config {arch.config!r}")
    vision = dict(cfg["vision_cfg"])
    if image_size:
        vision["image_size"] = image_size
    with torch.device("meta" if meta else "cpu"):
        return _build_vision_tower(cfg["embed_dim"], CLIPVisionCfg(**vision), quick_gelu=cfg.get("quick_gelu", False)).eval()


def native_size(arch: str) -> tuple[int, int]:
    """(image size, patch size) of an architecture, from open_clip's config."""
    no_hub_downloads()
    import open_clip

    vision = (open_clip.get_model_config(CLIP_ARCHITECTURES[arch].config) or {}).get("vision_cfg", {})
    return int(vision.get("image_size", 224)), int(vision.get("patch_size", 1))


def visual_state(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The image tower's tensors of a whole-CLIP or image-only state_dict."""
    if any(k.startswith("vision_model.") for k in state):
        raise DsgenError(f"{path}: a Hugging Face transformers CLIP state_dict (vision_model.*); give open_clip's or "
                         "OpenAI's layout (visual.*)")
    if any(k.startswith("visual.") for k in state):
        return {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
    return state


def _resample(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Position embeddings of a file made at another input size, resampled to the model's grid."""
    from timm.layers import resample_abs_pos_embed

    pos, own = state.get("positional_embedding"), getattr(model, "positional_embedding", None)
    if pos is None or own is None or pos.ndim != 2 or own.ndim != 2 or pos.shape == own.shape or pos.shape[1] != own.shape[1]:
        return state
    old, new = round((pos.shape[0] - 1) ** 0.5), round((own.shape[0] - 1) ** 0.5)
    if old * old + 1 != pos.shape[0] or new * new + 1 != own.shape[0]:
        return state
    resampled = resample_abs_pos_embed(pos[None].float(), [new, new], [old, old], num_prefix_tokens=1)[0]
    return {**state, "positional_embedding": resampled}


def _fitting_arch(state: dict[str, torch.Tensor], exclude: str) -> str | None:
    if "cls_token" in state or "mask_token" in state:
        return "kind timm (a timm or DINOv2 ViT: cls_token, blocks.*)"
    for name, arch in CLIP_ARCHITECTURES.items():
        if name == exclude or name.removesuffix("-quickgelu") == exclude.removesuffix("-quickgelu"):
            continue
        try:
            model = _build(arch, None, meta=True)
        except Exception:  # noqa: BLE001 - not buildable here: not a candidate
            continue
        wrong, missing, unexpected = shape_report(model.state_dict(), state)
        if not missing and not unexpected and all(k == "positional_embedding" for k in wrong):
            return name
    return None


class OpenClipEncoder(CropEncoder):
    """A CLIP image tower from a local weights file; objects are padded box crops (see :mod:`.crops`)."""

    def __init__(self, weights: Path, *, arch: str = "clip-vit-b32", image_size: int | None = None,
                 model_version: str | None = None, pad: float = DEFAULT_PAD, batch_size: int = 32,
                 progress: bool = False) -> None:
        super().__init__(pad=pad, batch_size=batch_size, progress=progress)
        if arch not in CLIP_ARCHITECTURES:
            raise DsgenError(f"unknown open_clip architecture {arch!r}; known: {', '.join(CLIP_ARCHITECTURES)}")
        clip_arch = CLIP_ARCHITECTURES[arch]
        native, patch = native_size(arch)
        size = image_size or native
        if size < patch or size % patch:
            raise DsgenError(f"image size {size} is not a multiple of {arch}'s patch size {patch} (e.g. {native})")
        self.weights = require_file(Path(weights), f"weights file for {arch}")
        state = visual_state(read_state_dict(self.weights, arch), self.weights)

        def build(meta: bool) -> torch.nn.Module:
            try:
                return _build(clip_arch, size, meta=meta)
            except DsgenError:
                raise
            except Exception as exc:  # open_clip raises assorted errors for a size it cannot build
                raise DsgenError(f"cannot build {arch} at image size {size}: {first_line(exc)}") from exc

        self.model = load_weights(build, state, self.weights, arch, lambda s: _fitting_arch(s, arch), convert=_resample)
        self.input_hw = (size, size)
        self.mean = np.asarray(CLIP_MEAN, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(CLIP_STD, np.float32).reshape(3, 1, 1)
        self.spec = EncoderSpec(
            encoder="open_clip", model_name=arch, dimension=clip_arch.dimension,
            model_version=model_version or clip_arch.config, weights_uri=str(self.weights.resolve()),
            artifact_sha256=sha256_of(self.weights),
            preprocessing={"size": size, "resize": "bicubic, squashed to a square", "mean": list(CLIP_MEAN),
                           "std": list(CLIP_STD), "output": "projected image embedding"},
            crop_policy=crop_policy(pad))

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model(torch.from_numpy(batch)).numpy()
