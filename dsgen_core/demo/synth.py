"""Deterministic synthetic dataset written exactly like a CVAT "COCO 1.0" export.

The demo data has to exercise everything a real CVAT export brings (sub-folders and spaces in
file names, polygons and uncompressed-RLE masks, custom attributes, occlusion, shapes from tracks
with ``track_id``/``keyframe``) while staying small, offline and learnable by a tiny YOLO model,
so every later stage (import, query, insights, versions, training, evaluation) can be demoed and
tested on it.

Layout of ``out_dir`` (what CVAT's "Export dataset" → "COCO 1.0" zip unpacks to)::

    annotations/instances_default.json
    images/img_000001.jpg
    images/img 000004.jpg              # spaces occur in real exports
    images/batch_2/img_000007.png      # sub-folders occur too
    images/seq_03/frame_000005.jpg     # frames of a short "video" task (tracks)

Determinism: every image draws from its own ``numpy`` generator seeded by
``(seed, batch, stream, index)``, so the same arguments give the same bytes (for one Pillow /
libjpeg build) whatever the order in which images are produced.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from PIL import Image
from pycocotools import mask as mask_utils

__all__ = ["SHAPE_KINDS", "DemoDataset", "generate_demo_dataset"]

# Shapes the generator can draw. "circle" is exported as a CVAT mask (uncompressed RLE,
# iscrowd=1); every other kind is a polygon.
SHAPE_KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "pentagon")

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 175, 55),
    "blue": (40, 75, 225),
}
_COLOR_NAMES: tuple[str, ...] = tuple(COLORS)

FRAMES_PER_SEQUENCE = 8
# Share of an object that may be hidden by objects drawn over it; above this a small detector
# cannot be expected to find it, and the demo must stay learnable.
_MAX_COVERED = 0.3
# Share of an object that must lie inside the image (the rest is cut by the border).
_MIN_INSIDE = 0.55
# Covered share from which an annotation is flagged occluded (a touching pixel is not occlusion).
_OCCLUDED_FROM = 0.05
# Probability that an object belongs to the new class in an ``add_class`` batch, high enough that
# an incremental-training demo has plenty of examples of it.
_NEW_CLASS_SHARE = 0.35
# Probabilities of 1..5 objects per still image: busy images give a small model more to learn from.
_OBJECTS_PER_STILL = np.array([0.1, 0.15, 0.25, 0.25, 0.25])


@dataclass(frozen=True)
class DemoDataset:
    """Where the generated export lies and what it holds."""

    root: Path
    annotations_path: Path
    images_dir: Path
    categories: tuple[str, ...]
    n_images: int
    n_annotations: int
    n_polygons: int
    n_masks: int
    n_occluded: int
    n_sequences: int
    n_tracks: int
    n_track_annotations: int
    class_counts: dict[str, int] = field(default_factory=dict)
    seed: int = 0
    add_class: str | None = None
    seconds: float = 0.0


@dataclass
class _Shape:
    kind: str
    cx: float
    cy: float
    size: float
    angle: float  # degrees
    color: str
    rgb: np.ndarray


@dataclass
class _Placed:
    """A shape rasterised in one image, with its annotation geometry."""

    shape: _Shape
    mask: np.ndarray  # bool HxW, the part inside the image
    polygon: list[float] | None  # flat, clipped to the image; None for masks
    covered: np.ndarray  # bool HxW, pixels hidden by shapes drawn later
    track_id: int | None = None
    keyframe: bool = False


# --------------------------------------------------------------------------------------------
# geometry


def _polygon_points(shape: _Shape) -> list[tuple[float, float]]:
    r = shape.size / 2.0
    a0 = math.radians(shape.angle)
    if shape.kind == "square":
        # r is half the side; corners lie at r*sqrt(2)
        radius, n, offset = r * math.sqrt(2.0), 4, math.pi / 4
    elif shape.kind == "triangle":
        # circumradius such that the side length is close to `size`
        radius, n, offset = shape.size / math.sqrt(3.0), 3, -math.pi / 2
    elif shape.kind == "hexagon":
        radius, n, offset = r, 6, 0.0
    elif shape.kind == "pentagon":
        radius, n, offset = r, 5, -math.pi / 2
    elif shape.kind == "star":
        pts = []
        for k in range(10):
            rad = r * 1.1 if k % 2 == 0 else r * 0.45
            a = a0 - math.pi / 2 + k * math.pi / 5
            pts.append((shape.cx + rad * math.cos(a), shape.cy + rad * math.sin(a)))
        return pts
    else:
        raise ValueError(f"no polygon for shape kind {shape.kind!r}")
    return [
        (shape.cx + radius * math.cos(a0 + offset + 2 * math.pi * k / n),
         shape.cy + radius * math.sin(a0 + offset + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _full_area(shape: _Shape) -> float:
    if shape.kind == "circle":
        return math.pi * (shape.size / 2.0) ** 2
    pts = _polygon_points(shape)
    s = 0.0
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=False):
        s += x0 * y1 - x1 * y0
    return abs(s) / 2.0


def _clip_polygon(pts: list[tuple[float, float]], w: float, h: float) -> list[tuple[float, float]]:
    """Sutherland–Hodgman against the image rectangle: CVAT never exports points outside it."""

    def clip(poly: list[tuple[float, float]], axis: int, bound: float, keep_less: bool) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        if not poly:
            return out

        def inside(p: tuple[float, float]) -> bool:
            return p[axis] <= bound if keep_less else p[axis] >= bound

        prev = poly[-1]
        for cur in poly:
            if inside(cur):
                if not inside(prev):
                    out.append(_intersect(prev, cur, axis, bound))
                out.append(cur)
            elif inside(prev):
                out.append(_intersect(prev, cur, axis, bound))
            prev = cur
        return out

    poly = pts
    poly = clip(poly, 0, 0.0, False)
    poly = clip(poly, 0, w, True)
    poly = clip(poly, 1, 0.0, False)
    poly = clip(poly, 1, h, True)
    return poly


def _intersect(p: tuple[float, float], q: tuple[float, float], axis: int, bound: float) -> tuple[float, float]:
    t = (bound - p[axis]) / (q[axis] - p[axis])
    x = p[0] + t * (q[0] - p[0])
    y = p[1] + t * (q[1] - p[1])
    return (bound, y) if axis == 0 else (x, bound)


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _pixel_centres(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    key = (w, h)
    if key not in _GRIDS:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        _GRIDS[key] = (xx + 0.5, yy + 0.5)
    return _GRIDS[key]


def _rasterise(shape: _Shape, w: int, h: int) -> tuple[np.ndarray, list[float] | None]:
    """Pixel mask of the shape inside the image, plus its exported polygon.

    Polygon masks come from pycocotools' own rasteriser applied to the exported (rounded)
    polygon, so the painted pixels are exactly what ``annToMask`` returns for the annotation.
    """
    if shape.kind == "circle":
        xx, yy = _pixel_centres(w, h)
        r = shape.size / 2.0
        return (xx - shape.cx) ** 2 + (yy - shape.cy) ** 2 <= r * r, None
    clipped = _clip_polygon(_polygon_points(shape), float(w), float(h))
    flat: list[float] = []
    last: tuple[float, float] | None = None
    for x, y in clipped:
        p = (round(x, 2), round(y, 2))
        if p != last:
            flat.extend(p)
            last = p
    if len(flat) >= 4 and flat[:2] == flat[-2:]:
        del flat[-2:]
    if len(flat) < 6:
        return np.zeros((h, w), dtype=bool), []
    rle = mask_utils.merge(mask_utils.frPyObjects([flat], h, w))
    with warnings.catch_warnings():
        # pycocotools' Cython decode trips numpy 2's __array__(copy=) deprecation on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool), flat


def _uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """CVAT's mask export: column-major run lengths starting with a run of zeros."""
    flat = mask.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0, *runs]
    return {"counts": runs, "size": [int(mask.shape[0]), int(mask.shape[1])]}


