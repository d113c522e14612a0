"""What every encoder shares: input checks, crops, batching, L2 normalisation, and reading weights files.

Weights files come from users, so every way a file can be wrong ends in one ``DsgenError`` line
that names the file and the problem: missing, unreadable, pickled objects instead of tensors, or
tensors of another architecture (the first offending tensor with both shapes, and how many differ).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from dsgen_core.errors import DsgenError

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Keys that wrap a state_dict in training checkpoints (timm, DINOv2, open_clip, Lightning, EMA copies).
_WRAPPERS = ("state_dict", "model", "module", "state_dict_ema", "model_ema", "teacher", "params")


def no_hub_downloads() -> None:
    """timm and open_clip reach the Hugging Face hub only for pretrained weights, which dsgen never asks for;
    the offline flags make any path that would still try fail at once instead of waiting on the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def first_line(exc: BaseException) -> str:
    """An exception as one short line: library errors span lines and carry emoji banners."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text.replace("ERROR ❌️", "").strip()
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def check_images(images: Sequence[Image.Image]) -> None:
    if isinstance(images, Image.Image):
        raise DsgenError("embed_images/embed_boxes take a sequence of PIL images; wrap a single image in a list")
    for i, im in enumerate(images):
        if not isinstance(im, Image.Image):
            raise DsgenError(f"images[{i}] is a {type(im).__name__}, not a PIL image")
        if im.width < 1 or im.height < 1:
            raise DsgenError(f"{image_name(im, i)}: image has no pixels ({im.width}x{im.height})")


def image_name(im: Image.Image, i: int) -> str:
    """The image's file when PIL opened it from one, else its position: errors must say which image."""
    return str(getattr(im, "filename", "") or f"images[{i}]")


def check_boxes(images: Sequence[Image.Image], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``boxes`` as float64 ``(k, 4)`` arrays, one per image; refused when a shape or a value is wrong."""
    check_images(images)
    if len(images) != len(boxes):
        raise DsgenError(f"embed_boxes got {len(images)} images but {len(boxes)} box arrays; give one (k, 4) array per image")
    out = []
    for i, (im, b) in enumerate(zip(images, boxes, strict=True)):
        arr = np.asarray(b, dtype=np.float64)
        if arr.size == 0:
            arr = arr.reshape(0, 4)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise DsgenError(f"{image_name(im, i)}: boxes have shape {arr.shape}, expected (k, 4) pixel x, y, w, h")
        if not np.isfinite(arr).all():
            raise DsgenError(f"{image_name(im, i)}: a box holds a non-finite value (row {int(np.argwhere(~np.isfinite(arr))[0, 0])})")
        if (arr[:, 2:] < 0).any():
            raise DsgenError(f"{image_name(im, i)}: a box has a negative width or height (row {int(np.argwhere(arr[:, 2:] < 0)[0, 0])})")
        out.append(arr)
    return out


def padded_crop_box(box: np.ndarray, pad: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The integer pixel region (left, top, right, bottom) an object is cut from: its box grown by ``pad``
    of its size on every side, clipped to the image, at least one pixel (a zero-size or outside box
    still gets the nearest pixel, so every object has a vector)."""
    x, y, w, h = (float(v) for v in box)
    px, py = w * pad, h * pad
    left = min(max(math.floor(x - px), 0), width - 1)
    top = min(max(math.floor(y - py), 0), height - 1)
    right = max(min(math.ceil(x + w + px), width), left + 1)
    bottom = max(min(math.ceil(y + h + py), height), top + 1)
    return left, top, right, bottom


def to_rgb(im: Image.Image) -> Image.Image:
    return im if im.mode == "RGB" else im.convert("RGB")


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


def batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def progress_bar(total: int, enabled: bool, unit: str, desc: str) -> Any:
    """A tqdm bar on stderr (stdout is for results), or a stand-in that ignores updates."""
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit=unit, desc=desc, leave=False)


def split_rows(vectors: np.ndarray, counts: Sequence[int]) -> list[np.ndarray]:
    return np.split(vectors, np.cumsum(counts)[:-1]) if counts else []


def check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise DsgenError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def require_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DsgenError(f"{path}: {what} not found")
    if not path.is_file():
        raise DsgenError(f"{path}: {what} is not a file")
    return path


