"""Deterministic input data for the dsgen benchmarks.

    python benchmarks/datagen.py small OUT_DIR [--scale S] [--seed N]
    python benchmarks/datagen.py large OUT_DIR [--scale S] [--seed N]

``small``: 5,000 JPEGs on disk (64x48 … 320x240) and a CVAT "COCO 1.0" JSON with exactly
35,000 boxes in 10 categories, the size of the FiftyOne import figure we compare against.
``large``: a COCO JSON with 100,000 images (referenced, not written) and exactly 1,000,000 boxes
in 80 categories, for parse/insert/query benchmarks. Both are written like a CVAT export
(``OUT_DIR/annotations/instances_default.json``, images under ``OUT_DIR/images/``).

Same arguments → same bytes: every random draw comes from numpy generators seeded by
``(seed, dataset, stream[, chunk])``. ``--scale`` multiplies image and box counts (exactly, after
rounding) so tests can run the same code on a few hundred boxes.

Other benchmark scripts import this file by path (``benchmarks`` is not a package)::

    sys.path.insert(0, str(Path(__file__).parent)); import datagen
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np
import orjson
from PIL import Image

from dsgen_core.demo.synth import coco_image_record
from dsgen_core.registry.bulk import gc_paused

SMALL_IMAGES = 5_000
SMALL_BOXES = 35_000
LARGE_IMAGES = 100_000
LARGE_BOXES = 1_000_000

SMALL_CATEGORIES: tuple[str, ...] = (
    "person", "car", "bicycle", "dog", "cat", "truck", "bus", "traffic light", "bird", "motorcycle",
)
COCO80: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)
# Small-set image sizes: widths and heights vary so resolution histograms and width filters
# have something to bucket, while staying cheap to write.
SMALL_SIZES: tuple[tuple[int, int], ...] = (
    (64, 48), (96, 72), (128, 96), (160, 120), (160, 160), (192, 144),
    (224, 168), (240, 180), (256, 192), (288, 216), (320, 240), (240, 320),
)
# Large-set resolutions (only declared, never written): typical camera and phone sizes, so that
# filters such as ``width>1024`` select a real fraction.
LARGE_SIZES: tuple[tuple[int, int], ...] = (
    (640, 480), (800, 600), (1024, 768), (1280, 720), (1280, 960),
    (1920, 1080), (2048, 1536), (3840, 2160), (4032, 3024), (1080, 1920),
)
_LARGE_SIZE_P = np.array([0.18, 0.08, 0.12, 0.2, 0.05, 0.2, 0.04, 0.05, 0.05, 0.03])

_TEMPLATES_PER_SIZE = 2
_STREAM_SMALL = 1
_STREAM_LARGE = 2

_HEADER: dict[str, Any] = {
    "licenses": [{"name": "", "id": 0, "url": ""}],
    "info": {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""},
}


@dataclass(frozen=True)
class Generated:
    """What a generator wrote."""

    root: Path
    annotations_path: Path
    images_dir: Path
    n_images: int
    n_annotations: int
    n_categories: int
    images_written: int
    json_bytes: int
    seconds: float


# --------------------------------------------------------------------------------------------
# shared pieces


class _Progress:
    """One line per 10 % so a long run shows it is alive without flooding logs."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, max(total, 1), enabled
        self.started = time.perf_counter()
        self.next_tenth = 1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        while self.next_tenth <= 10 and done * 10 >= self.next_tenth * self.total:
            print(
                f"[{self.label}] {self.next_tenth * 10:3d}%  {done:,}/{self.total:,}  "
                f"{time.perf_counter() - self.started:6.2f}s",
                flush=True,
            )
            self.next_tenth += 1


def _scaled(n: int, scale: float) -> int:
    if scale <= 0:
        raise ValueError("scale must be positive")
    return max(1, int(round(n * scale)))


