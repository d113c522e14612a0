"""The default encoder: a trained dsgen detection model's own features, RoI-pooled per object.

Why the detector and not a general-purpose network: it is already trained on the project's own
classes and images, it is on disk (nothing to download), and one pass over an image serves every
object in it (a crop encoder runs once per object).

What is pooled, chosen on the demo benchmark (``benchmarks/bench_encoders.py``: 5-nearest-neighbour
class agreement over the demo's 930 objects, model m1; the choice held on 986 objects of demo images
m1 never saw, seed 1: 0.956, against 0.921 for P3 alone and 0.811 for P3/P4/P5):

- the finest level of the feature pyramid the Detect head reads (P3, stride 8: shape and colour
  detail; the coarser P4/P5 outputs pulled agreement down, 0.90 alone -> 0.79 with them), and
- the hidden features of the head's classification branch on each level (the last layer before
  its 1x1 class convolution): what the model learned to tell the classes apart (0.95 with P3).

Each source is RoI-aligned over the central 70 % of the box (2x2 bins; the class branch answers at
the anchor points near an object's centre, and the border mostly holds background and neighbours:
0.954 -> 0.961), pooled to its mean and its max over the bins, and each of those parts is
L2-normalised before they are concatenated (the sources have different widths and scales;
unnormalised, the widest would decide alone). A whole image is pooled the same way over the area
the letterbox filled (all of it), so padding never enters a vector.

The image goes in letterboxed exactly as the model saw it in training (``imgsz`` of its training
run, Ultralytics' grey padding) unless another size is asked for. A larger size helps small
objects (demo, trained at 160: 0.961 at 160, 0.98 at 256) at the cost of speed; it is a choice
recorded in the spec, not a default that depends on the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from PIL import Image

from dsgen_core.embeddings.encoders._common import (
    batches,
    check_batch_size,
    check_boxes,
    check_images,
    first_line,
    l2_normalise,
    progress_bar,
    require_file,
    sha256_of,
    split_rows,
    to_rgb,
)
from dsgen_core.embeddings.spec import EncoderSpec
from dsgen_core.errors import DsgenError

if TYPE_CHECKING:
    import torch

POOLINGS = ("mean", "max")
DEFAULT_ROI = 2  # bins per side of each RoI
DEFAULT_CENTRE = 0.7  # share of the box (per side) an object's RoI covers, around its centre


def model_name(model_version: str) -> str:
    return f"dsgen-backbone:{model_version}"


def load_ultralytics_checkpoint(weights: Path) -> tuple[Any, dict[str, Any]]:
    """(fused eval float32 model, checkpoint dict) of an Ultralytics ``.pt`` with a Detect-family head."""
    from dsgen_core.inference.ultralytics_env import import_ultralytics

    weights = require_file(Path(weights), "model weights (Ultralytics .pt checkpoint)")
    import_ultralytics()
    import torch
    from ultralytics.nn.modules import Detect
    from ultralytics.nn.tasks import load_checkpoint

    try:
        # An absolute path: Ultralytics re-downloads a corrupt file given by a bare official name (yolov8n.pt).
        model, ckpt = load_checkpoint(weights.resolve(), device="cpu")
    except Exception as exc:  # torch.load and Ultralytics raise many unrelated types for a bad file
        raise DsgenError(f"{weights}: not an Ultralytics model checkpoint ({first_line(exc)})") from exc
    layers = getattr(model, "model", None)
    if not isinstance(layers, torch.nn.Sequential) or not len(layers) or not isinstance(layers[-1], Detect):
        head = type(layers[-1]).__name__ if isinstance(layers, torch.nn.Sequential) and len(layers) else type(model).__name__
        raise DsgenError(f"{weights}: a model with a {head} head; the backbone encoder needs a YOLO detection "
                         "model (a Detect, Segment or Pose head)")
    return model.fuse(verbose=False).eval(), ckpt


def _class_branches(head: Any) -> list[Any] | None:
    """Each level's classification branch without its final class convolution, if the head has the usual layout."""
    import torch

    branches = getattr(head, "cv3", None)
    if not isinstance(branches, torch.nn.ModuleList) or not all(
            isinstance(b, torch.nn.Sequential) and len(b) >= 2 for b in branches):
        return None
    return [cast(torch.nn.Sequential, b)[:-1] for b in branches]