def read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors``, ``.pth``/``.pt``/``.bin`` state_dict (possibly nested under
    ``state_dict``/``model``/...; a DataParallel ``module.`` prefix is dropped) or a TorchScript file.

    Pickles load with ``weights_only=True``: a weights file must not run code when it is read.
    """
    import torch

    require_file(path, f"weights file for {what}")
    obj: Any
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own SafetensorError, OSError or ValueError
            raise DsgenError(f"{path}: not a readable safetensors file ({first_line(exc)})") from exc
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle, zip and torch errors share no narrower base
            if "Weights only load failed" in str(exc):
                raise DsgenError(f"{path}: holds pickled Python objects, not a state_dict of tensors: not weights for "
                                 f"{what} (an Ultralytics .pt checkpoint is kind 'model')") from exc
            obj = _torchscript_state_dict(path)
            if obj is None:
                raise DsgenError(f"{path}: not a weights file (torch cannot read it: {first_line(exc)})") from None
    state = _unwrap(obj)
    if state is None:
        raise DsgenError(f"{path}: holds no tensors; expected a state_dict of {what}")
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _torchscript_state_dict(path: Path) -> dict[str, torch.Tensor] | None:
    """OpenAI's CLIP files are TorchScript archives; their parameters are an ordinary state_dict."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch deprecates TorchScript; the files remain
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    except Exception:  # noqa: BLE001 - not TorchScript either; the caller reports torch.load's error
        return None


def _unwrap(obj: Any, depth: int = 0) -> dict[str, torch.Tensor] | None:
    import torch

    if not isinstance(obj, Mapping) or depth > 3:
        return None
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if tensors and len(tensors) * 2 >= len(obj):
        return tensors
    for key in _WRAPPERS:
        inner = _unwrap(obj.get(key), depth + 1)
        if inner:
            return inner
    return tensors or None


def shape_report(own: Mapping[str, torch.Tensor], theirs: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """(wrong-shape, missing, unexpected) keys of ``theirs`` against the model's own state_dict."""
    wrong = [k for k, v in own.items() if k in theirs and tuple(theirs[k].shape) != tuple(v.shape)]
    missing = [k for k in own if k not in theirs]
    unexpected = [k for k in theirs if k not in own]
    return wrong, missing, unexpected


def load_weights(build: Callable[[bool], torch.nn.Module], state: dict[str, torch.Tensor], path: Path, arch: str,
                 fits: Callable[[dict[str, torch.Tensor]], str | None] | None = None,
                 convert: Callable[[dict[str, torch.Tensor], torch.nn.Module], dict[str, torch.Tensor]] | None = None,
                 ) -> torch.nn.Module:
    """``build(meta)`` filled with ``state`` (after ``convert(state, model)``), strictly, or a one-line refusal:
    the first tensor of another shape (both shapes) and how many differ, else the missing and unexpected
    keys. ``fits`` may name, from the file's own tensors, the known architecture it does fit.

    The model is built on the meta device and the file's tensors become its parameters: random
    initialisation of a ViT-B costs seconds and would be overwritten anyway. A model with buffers
    that no state_dict holds is built on the CPU instead.
    """


    import torch

    model = build(True)
    raw = state
    if convert is not None:
        state = convert(state, model)
    own = model.state_dict()
    wrong, missing, unexpected = shape_report(own, state)
    if wrong or missing or unexpected:
        hint = fits(raw) if fits else None
        also = f"; the file fits {hint}" if hint else ""
        if wrong:
            k = wrong[0]
            raise DsgenError(f"{path}: weights of another architecture than {arch}: {len(wrong)} of {len(own)} tensors "
                             f"have other shapes (first: {k} is {tuple(state[k].shape)} in the file, "
                             f"{tuple(own[k].shape)} in {arch}){also}")
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
        raise DsgenError(f"{path}: weights do not match {arch}: {' and '.join(parts)} of {len(own)} tensors{also}")
    # float32 copies: half-precision files would otherwise make a half-precision model, and assigned
    # tensors must not share memory with a memory-mapped file.
    state = {k: v.to(own[k].dtype if own[k].is_floating_point() else v.dtype, memory_format=torch.contiguous_format,
                     copy=True) for k, v in state.items()}
    # A NaN or infinity anywhere makes the sum one too: one fast pass per tensor, and the exact (slower)
    # test only where the sum says so, since huge finite weights could also overflow it.
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(v.sum().isfinite())
           and not bool(v.isfinite().all())]
    if bad:
        raise DsgenError(f"{path}: {len(bad)} tensors hold NaN or infinite values (first: {bad[0]})")
    model.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        model = build(False)
        model.load_state_dict(state, strict=True)
    return model.eval()


def sha256_of(path: Path) -> str:
    """The file's sha256, as the registry records model artifacts (imported late: the registry's
    module pulls in SQLAlchemy, which building an encoder does not otherwise need)."""
    from dsgen_core.ml.model_versions import file_sha256

    return file_sha256(path)
