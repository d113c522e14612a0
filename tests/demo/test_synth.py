"""The synthetic CVAT export and the benchmark data generators: shape, consistency, determinism."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from dsgen_core.demo import DemoDataset, generate_demo_dataset

# pycocotools' decode (annToMask) warns on every call under numpy 2; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

REPO = Path(__file__).resolve().parents[2]
N_IMAGES = 48


def _digest_images(images_dir: Path) -> dict[str, str]:
    return {
        p.relative_to(images_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(images_dir.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoDataset:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo"), n_images=N_IMAGES, n_sequences=2, seed=7)


@pytest.fixture(scope="module")
def coco(demo: DemoDataset) -> COCO:
    return COCO(str(demo.annotations_path))


def test_layout_and_top_level_like_cvat(demo: DemoDataset) -> None:
    assert demo.annotations_path == demo.root / "annotations" / "instances_default.json"
    doc = json.loads(demo.annotations_path.read_bytes())
    assert list(doc) == ["licenses", "info", "categories", "images", "annotations"]
    assert doc["licenses"] == [{"name": "", "id": 0, "url": ""}]
    assert doc["info"] == {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""}
    assert doc["categories"] == [
        {"id": 1, "name": "circle", "supercategory": ""},
        {"id": 2, "name": "square", "supercategory": ""},
        {"id": 3, "name": "triangle", "supercategory": ""},
    ]
    im = doc["images"][0]
    assert list(im) == ["id", "width", "height", "file_name", "license", "flickr_url", "coco_url", "date_captured"]
    assert [i["id"] for i in doc["images"]] == list(range(1, N_IMAGES + 1))
    assert [a["id"] for a in doc["annotations"]] == list(range(1, len(doc["annotations"]) + 1))
    ann = doc["annotations"][0]
    assert list(ann) == ["id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd", "attributes"]
    names = [i["file_name"] for i in doc["images"]]
    assert any(" " in n for n in names), "CVAT exports carry spaces in file names"
    assert any(n.startswith("batch_2/") for n in names)
    assert any(n.startswith("seq_01/frame_") for n in names)


def test_counts_match_the_returned_summary(demo: DemoDataset, coco: COCO) -> None:
    assert demo.n_images == len(coco.imgs) == N_IMAGES
    assert demo.n_annotations == len(coco.anns) > N_IMAGES
    assert demo.n_masks + demo.n_polygons == demo.n_annotations
    assert demo.n_masks > 0 and demo.n_polygons > 0
    assert sum(demo.class_counts.values()) == demo.n_annotations
    assert demo.n_sequences == 2
    assert demo.categories == ("circle", "square", "triangle")
    # stills always hold 1..5 shapes; only frames of a video may be empty
    for img in coco.dataset["images"]:
        n = len(coco.getAnnIds(imgIds=[img["id"]]))
        if not img["file_name"].startswith("seq_"):
            assert 1 <= n <= 5


def test_every_annotation_decodes_and_is_consistent(coco: COCO) -> None:
    cats = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    for ann in coco.dataset["annotations"]:
        img = coco.imgs[ann["image_id"]]
        h, w = img["height"], img["width"]
        mask = coco.annToMask(ann)
        assert mask.shape == (h, w)
        assert int(mask.sum()) == ann["area"] > 0
        ys, xs = np.nonzero(mask)
        mask_box = [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        x, y, bw, bh = ann["bbox"]
        assert x >= 0 and y >= 0 and x + bw <= w + 1e-6 and y + bh <= h + 1e-6
        # polygon boxes come from the points (as CVAT does), so a sharp tip may poke out of the
        # rasterised mask by a pixel or so
        assert max(abs(float(a) - float(b)) for a, b in zip(mask_box, ann["bbox"])) <= 2.0
        attrs = ann["attributes"]
        assert isinstance(attrs["occluded"], bool) and attrs["rotation"] == 0.0
        assert attrs["color"] in {"red", "green", "blue"} and attrs["size"] in {"small", "large"}
        if cats[ann["category_id"]] == "circle":
            seg = ann["segmentation"]
            assert ann["iscrowd"] == 1 and isinstance(seg["counts"], list) and seg["size"] == [h, w]
            assert sum(seg["counts"]) == h * w
        else:
            assert ann["iscrowd"] == 0 and len(ann["segmentation"]) == 1
            poly = ann["segmentation"][0]
            assert len(poly) >= 6 and len(poly) % 2 == 0
            assert all(0 <= v <= w for v in poly[0::2]) and all(0 <= v <= h for v in poly[1::2])


def test_tracks(demo: DemoDataset, coco: COCO) -> None:
    members: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for ann in coco.dataset["annotations"]:
        attrs = ann["attributes"]
        assert ("track_id" in attrs) == ("keyframe" in attrs)
        if "track_id" in attrs:
            assert isinstance(attrs["track_id"], int) and isinstance(attrs["keyframe"], bool)
            members[attrs["track_id"]].append(ann)
    assert len(members) == demo.n_tracks >= 2
    assert sorted(members) == list(range(demo.n_tracks))  # CVAT numbers tracks from 0
    for anns in members.values():
        assert len(anns) >= 2
        assert any(a["attributes"]["keyframe"] for a in anns)
        files = [coco.imgs[a["image_id"]]["file_name"] for a in anns]
        assert len({f.split("/")[0] for f in files}) == 1, "a track stays in one sequence"
        assert len(set(files)) == len(files), "one shape per frame"
        assert len({a["category_id"] for a in anns}) == 1
        # the object moves a few pixels per frame
        centres = [(a["bbox"][0] + a["bbox"][2] / 2, a["bbox"][1] + a["bbox"][3] / 2) for a in anns]
        steps = [np.hypot(c1[0] - c0[0], c1[1] - c0[1]) for c0, c1 in zip(centres, centres[1:])]
        assert max(steps) < 15


def test_images_exist_with_declared_size(demo: DemoDataset, coco: COCO) -> None:
    for img in coco.dataset["images"]:
        path = demo.images_dir / img["file_name"]
        with Image.open(path) as im:
            assert im.size == (img["width"], img["height"])
            assert im.mode == "RGB"
            assert im.format == ("PNG" if path.suffix == ".png" else "JPEG")
    sizes = {(i["width"], i["height"]) for i in coco.dataset["images"]}
    assert (160, 160) in sizes and len(sizes) > 1


def test_deterministic(demo: DemoDataset, tmp_path: Path) -> None:
    again = generate_demo_dataset(tmp_path / "a", n_images=N_IMAGES, n_sequences=2, seed=7)
    assert again.annotations_path.read_bytes() == demo.annotations_path.read_bytes()
    assert _digest_images(again.images_dir) == _digest_images(demo.images_dir)
    other = generate_demo_dataset(tmp_path / "b", n_images=N_IMAGES, n_sequences=2, seed=8)
    assert other.annotations_path.read_bytes() != demo.annotations_path.read_bytes()


def test_add_class_makes_a_newer_batch(demo: DemoDataset, tmp_path: Path) -> None:
    new = generate_demo_dataset(tmp_path / "new", n_images=24, seed=7, add_class="star")
    coco = COCO(str(new.annotations_path))
    assert [c["name"] for c in coco.dataset["categories"]] == ["circle", "square", "triangle", "star"]
    assert new.categories[-1] == "star" and new.class_counts["star"] > 0
    assert any(a["category_id"] == 4 for a in coco.dataset["annotations"])
    for ann in coco.dataset["annotations"]:
        assert int(coco.annToMask(ann).sum()) == ann["area"]
    old_names = {i["file_name"] for i in json.loads(demo.annotations_path.read_bytes())["images"]}
    assert not old_names & {i["file_name"] for i in coco.dataset["images"]}
    again = generate_demo_dataset(tmp_path / "new2", n_images=24, seed=7, add_class="star")
    assert again.annotations_path.read_bytes() == new.annotations_path.read_bytes()


def test_rejects_unknown_classes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_demo_dataset(tmp_path, n_images=4, classes=("circle", "blob"))
    with pytest.raises(ValueError):
        generate_demo_dataset(tmp_path, n_images=4, add_class="circle")


# ---------------------------------------------------------------- benchmarks/datagen.py


@pytest.fixture(scope="module")
def datagen() -> ModuleType:
    path = REPO / "benchmarks" / "datagen.py"
    spec = importlib.util.spec_from_file_location("dsgen_bench_datagen", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while building the class
    spec.loader.exec_module(mod)
    return mod


def test_small_benchmark_data(datagen: ModuleType, tmp_path: Path) -> None:
    g = datagen.generate_small(tmp_path / "s1", scale=0.004, seed=3, progress=False)
    assert (g.n_images, g.n_annotations) == (20, 140)
    coco = COCO(str(g.annotations_path))
    assert len(coco.imgs) == 20 and len(coco.anns) == 140 and len(coco.cats) == 10
    hashes = set()
    for img in coco.dataset["images"]:
        data = (g.images_dir / img["file_name"]).read_bytes()
        hashes.add(hashlib.sha256(data).hexdigest())
        with Image.open(g.images_dir / img["file_name"]) as im:
            im.load()
            assert im.size == (img["width"], img["height"])
    assert len(hashes) == 20, "every image must have its own sha256"
    for ann in coco.dataset["annotations"]:
        x, y, w, h = ann["bbox"]
        img = coco.imgs[ann["image_id"]]
        assert w > 0 and h > 0 and x + w <= img["width"] + 0.01 and y + h <= img["height"] + 0.01
        assert set(ann["attributes"]) == {"occluded", "rotation"}
    again = datagen.generate_small(tmp_path / "s2", scale=0.004, seed=3, progress=False)
    assert datagen.tree_digest(again.root) == datagen.tree_digest(g.root)


def test_large_benchmark_data(datagen: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = datagen.generate_large(tmp_path / "l1", scale=0.0005, seed=3, progress=True)
    assert sum("%" in line for line in capsys.readouterr().out.splitlines()) == 10
    coco = COCO(str(g.annotations_path))
    assert (len(coco.imgs), len(coco.anns), len(coco.cats)) == (50, 500, 80)
    assert [a["id"] for a in coco.dataset["annotations"]] == list(range(1, 501))
    assert not (tmp_path / "l1" / "images").exists()
    again = datagen.generate_large(tmp_path / "l2", scale=0.0005, seed=3, progress=False)
    assert again.annotations_path.read_bytes() == g.annotations_path.read_bytes()
    other = datagen.generate_large(tmp_path / "l3", scale=0.0005, seed=4, progress=False)
    assert other.annotations_path.read_bytes() != g.annotations_path.read_bytes()


def test_boxes_per_image_is_exact(datagen: ModuleType) -> None:
    rng = np.random.default_rng(0)
    for n_images, n_boxes in [(5000, 35000), (10, 3), (7, 70), (1, 1)]:
        counts = datagen.boxes_per_image(rng, n_images, n_boxes, empty_share=0.05)
        assert counts.sum() == n_boxes and counts.min() >= 0 and counts.size == n_images


def test_jpeg_comment_keeps_the_file_valid(datagen: ModuleType, tmp_path: Path) -> None:
    import io

    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 20, 30)).save(buf, format="JPEG")
    out = datagen.with_comment(buf.getvalue(), b"hello")
    assert out != buf.getvalue()
    with Image.open(io.BytesIO(out)) as im:
        im.load()
        assert im.size == (8, 6)