class BackboneEncoder:
    """Object and image vectors from a dsgen (Ultralytics YOLO) model version's features (see the module doc).

    ``imgsz``: letterbox size (default: the size the model was trained at). The rest rarely needs
    changing: ``layers``, the layers whose outputs are pooled (default: the finest level the head
    reads); ``head``, also pool the head's class-branch features; ``roi``, bins per RoI side;
    ``centre``, the share of each box side pooled around its centre.
    """

    def __init__(self, weights: Path, *, model_version: str | None = None, imgsz: int | None = None,
                 layers: Sequence[int] | None = None, head: bool = True, roi: int = DEFAULT_ROI,
                 centre: float = DEFAULT_CENTRE, batch_size: int = 32, progress: bool = False) -> None:
        import torch

        self.weights = require_file(Path(weights), "model weights (Ultralytics .pt checkpoint)")
        self.batch_size = check_batch_size(batch_size)
        self.progress = progress
        model, ckpt = load_ultralytics_checkpoint(self.weights)
        # oneDNN's CPU convolutions run faster on channels-last tensors: 1.37x objects/s on the demo, same vectors.
        self.model = model.to(memory_format=torch.channels_last)
        detect = self.model.model[-1]
        n_layers = len(self.model.model)
        self.layers = [int(i) for i in (layers if layers is not None else detect.f[:1])]
        if any(not 0 <= i < n_layers - 1 for i in self.layers):
            raise DsgenError(f"{self.weights}: layers {list(self.layers)} are not layers of this model "
                             f"(0..{n_layers - 2}; its head reads {list(detect.f)})")
        self._branches = _class_branches(detect) if head else None
        if head and self._branches is None:
            raise DsgenError(f"{self.weights}: its {type(detect).__name__} head has no class branch of the usual "
                             "layout; use head=False")
        self._head_inputs = [int(i) for i in detect.f] if self._branches else []
        if not self.layers and not self._branches:
            raise DsgenError("nothing to pool: give layers or keep the head's features")
        # Layers read later (by the model or by the pooling) must be kept while the forward pass runs past them.
        self._keep = set(self.model.save) | set(self.layers) | set(self._head_inputs)
        self._last = max(self.layers + self._head_inputs)
        if not 1 <= roi <= 14:
            raise DsgenError(f"roi must be 1..14 bins per side, got {roi}")
        if not 0 < centre <= 1:
            raise DsgenError(f"centre is the share of each box side pooled, 0 < centre <= 1; got {centre}")
        self.roi, self.centre = roi, centre
        max_stride = int(self.model.stride.max())
        trained = (ckpt.get("train_args") or {}).get("imgsz") or getattr(self.model, "args", {}).get("imgsz") or 640
        trained = max(trained) if isinstance(trained, (list, tuple)) else int(trained)
        self.imgsz = int(imgsz or trained)
        if self.imgsz < max_stride or self.imgsz % max_stride:
            raise DsgenError(f"imgsz {self.imgsz} is not a positive multiple of the stride {max_stride} of {self.weights}")
        with torch.inference_mode():
            probe = self._features(torch.zeros(1, 3, self.imgsz, self.imgsz))
        self.strides = [self.imgsz / f.shape[-1] for f in probe]
        self.channels = [int(f.shape[1]) for f in probe]
        dimension = sum(self.channels) * len(POOLINGS)
        self.sha256 = sha256_of(self.weights)
        version = model_version or f"sha256:{self.sha256[:12]}"
        sources = [f"layer {i}" for i in self.layers] + (
            [f"class branch of level {i}" for i in range(len(self._head_inputs))] if self._branches else [])
        self.spec = EncoderSpec(
            encoder="model", model_name=model_name(version), dimension=dimension, model_version=version,
            weights_uri=str(self.weights.resolve()), artifact_sha256=self.sha256,
            preprocessing={"imgsz": self.imgsz, "letterbox": "ultralytics (aspect kept, centred, grey 114)",
                           "layers": self.layers, "head": bool(self._branches), "sources": sources,
                           "channels": self.channels, "pooling": "+".join(POOLINGS), "roi": self.roi,
                           "centre": self.centre, "normalise": "each source and pooling"},
            crop_policy=f"roi-align {self.roi}x{self.roi} over the central {self.centre:g} of the box, "
                        f"{'+'.join(POOLINGS)} per source")

    @property
    def dimension(self) -> int:
        return self.spec.dimension

    def _features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The pooled maps: Ultralytics' forward loop stopped before the head, then the head's class branches."""
        import torch

        saved: dict[int, Any] = {}
        x: Any = image.contiguous(memory_format=torch.channels_last)
        for i, m in enumerate(self.model.model):
            if i > self._last:
                break
            if m.f != -1:
                x = saved[m.f] if isinstance(m.f, int) else [x if j == -1 else saved[j] for j in m.f]
            x = m(x)
            if i in self._keep:
                saved[i] = x
        maps = [saved[i] for i in self.layers]
        if self._branches:
            maps += [branch(saved[i]) for branch, i in zip(self._branches, self._head_inputs, strict=True)]
        return maps

    def _letterbox(self, images: Sequence[Image.Image], out: np.ndarray) -> list[Any]:
        from dsgen_core.inference.preprocess import letterbox

        params = []
        for j, im in enumerate(images):
            bgr = np.ascontiguousarray(np.asarray(to_rgb(im))[..., ::-1])  # letterbox takes OpenCV's BGR
            params.append(letterbox(bgr, self.imgsz, out=out[j])[1])
        return params

    def _pool(self, maps: list[torch.Tensor], rois: torch.Tensor) -> np.ndarray:
        """``(K, d)`` vectors of ``rois`` (``(K, 5)``: batch index, x1, y1, x2, y2 in input pixels)."""
        import torch
        from torchvision.ops import roi_align

        parts = []
        for f, stride in zip(maps, self.strides, strict=True):
            pooled = roi_align(f, rois, output_size=self.roi, spatial_scale=1 / stride, sampling_ratio=2, aligned=True)
            flat = pooled.flatten(2)
            for part in (flat.mean(2), flat.amax(2)):
                parts.append(torch.nn.functional.normalize(part, dim=1))
        return l2_normalise(torch.cat(parts, 1).numpy())

    def _run(self, images: Sequence[Image.Image], boxes: list[np.ndarray] | None, desc: str) -> np.ndarray:
        import torch

        total = sum(len(b) for b in boxes) if boxes is not None else len(images)
        out = np.empty((total, self.dimension), np.float32)
        buffer = np.empty((self.batch_size, 3, self.imgsz, self.imgsz), np.float32)
        row = 0
        with progress_bar(total, self.progress, "obj" if boxes is not None else "img", desc) as bar, torch.inference_mode():
            for sl in batches(len(images), self.batch_size):
                chunk = images[sl]
                params = self._letterbox(chunk, buffer)
                rois = []
                for j, p in enumerate(params):
                    (gx, gy), (left, top) = p.gain, p.pad
                    if boxes is None:  # the whole image: the area the letterbox filled
                        h, w = p.orig_shape
                        xywh = np.array([[0, 0, w, h]], np.float64)
                    else:
                        xywh = boxes[sl.start + j].copy()
                        xywh[:, :2] += xywh[:, 2:] * ((1 - self.centre) / 2)
                        xywh[:, 2:] *= self.centre
                    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
                    scaled = xyxy * [gx, gy, gx, gy] + [left, top, left, top]
                    rois.append(np.concatenate([np.full((len(scaled), 1), j), scaled], axis=1))
                roi_t = torch.from_numpy(np.concatenate(rois).astype(np.float32))
                if len(roi_t):
                    maps = self._features(torch.from_numpy(buffer[:len(chunk)]))
                    out[row:row + len(roi_t)] = self._pool(maps, roi_t)
                row += len(roi_t)
                bar.update(len(roi_t))
        return out

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        check_images(images)
        return self._run(list(images), None, "images")

    def embed_boxes(self, images: Sequence[Image.Image], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        checked = check_boxes(images, boxes)
        keep = [i for i, b in enumerate(checked) if len(b)]  # an image without boxes needs no forward pass
        vectors = self._run([images[i] for i in keep], [checked[i] for i in keep], "objects")
        per_kept = dict(zip(keep, split_rows(vectors, [len(checked[i]) for i in keep]), strict=True))
        return [per_kept.get(i, np.empty((0, self.dimension), np.float32)) for i in range(len(checked))]