# --------------------------------------------------------------------------------------------
# scene sampling


class _Scene:
    """Shapes of one image in drawing order; enforces the learnability limits on placement."""

    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.placed: list[_Placed] = []

    def fits(self, shape: _Shape) -> tuple[np.ndarray, list[float] | None] | None:
        mask, poly = _rasterise(shape, self.w, self.h)
        n = int(mask.sum())
        if n < 20 or n < _MIN_INSIDE * _full_area(shape):
            return None
        for p in self.placed:
            total = int(p.mask.sum())
            if total and ((p.mask & (p.covered | mask)).sum() / total) > _MAX_COVERED:
                return None
        return mask, poly

    def add(self, shape: _Shape, geom: tuple[np.ndarray, list[float] | None]) -> _Placed:
        mask, poly = geom
        for p in self.placed:
            p.covered |= mask
        placed = _Placed(shape, mask, poly, np.zeros_like(mask))
        self.placed.append(placed)
        return placed


def _pick_color(rng: np.random.Generator, class_index: int) -> str:
    # Colour leans towards one per class so the insights demo finds an attribute correlation,
    # but every class comes in every colour so a detector must learn the shape.
    if rng.random() < 0.6:
        return _COLOR_NAMES[class_index % len(_COLOR_NAMES)]
    return _COLOR_NAMES[int(rng.integers(len(_COLOR_NAMES)))]