def boxes_per_image(rng: np.random.Generator, n_images: int, n_boxes: int, empty_share: float) -> np.ndarray:
    """Per-image box counts that sum to exactly ``n_boxes``; about ``empty_share`` images get none."""
    counts = np.zeros(n_images, dtype=np.int64)
    nonempty = np.flatnonzero(rng.random(n_images) >= empty_share)
    if nonempty.size == 0:
        nonempty = np.arange(n_images)
    if n_boxes < nonempty.size:
        # fewer boxes than candidate images: one box each on a random subset
        counts[rng.choice(nonempty, size=n_boxes, replace=False)] = 1
        return counts
    lam = n_boxes / nonempty.size
    counts[nonempty] = np.clip(rng.poisson(lam, nonempty.size), 1, None)
    # Nudge random images up or down until the total is exact; stays Poisson-like in shape.
    while True:
        diff = int(n_boxes - counts.sum())
        if diff == 0:
            return counts
        if diff > 0:
            np.add.at(counts, rng.choice(nonempty, size=diff), 1)
        else:
            can_drop = nonempty[counts[nonempty] > 1]
            take = rng.choice(can_drop, size=min(-diff, can_drop.size), replace=False)
            counts[take] -= 1


def _category_ids(rng: np.random.Generator, n: int, n_categories: int) -> np.ndarray:
    # Zipf-like class frequencies: real datasets are imbalanced and insights should show it.
    w = 1.0 / np.arange(1, n_categories + 1) ** 0.8
    return rng.choice(n_categories, size=n, p=w / w.sum()) + 1


def _boxes(rng: np.random.Generator, widths: np.ndarray, heights: np.ndarray) -> dict[str, np.ndarray]:
    """Boxes inside their images, with CVAT-style occluded / rotation attributes."""
    n = widths.size
    bw = np.maximum(1.0, widths * rng.uniform(0.03, 0.6, n))
    bh = np.maximum(1.0, heights * rng.uniform(0.03, 0.6, n))
    x = rng.uniform(0, 1, n) * (widths - bw)
    y = rng.uniform(0, 1, n) * (heights - bh)
    x, y, bw, bh = (np.round(v, 2) for v in (x, y, bw, bh))
    occluded = rng.random(n) < 0.15
    # CVAT rectangles are rarely rotated; when they are, the angle is kept as an attribute
    rotation = np.where(rng.random(n) < 0.03, np.round(rng.uniform(0, 360, n), 1), 0.0)
    return {"x": x, "y": y, "w": bw, "h": bh, "area": np.round(bw * bh, 2), "occ": occluded, "rot": rotation}


