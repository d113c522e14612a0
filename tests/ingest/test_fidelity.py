"""What goes into the registry comes back out: sample identity, multi-file merges, panoptic ids, class identity.

Each test is the regression test of a fidelity defect (issue 8); they run through the CLI and
read the registry directly, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from PIL import Image
from sqlalchemy import func, select

from conftest import CocoWriter, png_bytes
from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import Annotation, Asset, LabelClass

DM = "datumaro/tests/assets/coco_dataset/coco"


def _ok(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return orjson.loads(result.stdout)


def _count(reg: Registry, table: Any) -> int:
    with reg.session() as s:
        return s.scalar(select(func.count()).select_from(table)) or 0


def _export(cli: Any, tmp_path: Path, project: str = "p") -> dict[str, Any]:
    out = tmp_path / f"export-{project}.json"
    _ok(cli.invoke("export", "coco", out, "--project", project, "--json"))
    return orjson.loads(out.read_bytes())


def _seq(cli: Any, project: str = "p") -> int:
    return _ok(cli.invoke("stats", "--project", project, "--json"))["change_seq"]


# --------------------------------------------------------------------------- 1. identity is the sample, not its bytes


def _static_camera(files: CocoWriter) -> tuple[Path, dict[str, Any]]:
    """Seven frames of a static camera: six of them byte-identical in two groups, one unique."""
    blank, white = png_bytes(8, 6), png_bytes(8, 6, "white")
    images, anns = [], []
    for i in range(1, 8):
        name = f"cam 1/frame_{i:03d}.png"
        files.image(name, png_bytes(8, 6, "red") if i == 7 else blank if i % 2 else white)
        images.append({"id": 100 + i, "width": 8, "height": 6, "file_name": name})
        # The same box on every frame, twice on frame 3: equal records are still distinct records.
        for k in range(2 if i == 3 else 1):
            anns.append({"id": 10 * i + k, "image_id": 100 + i, "category_id": 1, "bbox": [1.0, 1.0, 2.0, 2.0],
                         "area": 4.0, "iscrowd": 0, "segmentation": [], "attributes": {"occluded": False}})
    doc = {"images": images, "categories": [{"id": 1, "name": "car", "supercategory": ""}], "annotations": anns}
    return files.json("static.json", doc), doc


def test_images_with_equal_bytes_are_distinct_samples(cli: Any, registry: Registry, coco_files: CocoWriter,
                                                      tmp_path: Path) -> None:
    path, doc = _static_camera(coco_files)
    _ok(cli.invoke("import", "coco", path, "--images", coco_files.images, "--project", "p", "--json"))
    assert _count(registry, Asset) == 7
    assert _count(registry, Annotation) == 8
    with registry.session() as s:
        shas = s.execute(select(Asset.sha256)).scalars().all()
    assert len(set(shas)) == 3, "the bytes are still recorded: three distinct contents"

    out = _export(cli, tmp_path)
    assert sorted((i["id"], i["file_name"]) for i in out["images"]) == sorted((i["id"], i["file_name"]) for i in doc["images"])
    assert sorted((a["id"], a["image_id"]) for a in out["annotations"]) == sorted((a["id"], a["image_id"]) for a in doc["annotations"])

    # Exact duplicates are a fact to find, not a reason to merge.
    dup = _ok(cli.invoke("query", "has:duplicate", "--count", "--project", "p", "--json"))
    assert dup["count"] == 6
    assert _ok(cli.invoke("query", "--count", "--project", "p", "--json", "--", "-has:duplicate"))["count"] == 1
    insights = _ok(cli.invoke("insights", "--which", "duplicates", "--project", "p", "--json"))
    dups = insights["duplicates"]
    assert dups["images_with_duplicates"] == 6 and dups["groups"] == 2

    # Re-importing the same export adds nothing and wakes nobody.
    seq = _seq(cli)
    _ok(cli.invoke("import", "coco", path, "--images", coco_files.images, "--project", "p", "--json"))
    assert (_count(registry, Asset), _count(registry, Annotation)) == (7, 8)
    assert _seq(cli) == seq


def test_declared_size_is_checked_even_when_bytes_equal_another_image(cli: Any, registry: Registry,
                                                                      coco_files: CocoWriter) -> None:
    same = png_bytes(8, 6)
    coco_files.image("a.png", same)
    coco_files.image("b.png", same)
    doc = {"images": [{"id": 1, "width": 8, "height": 6, "file_name": "a.png"},
                      {"id": 2, "width": 80, "height": 60, "file_name": "b.png"}],
           "categories": [{"id": 1, "name": "x"}], "annotations": []}
    r = cli.invoke("import", "coco", coco_files.json("sizes.json", doc), "--images", coco_files.images, "--project", "p")
    assert r.exit_code != 0
    assert "images[1] (id=2, file_name='b.png')" in r.stderr and "JSON says 80x60, the file is 8x6" in r.stderr
    assert _count(registry, Asset) == 0


def test_same_path_with_other_bytes_is_a_conflict_not_a_merge(cli: Any, registry: Registry,
                                                              coco_files: CocoWriter, tmp_path: Path) -> None:
    coco_files.image("a.png", png_bytes(8, 6))
    doc = {"images": [{"id": 1, "width": 8, "height": 6, "file_name": "a.png"}],
           "categories": [{"id": 1, "name": "x"}], "annotations": []}
    path = coco_files.json("one.json", doc)
    _ok(cli.invoke("import", "coco", path, "--images", coco_files.images, "--project", "p", "--json"))
    other = CocoWriter(tmp_path / "other")
    other.image("a.png", png_bytes(8, 6, "white"))
    r = cli.invoke("import", "coco", other.json("one.json", doc), "--images", other.images, "--project", "p")
    assert r.exit_code != 0 and "a.png" in r.stderr and "different content" in r.stderr
    assert _count(registry, Asset) == 1


# --------------------------------------------------------------------------- 2. one split's files merge into one object


def test_instances_keypoints_and_captions_of_one_split_merge(cli: Any, registry: Registry, corpus: Path,
                                                             tmp_path: Path) -> None:
    files = ["instances_val", "person_keypoints_val", "captions_val", "labels_val"]
    docs = {f: orjson.loads((corpus / DM / "annotations" / f"{f}.json").read_bytes()) for f in files}
    for f in files:
        _ok(cli.invoke("import", "coco", corpus / DM / "annotations" / f"{f}.json", "--images", corpus / DM / "images/val",
                       "--project", "p", "--json"))
    ids = {(a["image_id"], a["id"]) for d in docs.values() for a in d["annotations"]}
    assert _count(registry, Annotation) == len(ids) == 2, "one object per (image, source id), not one per file"
    assert _count(registry, Asset) == 1

    out = _export(cli, tmp_path)
    by_id = {a["id"]: a for a in out["annotations"]}
    assert sorted(by_id) == sorted(i for _, i in ids)
    name_of = {c["id"]: c["name"] for c in out["categories"]}
    for f, doc in docs.items():
        src_names = {c["id"]: c["name"] for c in doc["categories"]}
        for a in doc["annotations"]:
            got = by_id[a["id"]]
            for key in ("bbox", "keypoints", "num_keypoints", "caption", "attributes", "iscrowd", "area"):
                if key in a:
                    assert got[key] == a[key], (f, a["id"], key)
            if a.get("category_id") in src_names:
                assert name_of[got["category_id"]] == src_names[a["category_id"]], (f, a["id"])
            if isinstance(a.get("segmentation"), list) and a["segmentation"]:
                assert got["segmentation"] == a["segmentation"], (f, a["id"])
    # The categories are one set: the keypoints file's skeleton joined the instances' classes.
    cats = {c["name"]: c for c in out["categories"]}
    assert cats["a"]["skeleton"] == [[0, 1], [1, 2]] and "c" in cats


def test_a_conflicting_field_is_reported_and_refused(cli: Any, registry: Registry, coco_files: CocoWriter,
                                                     tmp_path: Path) -> None:
    coco_files.image("a.png", png_bytes(20, 20))
    base = {"images": [{"id": 1, "width": 20, "height": 20, "file_name": "a.png"}],
            "categories": [{"id": 1, "name": "person", "keypoints": ["nose", "eye"], "skeleton": [[1, 2]]}]}
    inst = {**base, "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16,
                                     "iscrowd": 0, "segmentation": []}]}
    kps = {**base, "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [2, 2, 4, 4], "area": 16,
                                    "iscrowd": 0, "segmentation": [], "keypoints": [2, 2, 2, 3, 3, 2],
                                    "num_keypoints": 2}]}
    _ok(cli.invoke("import", "coco", coco_files.json("inst.json", inst), "--images", coco_files.images, "--project", "p",
                   "--json"))
    seq = _seq(cli)
    path = coco_files.json("kps.json", kps)
    r = cli.invoke("import", "coco", path, "--images", coco_files.images, "--project", "p")
    assert r.exit_code != 0
    assert "annotations[0] (id=5)" in r.stderr and "bbox" in r.stderr and "[1.0, 1.0, 4.0, 4.0]" in r.stderr
    assert _seq(cli) == seq and _export(cli, tmp_path)["annotations"][0].get("keypoints") is None

    # The user decides: the file's values win, and the report says what was replaced.
    res = _ok(cli.invoke("import", "coco", path, "--images", coco_files.images, "--project", "p", "--on-conflict",
                         "replace", "--json"))
    assert res["conflicts"] == 1 and res["annotations_merged"] == 1
    (got,) = _export(cli, tmp_path)["annotations"]
    assert got["id"] == 5 and got["bbox"] == [2, 2, 4, 4] and got["keypoints"] == [2, 2, 2, 3, 3, 2]
    assert _count(registry, Annotation) == 1


def test_exported_ids_are_the_source_ids_and_unique(cli: Any, registry: Registry, tmp_path: Path) -> None:
    """Two exports that both number from 1: each record keeps its id where no other record has it."""
    for n, name in ((1, "first"), (2, "second")):
        files = CocoWriter(tmp_path / name)
        files.image(f"{name}.png", png_bytes(8, 6, "white" if n == 1 else "black"))
        doc = {"images": [{"id": 1, "width": 8, "height": 6, "file_name": f"{name}.png"},
                          *([{"id": 7, "width": 8, "height": 6, "file_name": "extra.png"}] if n == 2 else [])],
               "categories": [{"id": 1, "name": "x"}],
               "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4.0,
                                "iscrowd": 0, "segmentation": []},
                               {"id": 10 * n, "image_id": 1, "category_id": 1, "bbox": [2, 2, 2, 2], "area": 4.0,
                                "iscrowd": 0, "segmentation": []}]}
        if n == 2:
            files.image("extra.png", png_bytes(8, 6, "red"))
        _ok(cli.invoke("import", "coco", files.json(f"{name}.json", doc), "--images", files.images, "--project", "p",
                       "--json"))
    out = _export(cli, tmp_path)
    image_ids = [i["id"] for i in out["images"]]
    ann_ids = [a["id"] for a in out["annotations"]]
    assert len(set(image_ids)) == 3 and len(set(ann_ids)) == 4
    assert {1, 7} <= set(image_ids), "ids nobody else uses are kept"
    assert {1, 10, 20} <= set(ann_ids)


# --------------------------------------------------------------------------- 3. panoptic segment ids are per image


def _panoptic(root: Path, bad_second: bool = False) -> Path:
    (root / "panoptic").mkdir(parents=True)
    images, anns = [], []
    for k in (1, 2):
        name = f"img{k}.png"
        Image.new("RGB", (4, 4), "gray").save(root / name)
        ids = np.zeros((4, 4, 3), np.uint8)
        ids[:2, :, 0] = 1  # segment id 1: top half; id 2: bottom half, in both PNGs
        ids[2:, :, 0] = 2
        Image.fromarray(ids).save(root / "panoptic" / name)
        images.append({"id": k, "width": 4, "height": 4, "file_name": name})
        segs = [{"id": 1, "category_id": 1, "area": 8, "bbox": [0, 0, 4, 2], "iscrowd": 0},
                {"id": 2, "category_id": 9 if (bad_second and k == 2) else 2, "area": 8, "bbox": [0, 2, 4, 2],
                 "iscrowd": 0}]
        anns.append({"image_id": k, "file_name": name, "segments_info": segs})
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": 1, "name": "sky", "isthing": 0}, {"id": 2, "name": "road", "isthing": 0}]}
    p = root / "panoptic.json"
    p.write_bytes(orjson.dumps(doc))
    return p


def test_panoptic_segment_ids_repeat_across_images(cli: Any, registry: Registry, tmp_path: Path) -> None:
    path = _panoptic(tmp_path / "pan")
    _ok(cli.invoke("import", "coco", path, "--images", tmp_path / "pan", "--panoptic-dir", tmp_path / "pan" / "panoptic",
                   "--project", "p", "--json"))
    assert _count(registry, Annotation) == 4
    out = _export(cli, tmp_path)
    ids = [(a["image_id"], a["id"]) for a in out["annotations"]]
    assert len({i for _, i in ids}) == 4, "exported ids are unique"
    assert sorted(p for p in ids if p[0] == 1) == [(1, 1), (1, 2)], "the first image keeps its segment ids"


def test_panoptic_problems_point_at_the_segment(cli: Any, registry: Registry, tmp_path: Path) -> None:
    path = _panoptic(tmp_path / "pan", bad_second=True)
    r = cli.invoke("import", "coco", path, "--images", tmp_path / "pan", "--panoptic-dir", tmp_path / "pan" / "panoptic",
                   "--project", "p")
    assert r.exit_code != 0 and "annotations[1].segments_info[1] (id=2)" in r.stderr, r.stderr
    report = tmp_path / "r.json"
    _ok(cli.invoke("import", "coco", path, "--images", tmp_path / "pan", "--panoptic-dir", tmp_path / "pan" / "panoptic",
                   "--project", "p", "--skip-invalid", "--report", report, "--json"))
    assert _count(registry, Annotation) == 3, "only the bad segment is left out"
    assert orjson.loads(report.read_bytes())["skipped"]["annotations"] == 1


# --------------------------------------------------------------------------- 4. a class keeps its identity


def test_a_new_class_does_not_recreate_the_old_ones(cli: Any, registry: Registry, tmp_path: Path) -> None:
    from dsgen_core.demo.synth import generate_demo_dataset
    from dsgen_core.evaluation.model_eval import split_ground_truth
    from dsgen_core.registry.projects import get_project
    from dsgen_core.versions.lifecycle import get_version

    old = generate_demo_dataset(tmp_path / "old", n_images=24, seed=3).root
    new = generate_demo_dataset(tmp_path / "new", n_images=24, seed=4, add_class="star").root
    _ok(cli.invoke("import", "coco", old / "annotations/instances_default.json", "--images", old / "images",
                   "--project", "p", "--json"))
    with registry.session() as s:
        before = dict(s.execute(select(LabelClass.key, LabelClass.id)).all())
    _ok(cli.invoke("version", "create", "v1", "--project", "p", "--seed", "1", "--json"))
    _ok(cli.invoke("version", "freeze", "v1", "--project", "p", "--json"))
    _ok(cli.invoke("import", "coco", new / "annotations/instances_default.json", "--images", new / "images",
                   "--project", "p", "--json"))
    _ok(cli.invoke("version", "create", "v2", "--project", "p", "--seed", "1", "--json"))
    _ok(cli.invoke("version", "freeze", "v2", "--project", "p", "--json"))
    with registry.session() as s:
        after = dict(s.execute(select(LabelClass.key, LabelClass.id)).all())
        assert _count(registry, LabelClass) == 4
        assert {k: after[k] for k in before} == before, "circle, square and triangle keep their ids"
        v2 = get_version(s, get_project(s, "p"), "v2")
        gt, _files = split_ground_truth(s, v2, "test")
        # Every boxed object of v2's test split is ground truth, the old classes' included.
        snap = s.execute(select(func.count()).select_from(Annotation).join(Asset).where(
            Asset.id.in_(list(_files)), Annotation.bbox_w.is_not(None))).scalar_one()
    assert {c["name"] for c in gt["categories"]} == {"circle", "square", "triangle", "star"}
    assert len(gt["annotations"]) == snap > 0
    names = {c["id"]: c["name"] for c in gt["categories"]}
    assert {names[a["category_id"]] for a in gt["annotations"]} >= {"circle", "square", "triangle"}


# --------------------------------------------------------------------------- 5. the smaller ones


def test_area_keeps_the_source_value_and_type(cli: Any, registry: Registry, coco_files: CocoWriter,
                                              tmp_path: Path) -> None:
    coco_files.image("a.png", png_bytes(20, 20))
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0, "segmentation": []},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "area": 16.0, "iscrowd": 0,
             "segmentation": []},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 50, "iscrowd": 0,
             "segmentation": [[0, 0, 10, 0, 10, 10]]}]
    doc = {"images": [{"id": 1, "width": 20, "height": 20, "file_name": "a.png"}],
           "categories": [{"id": 1, "name": "x"}], "annotations": anns}
    _ok(cli.invoke("import", "coco", coco_files.json("a.json", doc), "--images", coco_files.images, "--project", "p",
                   "--json"))
    got = {a["id"]: a["area"] for a in _export(cli, tmp_path)["annotations"]}
    assert [(got[i], type(got[i])) for i in (1, 2, 3)] == [(16, int), (16.0, float), (50, int)]


@pytest.mark.parametrize("name", ["../outside.png", "/etc/passwd.png", "sub/../../outside.png"])
def test_a_file_name_that_leaves_the_image_folder_is_refused(cli: Any, registry: Registry, coco_files: CocoWriter,
                                                             name: str) -> None:
    (coco_files.root.parent / "outside.png").write_bytes(png_bytes(4, 4))
    doc = {"images": [{"id": 1, "width": 4, "height": 4, "file_name": name}],
           "categories": [{"id": 1, "name": "x"}], "annotations": []}
    path = coco_files.json("escape.json", doc)
    for extra in ([], ["--images", coco_files.images]):
        r = cli.invoke("import", "coco", path, *extra, "--project", "p")
        assert r.exit_code != 0 and "file_name" in r.stderr and "leaves the image folder" in r.stderr, r.stderr
        assert "missing image file" not in r.stderr
    assert _count(registry, Asset) == 0


def test_a_refused_import_with_json_prints_one_json_line(cli: Any, registry: Registry, corpus: Path) -> None:
    bad = corpus / "mmdetection/tests/data/coco_wrong_format_sample.json"
    r = cli.invoke("import", "coco", bad, "--project", "p", "--json")
    assert r.exit_code != 0
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, r.stdout
    err = orjson.loads(lines[0])
    assert "duplicate annotation id" in err["error"] and err["errors"] >= 1
    report = orjson.loads(Path(err["report"]).read_bytes())
    assert any("duplicate annotation id" in p["reason"] for p in report["problems"])


def test_a_refused_version_export_leaves_nothing_behind(cli: Any, registry: Registry, coco_files: CocoWriter,
                                                        tmp_path: Path) -> None:
    for k in range(3):
        coco_files.image(f"{k}.png", png_bytes(8, 6, ("red", "green", "blue")[k]))
    doc = {"images": [{"id": k, "width": 8, "height": 6, "file_name": f"{k}.png"} for k in range(3)],
           "categories": [{"id": 1, "name": "x"}],
           "annotations": [{"id": k, "image_id": k, "category_id": 1, "bbox": [1, 1, 2, 2]} for k in range(3)]}
    _ok(cli.invoke("import", "coco", coco_files.json("a.json", doc), "--images", coco_files.images, "--project", "p",
                   "--json"))
    _ok(cli.invoke("version", "create", "v1", "--project", "p", "--split", "train=1", "--json"))
    _ok(cli.invoke("version", "freeze", "v1", "--project", "p", "--json"))
    (coco_files.images / "2.png").unlink()
    for args in (["export", "coco", "--version", "v1", tmp_path / "coco-out"], ["export", "yolo", "v1", tmp_path / "yolo-out"]):
        r = cli.invoke(*args, "--project", "p")
        assert r.exit_code != 0 and "missing" in r.stderr
    assert not (tmp_path / "coco-out").exists() and not (tmp_path / "yolo-out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder left"


def test_has_keypoints_means_labelled_keypoints(cli: Any, registry: Registry, coco_files: CocoWriter) -> None:
    coco_files.image("a.png", png_bytes(20, 20))
    doc = {"images": [{"id": 1, "width": 20, "height": 20, "file_name": "a.png"}],
           "categories": [{"id": 1, "name": "person", "keypoints": ["nose", "eye"], "skeleton": []}],
           "annotations": [
               {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "iscrowd": 0,
                "keypoints": [2, 2, 2, 3, 3, 1], "num_keypoints": 2},
               {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "iscrowd": 1,
                "keypoints": [0, 0, 0, 0, 0, 0], "num_keypoints": 0}]}
    _ok(cli.invoke("import", "coco", coco_files.json("k.json", doc), "--images", coco_files.images, "--project", "p",
                   "--json"))
    assert _ok(cli.invoke("query", "has:keypoints", "--objects", "--count", "--project", "p", "--json"))["count"] == 1
    assert _ok(cli.invoke("query", "--objects", "--count", "--project", "p", "--json", "--", "-has:keypoints"))["count"] == 1


@pytest.mark.parametrize("name", ["a.jpg", "sub dir/img 01.png", "./a.jpg", "a//b.jpg", "a/./b.jpg", "a/b/", "a\\\\b.jpg",
                                  "a..b.jpg", ".hidden.jpg", "../a.jpg", "a/../../b.jpg", "/abs/a.jpg", "c:/x.jpg", ".", "",
                                  "x/..", "héllo/ü.jpg"])
def test_source_path_fast_path_agrees_with_pathlib(name: str) -> None:
    from pathlib import PurePosixPath

    from dsgen_core.formats.coco.reader import source_path

    rel = PurePosixPath(name.replace("\\\\", "/"))
    leaves = rel.is_absolute() or ".." in rel.parts or (bool(rel.parts) and ":" in rel.parts[0]) or not rel.parts
    assert source_path(name) == (None if leaves else str(rel))