def _rgb(rng: np.random.Generator, color: str) -> np.ndarray:
    base = np.array(COLORS[color], dtype=np.float32)
    return np.clip(base + rng.uniform(-18, 18, 3), 0, 255).astype(np.float32)


def _pick_class(rng: np.random.Generator, weights: np.ndarray) -> int:
    return int(rng.choice(len(weights), p=weights))


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    # Muted colours (mixed towards grey) so the saturated shapes always stand out.
    c0 = rng.uniform(60, 200, 3)
    c1 = np.clip(c0 + rng.uniform(-70, 70, 3), 30, 225)
    c0 = 0.45 * c0 + 0.55 * c0.mean()
    c1 = 0.45 * c1 + 0.55 * c1.mean()
    xx, yy = _pixel_centres(w, h)
    a = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(a) + yy * math.sin(a)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    bg = c0[None, None, :] + (c1 - c0)[None, None, :] * t[:, :, None]
    bg = bg + rng.standard_normal((h, w, 3), dtype=np.float32) * 9.0
    return bg.astype(np.float32)


def _compose(rng: np.random.Generator, bg: np.ndarray, placed: Sequence[_Placed]) -> np.ndarray:
    img = bg.copy()
    for p in placed:
        img[p.mask] = p.shape.rgb
    # light sensor noise over everything so shape interiors are not perfectly flat
    img += rng.standard_normal(img.shape, dtype=np.float32) * 3.0
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _random_shape(
    rng: np.random.Generator, kinds: Sequence[str], weights: np.ndarray, w: int, h: int, scale: float
) -> tuple[_Shape, int]:
    ci = _pick_class(rng, weights)
    kind = kinds[ci]
    # 12..60 px, skewed towards the larger end: the smallest shapes are the hardest to learn,
    # and the demo model only gets 30 epochs
    size = (12.0 + 48.0 * float(rng.random()) ** 0.75) * scale
    if rng.random() < 0.12:
        # Cut by the border: the centre may sit a little outside the image.
        cx = float(rng.uniform(-0.2 * size, w + 0.2 * size))
        cy = float(rng.uniform(-0.2 * size, h + 0.2 * size))
    else:
        cx = float(rng.uniform(size / 2, max(size / 2 + 1, w - size / 2)))
        cy = float(rng.uniform(size / 2, max(size / 2 + 1, h - size / 2)))
    angle = 0.0 if kind == "circle" else float(
        rng.uniform(-15, 15) if kind == "square" else rng.uniform(0, 360)
    )
    color = _pick_color(rng, ci)
    return _Shape(kind, cx, cy, size, angle, color, _rgb(rng, color)), ci


# --------------------------------------------------------------------------------------------
# export records