def _annotation_dicts(
    first_id: int, image_ids: np.ndarray, cats: np.ndarray, b: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    ids = range(first_id, first_id + image_ids.size)
    return [
        {
            "id": i,
            "image_id": im,
            "category_id": c,
            "segmentation": [],
            "area": ar,
            "bbox": [x, y, w, h],
            "iscrowd": 0,
            "attributes": {"occluded": o, "rotation": r},
        }
        for i, im, c, ar, x, y, w, h, o, r in zip(
            ids,
            image_ids.tolist(),
            cats.tolist(),
            b["area"].tolist(),
            b["x"].tolist(),
            b["y"].tolist(),
            b["w"].tolist(),
            b["h"].tolist(),
            b["occ"].tolist(),
            b["rot"].tolist(),
        )
    ]


def _write_coco_stream(
    fh: BinaryIO,
    categories: tuple[str, ...],
    images: list[dict[str, Any]],
    annotation_chunks: Iterator[list[dict[str, Any]]],
) -> None:
    """Write one COCO document chunk by chunk, so a million annotations never sit in memory at once.

    The bytes equal ``orjson.dumps`` of the whole document: each chunk is a dumped list with its
    brackets stripped and the pieces joined by commas.
    """
    head = dict(_HEADER)
    head["categories"] = [{"id": i + 1, "name": c, "supercategory": ""} for i, c in enumerate(categories)]
    fh.write(orjson.dumps(head)[:-1])
    fh.write(b',"images":')
    fh.write(orjson.dumps(images))
    fh.write(b',"annotations":[')
    first = True
    for chunk in annotation_chunks:
        if not chunk:
            continue
        if not first:
            fh.write(b",")
        fh.write(memoryview(orjson.dumps(chunk))[1:-1])  # a view: no 20 MB copy per chunk
        first = False
    fh.write(b"]}")


# --------------------------------------------------------------------------------------------
# small: images on disk


def _jpeg_templates(rng: np.random.Generator) -> dict[tuple[int, int], list[bytes]]:
    """A few encoded JPEGs per size; encoding 5,000 would cost more than the import we measure."""
    out: dict[tuple[int, int], list[bytes]] = {}
    for w, h in SMALL_SIZES:
        variants = []
        for _ in range(_TEMPLATES_PER_SIZE):
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            c0, c1 = rng.uniform(30, 220, 3), rng.uniform(30, 220, 3)
            t = (xx / max(w - 1, 1))[:, :, None]
            img = c0 * (1 - t) + c1 * t + rng.normal(0, 12, (h, w, 3))
            for _ in range(4):
                bw, bh = int(rng.integers(w // 8, w // 2)), int(rng.integers(h // 8, h // 2))
                x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
                img[y0:y0 + bh, x0:x0 + bw] = rng.uniform(0, 255, 3)
            buf = io.BytesIO()
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").save(buf, format="JPEG", quality=80)
            variants.append(buf.getvalue())
        out[(w, h)] = variants
    return out


def with_comment(jpeg: bytes, text: bytes) -> bytes:
    """Insert a JPEG COM segment after SOI/APP0 so each file has its own bytes and sha256."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":  # keep JFIF's APP0 first, as the JFIF spec asks
        pos = 4 + int.from_bytes(jpeg[4:6], "big")
    if len(text) > 65533:
        raise ValueError("comment too long")
    seg = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return jpeg[:pos] + seg + jpeg[pos:]


@gc_paused()
def generate_small(out_dir: Path, *, scale: float = 1.0, seed: int = 0, progress: bool = True) -> Generated:
    """5,000 small JPEGs + exactly 35,000 boxes in 10 categories (both times ``scale``)."""
    started = time.perf_counter()
    n_images = _scaled(SMALL_IMAGES, scale)
    n_boxes = _scaled(SMALL_BOXES, scale)
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    ann_path = out_dir / "annotations" / "instances_default.json"
    images_dir.mkdir(parents=True, exist_ok=True)
    ann_path.parent.mkdir(parents=True, exist_ok=True)

    templates = _jpeg_templates(np.random.default_rng([seed, _STREAM_SMALL, 0]))
    rng = np.random.default_rng([seed, _STREAM_SMALL, 1])
    size_idx = rng.integers(0, len(SMALL_SIZES), n_images)
    variant = rng.integers(0, _TEMPLATES_PER_SIZE, n_images)
    counts = boxes_per_image(rng, n_images, n_boxes, empty_share=0.05)

    prog = _Progress("small", n_images, progress)
    images: list[dict[str, Any]] = []
    for i in range(n_images):
        w, h = SMALL_SIZES[int(size_idx[i])]
        name = f"frame_{i + 1:06d}.jpg"
        data = with_comment(templates[(w, h)][int(variant[i])], b"dsgen-bench small seed=%d image=%d" % (seed, i + 1))
        (images_dir / name).write_bytes(data)
        images.append(coco_image_record(i + 1, w, h, name))
        prog.update(i + 1)

    widths = np.array([SMALL_SIZES[k][0] for k in size_idx], dtype=np.float64)
    heights = np.array([SMALL_SIZES[k][1] for k in size_idx], dtype=np.float64)
    image_idx = np.repeat(np.arange(n_images), counts)
    arng = np.random.default_rng([seed, _STREAM_SMALL, 2])
    cats = _category_ids(arng, image_idx.size, len(SMALL_CATEGORIES))
    b = _boxes(arng, widths[image_idx], heights[image_idx])
    anns = _annotation_dicts(1, image_idx + 1, cats, b)
    with open(ann_path, "wb") as fh:
        _write_coco_stream(fh, SMALL_CATEGORIES, images, iter([anns]))
    return Generated(
        out_dir, ann_path, images_dir, n_images, len(anns), len(SMALL_CATEGORIES), n_images,
        ann_path.stat().st_size, time.perf_counter() - started,
    )


# --------------------------------------------------------------------------------------------
# large: JSON only


@gc_paused()
def generate_large(out_dir: Path, *, scale: float = 1.0, seed: int = 0, progress: bool = True) -> Generated:
    """100,000 referenced images + exactly 1,000,000 boxes in 80 categories (times ``scale``)."""
    started = time.perf_counter()
    n_images = _scaled(LARGE_IMAGES, scale)
    n_boxes = _scaled(LARGE_BOXES, scale)
    out_dir = Path(out_dir)
    ann_path = out_dir / "annotations" / "instances_default.json"
    ann_path.parent.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng([seed, _STREAM_LARGE, 0])
    size_idx = rng.choice(len(LARGE_SIZES), size=n_images, p=_LARGE_SIZE_P)
    counts = boxes_per_image(rng, n_images, n_boxes, empty_share=0.03)
    widths = np.array([s[0] for s in LARGE_SIZES], dtype=np.float64)[size_idx]
    heights = np.array([s[1] for s in LARGE_SIZES], dtype=np.float64)[size_idx]
    # Sub-folders of 10,000 like a multi-job CVAT task, so file_name carries a folder.
    images = [
        coco_image_record(i + 1, int(widths[i]), int(heights[i]), f"part_{i // 10_000:02d}/img_{i + 1:07d}.jpg")
        for i in range(n_images)
    ]
    ends = np.cumsum(counts)
    prog = _Progress("large", n_boxes, progress)

    def chunks() -> Iterator[list[dict[str, Any]]]:
        # Ten chunks of whole images holding about 10 % of the boxes each: a progress line per
        # chunk, and only a tenth of the annotation dicts alive at a time.
        targets = np.arange(1, 10) * (n_boxes / 10)
        bounds = np.concatenate(([0], np.searchsorted(ends, targets, side="left") + 1, [n_images]))
        bounds = np.minimum(np.maximum.accumulate(bounds), n_images)
        for k in range(10):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            first_ann = int(ends[lo - 1]) if lo > 0 else 0
            image_idx = np.repeat(np.arange(lo, hi), counts[lo:hi])
            crng = np.random.default_rng([seed, _STREAM_LARGE, 1, k])
            cats = _category_ids(crng, image_idx.size, len(COCO80))
            b = _boxes(crng, widths[image_idx], heights[image_idx])
            yield _annotation_dicts(first_ann + 1, image_idx + 1, cats, b)
            prog.update(first_ann + image_idx.size)

    with open(ann_path, "wb", buffering=1 << 20) as fh:
        _write_coco_stream(fh, COCO80, images, chunks())
    return Generated(
        out_dir, ann_path, out_dir / "images", n_images, int(ends[-1]) if n_images else 0, len(COCO80), 0,
        ann_path.stat().st_size, time.perf_counter() - started,
    )


GENERATORS: dict[str, Callable[..., Generated]] = {"small": generate_small, "large": generate_large}


def tree_digest(root: Path) -> str:
    """sha256 over every file's relative path and bytes: one value to compare two runs."""
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("which", choices=sorted(GENERATORS))
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply image and box counts (default 1.0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    g = GENERATORS[args.which](args.out_dir, scale=args.scale, seed=args.seed, progress=not args.quiet)
    print(
        f"{args.which}: {g.n_images:,} images ({g.images_written:,} written), {g.n_annotations:,} boxes, "
        f"{g.n_categories} categories, JSON {g.json_bytes / 1e6:.1f} MB -> {g.annotations_path} "
        f"in {g.seconds:.2f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