def _annotation(
    ann_id: int, image_id: int, category_id: int, p: _Placed, h: int, w: int, size_scale: float
) -> dict[str, Any]:
    visible = int(p.mask.sum())
    covered = int((p.mask & p.covered).sum())
    attributes: dict[str, Any] = {
        # custom attributes first, then CVAT's own: the order CVAT writes them in
        "color": p.shape.color,
        "size": "small" if p.shape.size < 32.0 * size_scale else "large",
        "occluded": bool(visible and covered / visible >= _OCCLUDED_FROM),
        "rotation": 0.0,
    }
    if p.track_id is not None:
        attributes["track_id"] = p.track_id
        attributes["keyframe"] = p.keyframe
    if p.polygon is None:
        seg: Any = _uncompressed_rle(p.mask)
        rle = mask_utils.encode(np.asfortranarray(p.mask.astype(np.uint8)))
        area = float(mask_utils.area(rle))
        bbox = [float(v) for v in mask_utils.toBbox(rle)]
        iscrowd = 1
    else:
        seg = [p.polygon]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        area = float(mask_utils.area(rle))
        xs, ys = p.polygon[0::2], p.polygon[1::2]
        # CVAT derives the box from the polygon's points, not from the rasterised mask
        bbox = [min(xs), min(ys), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)]
        iscrowd = 0
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": seg,
        "area": area,
        "bbox": bbox,
        "iscrowd": iscrowd,
        "attributes": attributes,
    }


def coco_image_record(image_id: int, w: int, h: int, file_name: str) -> dict[str, Any]:
    """An ``images[]`` entry as CVAT's COCO 1.0 export writes it."""
    return {
        "id": image_id,
        "width": w,
        "height": h,
        "file_name": file_name,
        "license": 0,
        "flickr_url": "",
        "coco_url": "",
        "date_captured": 0,
    }


def _save(img: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(img, "RGB")
    if path.suffix == ".png":
        im.save(path, format="PNG", compress_level=6)
    else:
        # 4:4:4 keeps colour edges as sharp as the shapes; small shapes blur into blobs otherwise
        im.save(path, format="JPEG", quality=92, subsampling=0)


# --------------------------------------------------------------------------------------------
# plan and main entry point


@dataclass
class _Planned:
    file_name: str
    w: int
    h: int
    still_index: int | None = None  # index into the still-image stream
    seq: int | None = None
    frame: int | None = None


def _plan(
    rng: np.random.Generator, n_images: int, image_size: int, n_sequences: int, prefix: str
) -> list[_Planned]:
    s = image_size
    short = max(8, (image_size * 3) // 4)
    items: list[_Planned] = []
    for k in range(n_sequences):
        w, h = (s, short) if k % 3 == 1 else (s, s)
        for f in range(FRAMES_PER_SEQUENCE):
            items.append(_Planned(f"{prefix}seq_{k:02d}/frame_{f:06d}.jpg", w, h, seq=k, frame=f))
    n_still = n_images - len(items)
    for i in range(n_still):
        num = i + 1
        u = rng.random()
        w, h = (s, short) if u < 0.15 else (short, s) if u < 0.25 else (s, s)
        ext = ".png" if rng.random() < 0.1 else ".jpg"
        if num in (4, 13):
            name = f"{prefix}img {num:06d}{ext}"  # CVAT keeps the uploader's spaces
        elif rng.random() < 0.2:
            name = f"{prefix}batch_2/img_{num:06d}{ext}"
        else:
            name = f"{prefix}img_{num:06d}{ext}"
        items.append(_Planned(name, w, h, still_index=i))
    # CVAT orders task frames by file name (its default "lexicographical" sorting)
    items.sort(key=lambda p: p.file_name)
    return items


def _default_sequences(n_images: int) -> int:
    if n_images < 2 * FRAMES_PER_SEQUENCE:
        return 0
    return max(1, min(10, n_images // 30))


def generate_demo_dataset(
    out_dir: Path,
    *,
    n_images: int = 300,
    image_size: int = 160,
    seed: int = 0,
    classes: Sequence[str] = ("circle", "square", "triangle"),
    add_class: str | None = None,
    n_sequences: int | None = None,
) -> DemoDataset:
    """Write a CVAT "COCO 1.0"-shaped export of synthetic shapes into ``out_dir``.

    ``n_images`` counts every image, video frames included; ``n_sequences`` (default: one per
    30 images, at most 10) short sequences of 8 frames hold the tracks. ``add_class`` makes a
    *newer batch*: different images (other file names, other random streams) whose categories
    are ``classes`` plus the new one, for incremental-training demos. Existing files in
    ``out_dir`` are overwritten, others are left alone.
    """
    started = time.perf_counter()
    kinds = tuple(classes)
    for kind in kinds:
        if kind not in SHAPE_KINDS:
            raise ValueError(f"unknown class {kind!r}; known shapes: {', '.join(SHAPE_KINDS)}")
    if len(set(kinds)) != len(kinds) or not kinds:
        raise ValueError("classes must be distinct and non-empty")
    if add_class is not None:
        if add_class not in SHAPE_KINDS:
            raise ValueError(f"unknown add_class {add_class!r}; known shapes: {', '.join(SHAPE_KINDS)}")
        if add_class in kinds:
            raise ValueError(f"add_class {add_class!r} is already one of the classes")
        kinds = (*kinds, add_class)
        weights = np.full(len(kinds), (1 - _NEW_CLASS_SHARE) / (len(kinds) - 1))
        weights[-1] = _NEW_CLASS_SHARE
    else:
        weights = np.full(len(kinds), 1.0 / len(kinds))
    if n_images < 1:
        raise ValueError("n_images must be positive")
    if image_size < 32:
        raise ValueError("image_size must be at least 32")
    n_seq = _default_sequences(n_images) if n_sequences is None else n_sequences
    if n_seq * FRAMES_PER_SEQUENCE > n_images:
        raise ValueError(f"{n_seq} sequences of {FRAMES_PER_SEQUENCE} frames do not fit in {n_images} images")

    batch = zlib.crc32(add_class.encode()) if add_class else 0
    prefix = f"new_{add_class}_" if add_class else ""
    scale = image_size / 160.0

    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    ann_path = out_dir / "annotations" / "instances_default.json"
    images_dir.mkdir(parents=True, exist_ok=True)
    ann_path.parent.mkdir(parents=True, exist_ok=True)

    plan = _plan(np.random.default_rng([seed, batch, 0]), n_images, image_size, n_seq, prefix)

    # Sequences are sampled up front: all frames of one share a background and its tracks.
    seq_frames: dict[tuple[int, int], tuple[np.ndarray, list[_Placed]]] = {}
    seq_sizes = {p.seq: (p.w, p.h) for p in plan if p.seq is not None}
    next_track = 0  # CVAT numbers tracks from 0 within a task
    for k in range(n_seq):
        w, h = seq_sizes[k]
        rng = np.random.default_rng([seed, batch, 2, k])
        frames, next_track = _sample_sequence(rng, kinds, weights, w, h, scale, next_track)
        bg = _background(rng, w, h)
        for f, placed in enumerate(frames):
            seq_frames[(k, f)] = (bg, placed)

    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    class_counts = dict.fromkeys(kinds, 0)
    n_masks = n_polys = n_occ = n_track_anns = 0
    for image_id, item in enumerate(plan, start=1):
        w, h = item.w, item.h
        if item.seq is not None:
            assert item.frame is not None
            bg, placed = seq_frames[(item.seq, item.frame)]
            noise_rng = np.random.default_rng([seed, batch, 3, item.seq, item.frame])
        else:
            assert item.still_index is not None
            noise_rng = np.random.default_rng([seed, batch, 1, item.still_index])
            bg = _background(noise_rng, w, h)
            placed = _sample_still(noise_rng, kinds, weights, w, h, scale)
        _save(_compose(noise_rng, bg, placed), images_dir / item.file_name)
        images.append(coco_image_record(image_id, w, h, item.file_name))
        for p in placed:
            cat = kinds.index(p.shape.kind) + 1
            ann = _annotation(len(annotations) + 1, image_id, cat, p, h, w, scale)
            annotations.append(ann)
            class_counts[p.shape.kind] += 1
            n_masks += ann["iscrowd"]
            n_polys += 1 - ann["iscrowd"]
            n_occ += ann["attributes"]["occluded"]
            n_track_anns += p.track_id is not None

    doc = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""},
        "categories": [{"id": i + 1, "name": c, "supercategory": ""} for i, c in enumerate(kinds)],
        "images": images,
        "annotations": annotations,
    }
    ann_path.write_bytes(orjson.dumps(doc))
    return DemoDataset(
        root=out_dir,
        annotations_path=ann_path,
        images_dir=images_dir,
        categories=kinds,
        n_images=len(images),
        n_annotations=len(annotations),
        n_polygons=n_polys,
        n_masks=n_masks,
        n_occluded=n_occ,
        n_sequences=n_seq,
        n_tracks=next_track,
        n_track_annotations=n_track_anns,
        class_counts=class_counts,
        seed=seed,
        add_class=add_class,
        seconds=time.perf_counter() - started,
    )


def _sample_still(
    rng: np.random.Generator, kinds: Sequence[str], weights: np.ndarray, w: int, h: int, scale: float
) -> list[_Placed]:
    scene = _Scene(w, h)
    for _ in range(int(rng.choice(5, p=_OBJECTS_PER_STILL)) + 1):
        for _attempt in range(40):
            shape, _ = _random_shape(rng, kinds, weights, w, h, scale)
            geom = scene.fits(shape)
            if geom is not None:
                scene.add(shape, geom)
                break
    if not scene.placed:
        # every image of the demo carries at least one object; a centred one always fits
        shape, _ = _random_shape(rng, kinds, weights, w, h, scale)
        shape.cx, shape.cy, shape.size = w / 2, h / 2, max(shape.size, 16 * scale)
        scene.add(shape, _rasterise(shape, w, h))
    return scene.placed


def _sample_sequence(
    rng: np.random.Generator,
    kinds: Sequence[str],
    weights: np.ndarray,
    w: int,
    h: int,
    scale: float,
    first_track_id: int,
) -> tuple[list[list[_Placed]], int]:
    """Tracks of one short video: each object moves a few pixels (and turns a little) per frame."""
    n_frames = FRAMES_PER_SEQUENCE
    scenes = [_Scene(w, h) for _ in range(n_frames)]
    track_id = first_track_id
    n_tracks = int(rng.integers(2, 5))
    made = 0
    for _attempt in range(60):
        if made == n_tracks:
            break
        ci = _pick_class(rng, weights)
        kind = kinds[ci]
        size = float(rng.uniform(16.0, 50.0)) * scale
        cx0 = float(rng.uniform(size / 2, max(size / 2 + 1, w - size / 2)))
        cy0 = float(rng.uniform(size / 2, max(size / 2 + 1, h - size / 2)))
        speed = float(rng.uniform(1.0, 4.0)) * scale
        heading = float(rng.uniform(0, 2 * math.pi))
        angle0 = 0.0 if kind == "circle" else float(rng.uniform(-15, 15) if kind == "square" else rng.uniform(0, 360))
        spin = 0.0 if kind == "circle" else float(rng.uniform(-3, 3))
        start = int(rng.integers(0, 3)) if rng.random() < 0.3 else 0
        end = int(rng.integers(start + 2, n_frames)) if rng.random() < 0.3 else n_frames - 1
        color = _pick_color(rng, ci)
        rgb = _rgb(rng, color)
        geoms: list[tuple[_Shape, tuple[np.ndarray, list[float] | None]]] = []
        for f in range(start, end + 1):
            shape = _Shape(
                kind,
                cx0 + speed * math.cos(heading) * f,
                cy0 + speed * math.sin(heading) * f,
                size,
                angle0 + spin * f,
                color,
                rgb,
            )
            geom = scenes[f].fits(shape)
            if geom is None:
                break
            geoms.append((shape, geom))
        else:
            for f, (shape, geom) in zip(range(start, end + 1), geoms, strict=False):
                placed = scenes[f].add(shape, geom)
                placed.track_id = track_id
                # CVAT marks the frames an annotator set as keyframes; the rest are interpolated
                placed.keyframe = f == start or f == end or (f - start) % 4 == 0
            track_id += 1
            made += 1
    return [s.placed for s in scenes], track_id


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write the synthetic CVAT COCO 1.0 demo dataset.")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--n-images", type=int, default=300)
    ap.add_argument("--image-size", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--add-class", default=None, choices=list(SHAPE_KINDS))
    args = ap.parse_args(argv)
    ds = generate_demo_dataset(
        args.out_dir, n_images=args.n_images, image_size=args.image_size, seed=args.seed, add_class=args.add_class
    )
    print(
        f"{ds.n_images} images, {ds.n_annotations} annotations ({ds.n_masks} masks, {ds.n_polygons} polygons), "
        f"{ds.n_tracks} tracks in {ds.n_sequences} sequences, categories {list(ds.categories)} "
        f"-> {ds.annotations_path} in {ds.seconds:.2f}s"
    )


if __name__ == "__main__":
    main()
