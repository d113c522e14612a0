"""Every COCO file of the shared corpus imports, and import -> export gives the same data back."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from pycocotools.coco import COCO
from sqlalchemy import func, select

from dsgen_core.formats.coco.exporter import build_coco
from dsgen_core.formats.report import ImportRefused
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Annotation, Asset, ImportBatch, Track, TrackMember
from dsgen_core.storage import LocalStorage
from dsgen_core.storage.masks import MaskStore
from support import import_file

DM = "datumaro/tests/assets/coco_dataset"

# (annotation file, image folder or None, import options, images, annotations, masks)
CLEAN = [
    (f"{DM}/coco/annotations/instances_train.json", f"{DM}/coco/images/train", {}, 1, 1, 0),
    (f"{DM}/coco/annotations/instances_val.json", f"{DM}/coco/images/val", {}, 1, 2, 1),
    (f"{DM}/coco/annotations/person_keypoints_val.json", f"{DM}/coco/images/val", {}, 1, 2, 1),
    (f"{DM}/coco/annotations/captions_val.json", f"{DM}/coco/images/val", {}, 1, 2, 0),
    (f"{DM}/coco/annotations/labels_val.json", f"{DM}/coco/images/val", {}, 1, 2, 0),
    (f"{DM}/coco/annotations/image_info_train.json", f"{DM}/coco/images/train", {}, 1, 0, 0),
    (f"{DM}/coco/annotations/stuff_val.json", f"{DM}/coco/images/val", {}, 1, 1, 1),
    (f"{DM}/coco/annotations/panoptic_val.json", f"{DM}/coco/images/val", {}, 1, 2, 2),
    (f"{DM}/coco_panoptic/annotations/panoptic_val.json", f"{DM}/coco_panoptic/images/val", {}, 1, 2, 2),
    (f"{DM}/coco_roboflow/val/_annotations.coco.json", f"{DM}/coco_roboflow/val", {}, 1, 2, 1),
    (f"{DM}/mmdet_coco/annotations/instances_val.json", f"{DM}/mmdet_coco/val", {}, 1, 2, 1),
    ("datumaro/tests/assets/roboflow_dataset/coco/val/_annotations.coco.json",
     "datumaro/tests/assets/roboflow_dataset/coco/val", {}, 1, 2, 0),
    ("datumaro/tests/assets/segment_anything_dataset/a.json", "datumaro/tests/assets/segment_anything_dataset", {}, 1, 1, 1),
    ("cvat-datumaro/tests/assets/coco_dataset/coco_person_keypoints/annotations/person_keypoints_val.json", None, {}, 1, 2, 1),
    ("cvat-exports-licensed/tzopiz__LungsNN/instances_default.json", None, {}, 27, 54, 0),
    ("cvat-exports-licensed/ivanvoid__cvat_client_wrapper/instances_default.json", None, {}, 300, 1, 0),
    ("mmpose/tests/data/coco/test_coco.json", "mmpose/tests/data/coco", {}, 4, 14, 0),
    ("mmpose/tests/data/coco/test_coco_wholebody.json", "mmpose/tests/data/coco", {}, 4, 14, 0),
    ("mmpose/tests/data/crowdpose/test_crowdpose.json", "mmpose/tests/data/crowdpose", {}, 2, 5, 0),
]

# Files with real defects: refused by default, imported with skip_invalid. (file, images, reason, images, anns, skipped)
DEFECTIVE = [
    ("cvat-exports-licensed/SakibAhmedShuva__CVAT-Segmentation-to-YOLOv8-Converter/annotations/instances_default.json",
     None, "negative or zero-size box", 6, 28, 1),
    ("mmdetection/tests/data/coco_sample.json", None, "negative or zero-size box", 4, 6, 2),
    ("mmdetection/tests/data/coco_wrong_format_sample.json", None, "duplicate annotation id", 1, 1, 1),
    ("datumaro/tests/assets/segment_anything_dataset/b.json", "datumaro/tests/assets/segment_anything_dataset",
     "negative or zero-size box", 1, 0, 1),
    (f"{DM}/coco_panoptic/annotations/panoptic_train.json", f"{DM}/coco_panoptic/images/train", "PNG is 5x5", 1, 0, 1),
]


def _counts(reg: Registry) -> tuple[int, int, int]:
    with reg.session() as s:
        return (
            s.scalar(select(func.count()).select_from(Asset)),
            s.scalar(select(func.count()).select_from(Annotation)),
            s.scalar(select(func.count()).select_from(ImportBatch)),
        )


def _export(reg: Registry, project: str = "p") -> dict[str, Any]:
    with reg.session() as s:
        return build_coco(s, get_project(s, project), MaskStore(LocalStorage(reg.settings.storage_root)))


def _coco(doc: dict[str, Any] | Path) -> COCO:
    data = orjson.loads(doc.read_bytes()) if isinstance(doc, Path) else doc
    data.setdefault("categories", [])
    data.setdefault("images", [])
    c = COCO()
    c.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        c.createIndex()
    return c


def assert_same_coco(original: Path, exported: dict[str, Any]) -> None:
    """Same images, categories, boxes, decoded masks, keypoints, attributes and track ids."""
    src = orjson.loads(original.read_bytes())
    if "image" in src:  # SA-1B: one image per file
        img = dict(src["image"])
        img["id"] = img.pop("image_id", img.get("id"))
        src = {"images": [img], "categories": exported["categories"],
               "annotations": [dict(a, image_id=img["id"], category_id=1) for a in src["annotations"]]}
    b = _coco(exported)
    assert {(i["file_name"], i["width"], i["height"]) for i in src["images"]} == {
        (i["file_name"], i["width"], i["height"]) for i in exported["images"]}
    for im in src["images"]:
        out = next(i for i in exported["images"] if i["file_name"] == im["file_name"])
        assert out == im
    src_cats = {c["name"]: c for c in src.get("categories", [])}
    out_cats = {c["name"]: c for c in exported["categories"]}
    assert src_cats.keys() <= out_cats.keys()
    for name, c in src_cats.items():
        for key in ("keypoints", "skeleton", "supercategory", "id"):
            assert out_cats[name].get(key) == c.get(key), (name, key)
    if "segments_info" in (src.get("annotations") or [{}])[0]:
        segs = [s for ann in src["annotations"] for s in ann["segments_info"]]
        assert sorted(s["id"] for s in segs) == sorted(x["id"] for x in exported["annotations"])
        for s in segs:
            x = next(x for x in exported["annotations"] if x["id"] == s["id"])
            assert x["bbox"] == s["bbox"] and x["category_id"] == s["category_id"] and x["iscrowd"] == s["iscrowd"]
        return
    a = _coco(src)
    assert len(src["annotations"]) == len(exported["annotations"])
    cat_name_a = {c["id"]: c["name"] for c in src.get("categories", [])}
    cat_name_b = {c["id"]: c["name"] for c in exported["categories"]}
    for ann in src["annotations"]:
        out = next(x for x in exported["annotations"] if x["id"] == ann["id"])
        assert cat_name_a.get(ann.get("category_id")) == cat_name_b.get(out.get("category_id"))
        for key in ("bbox", "keypoints", "attributes", "iscrowd", "caption", "score", "area", "num_keypoints"):
            if key in ann:
                assert out.get(key) == pytest.approx(ann[key]) if key in ("bbox", "area", "score") else out.get(key) == ann[key], key
        extra_keys = set(ann) - {"id", "image_id", "category_id", "segmentation", "bbox", "keypoints", "attributes",
                                 "iscrowd", "caption", "score", "area", "num_keypoints"}
        for key in extra_keys:
            assert out[key] == ann[key], key
        seg = ann.get("segmentation")
        if isinstance(seg, list) and seg:
            assert out["segmentation"] == seg
        if isinstance(seg, (dict, list)) and seg and "bbox" in ann:
            np.testing.assert_array_equal(a.annToMask(ann), b.annToMask(out))
        if isinstance(seg, dict):
            assert type(out["segmentation"]["counts"]) is type(seg["counts"])


@pytest.mark.parametrize(("rel", "images", "opts", "n_images", "n_anns", "n_masks"), CLEAN, ids=[c[0].split("/")[-1] + f"-{i}" for i, c in enumerate(CLEAN)])
def test_corpus_file_imports_and_round_trips(registry: Registry, corpus: Path, rel: str, images: str | None,
                                             opts: dict[str, Any], n_images: int, n_anns: int, n_masks: int) -> None:
    result = import_file(registry, corpus / rel, images=corpus / images if images else None, project="p", **opts)
    assert (result.summary()["images"], result.summary()["annotations"], result.summary()["masks"]) == (n_images, n_anns, n_masks)
    assert not result.report.errors
    exported = _export(registry)
    assert_same_coco(corpus / rel, exported)


@pytest.mark.parametrize(("rel", "images", "reason", "n_images", "n_anns", "n_skipped"), DEFECTIVE, ids=[d[0].split("/")[-1] for d in DEFECTIVE])
def test_defective_corpus_file_is_refused_whole_then_imports_with_skip_invalid(
    registry: Registry, corpus: Path, tmp_path: Path, rel: str, images: str | None, reason: str, n_images: int,
    n_anns: int, n_skipped: int,
) -> None:
    img = corpus / images if images else None
    with pytest.raises(ImportRefused) as exc:
        import_file(registry, corpus / rel, images=img, project="p")
    assert reason in str(exc.value) and str(corpus / rel) in str(exc.value)
    assert _counts(registry) == (0, 0, 0), "a refused import must write nothing"
    assert not (Path(registry.settings.storage_root) / "masks").exists()

    report = tmp_path / "report.json"
    result = import_file(registry, corpus / rel, images=img, project="p", skip_invalid=True, report_path=report)
    assert (result.summary()["images"], result.summary()["annotations"]) == (n_images, n_anns)
    saved = orjson.loads(report.read_bytes())
    assert saved["skipped"]["annotations"] == n_skipped
    assert any(reason in p["reason"] for p in saved["problems"])


def test_results_files_become_model_annotations(registry: Registry, corpus: Path) -> None:
    import_file(registry, corpus / "mmpose/tests/data/coco/test_coco.json", project="p")
    res = import_file(registry, corpus / "mmpose/tests/data/coco/test_coco_det_AP_H_56.json", project="p")
    assert res.kind == "results" and res.summary()["annotations"] == 118
    dets = orjson.loads((corpus / "mmpose/tests/data/coco/test_coco_det_AP_H_56.json").read_bytes())
    with registry.session() as s:
        rows = s.execute(select(Annotation.source, Annotation.confidence).where(Annotation.confidence.is_not(None))).all()
    assert {r.source for r in rows} == {"model"}
    assert sorted(r.confidence for r in rows) == pytest.approx(sorted(d["score"] for d in dets))
    again = import_file(registry, corpus / "mmpose/tests/data/coco/test_coco_det_AP_H_56.json", project="p")
    assert again.summary()["annotations"] == 0 and again.summary()["annotations_unchanged"] == 118


@pytest.mark.parametrize("name", ["instances_val2014_fakebbox100_results.json", "instances_val2014_fakesegm100_results.json",
                                  "person_keypoints_val2014_fakekeypoints100_results.json", "captions_val2014_fakecap_results.json"])
def test_cocoapi_results_need_their_images_or_create_missing(registry: Registry, corpus: Path, name: str) -> None:
    path = corpus / "cocoapi/results" / name
    with pytest.raises(ImportRefused, match="import the ground truth first"):
        import_file(registry, path, project="p")
    dets = orjson.loads(path.read_bytes())
    res = import_file(registry, path, project="p", create_missing=True)
    assert res.summary()["annotations"] == len(dets)
    assert res.summary()["images_new"] == len({d["image_id"] for d in dets})


def test_reimport_is_idempotent(registry: Registry, corpus: Path) -> None:
    rel, images = f"{DM}/coco/annotations/instances_val.json", corpus / f"{DM}/coco/images/val"
    import_file(registry, corpus / rel, images=images, project="p")
    before = _counts(registry)
    again = import_file(registry, corpus / rel, images=images, project="p")
    assert again.summary()["images_new"] == 0 and again.summary()["annotations"] == 0
    assert _counts(registry)[:2] == before[:2]


def test_images_are_hashed_and_measured(registry: Registry, corpus: Path) -> None:
    import hashlib

    folder = corpus / "mmpose/tests/data/coco"
    import_file(registry, folder / "test_coco.json", images=folder, project="p")
    with registry.session() as s:
        assets = s.scalars(select(Asset)).all()
    assert len(assets) == 4
    for a in assets:
        data = (folder / a.file_name).read_bytes()
        assert a.sha256 == hashlib.sha256(data).hexdigest() and a.bytes == len(data)
        assert a.storage_uri and Path(a.storage_uri).is_file()


def test_track_ids_become_tracks_and_survive_export(registry: Registry, tmp_path: Path) -> None:
    doc = {
        "images": [{"id": i, "width": 20, "height": 20, "file_name": f"seq/frame_{i:06d}.jpg"} for i in range(3)],
        "categories": [{"id": 1, "name": "car", "supercategory": ""}],
        "annotations": [
            {"id": 10 + i, "image_id": i, "category_id": 1, "bbox": [1 + i, 1, 5, 5], "area": 25, "iscrowd": 0,
             "segmentation": [], "attributes": {"occluded": i == 1, "rotation": 0.0, "track_id": 7, "keyframe": i != 1}}
            for i in range(3)
        ],
    }
    path = tmp_path / "track.json"
    path.write_bytes(orjson.dumps(doc))
    res = import_file(registry, path, project="p")
    assert res.summary()["tracks"] == 1
    with registry.session() as s:
        track = s.scalar(select(Track))
        members = s.execute(select(TrackMember.sequence_idx, TrackMember.keyframe).order_by(TrackMember.sequence_idx)).all()
    assert track.external_id == "7" and track.object_count == 3 and (track.start_frame, track.end_frame) == (0, 2)
    assert [tuple(m) for m in members] == [(0, True), (1, False), (2, True)]
    exported = _export(registry)
    assert [a["attributes"] for a in exported["annotations"]] == [a["attributes"] for a in doc["annotations"]]


def _write(tmp_path: Path, doc: Any, name: str = "bad.json") -> Path:
    p = tmp_path / name
    p.write_bytes(doc if isinstance(doc, bytes) else orjson.dumps(doc))
    return p


BASE = {
    "images": [{"id": 1, "width": 10, "height": 10, "file_name": "a.jpg"}],
    "categories": [{"id": 1, "name": "x"}],
}


@pytest.mark.parametrize(
    ("annotations", "images", "field", "reason"),
    [
        ([{"id": 1, "image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1]}], None, "image_id", "not in 'images'"),
        ([{"id": 1, "image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1]}], None, "category_id", "not in 'categories'"),
        ([{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1]}], None, "bbox", "negative or zero-size"),
        ([{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 1, 1]]}], None, "segmentation", "fewer than 3 points"),
        ([{"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"size": [5, 5], "counts": [25]}}], None,
         "segmentation.size", "does not match"),
        ([{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}] * 2, None, "id", "duplicate annotation id"),
        ([], [{"id": 1, "width": 10, "height": 10, "file_name": "a.jpg"}] * 2, "id", "duplicate image id"),
        ([{"id": 1, "image_id": 1, "category_id": 1, "keypoints": [1, 2]}], None, "keypoints", "triples"),
    ],
)
def test_each_defect_is_reported_with_record_field_and_reason(
    registry: Registry, tmp_path: Path, annotations: list[Any], images: list[Any] | None, field: str, reason: str
) -> None:
    doc = {**BASE, "annotations": annotations, **({"images": images} if images else {})}
    path = _write(tmp_path, doc)
    with pytest.raises(ImportRefused) as exc:
        import_file(registry, path, project="p")
    probs = exc.value.report.errors
    assert any(p.field == field and reason in p.reason and p.file == str(path) for p in probs), probs
    assert _counts(registry) == (0, 0, 0)


def test_bad_json_names_line_and_column(registry: Registry, tmp_path: Path) -> None:
    from dsgen_core.errors import DsgenError

    path = _write(tmp_path, b'{"images": [\n  {"id": 1,, "file_name": "a"}]}')
    with pytest.raises(DsgenError, match=r"line 2, column 12"):
        import_file(registry, path, project="p")


def test_missing_image_and_size_mismatch_are_errors(registry: Registry, tmp_path: Path) -> None:
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.new("RGB", (12, 10)).save(imgs / "a.jpg")
    doc = {"images": [{"id": 1, "width": 10, "height": 10, "file_name": "a.jpg"},
                      {"id": 2, "width": 10, "height": 10, "file_name": "gone.jpg"}],
           "categories": [{"id": 1, "name": "x"}], "annotations": []}
    path = _write(tmp_path, doc)
    with pytest.raises(ImportRefused) as exc:
        import_file(registry, path, images=imgs, project="p")
    reasons = [p.reason for p in exc.value.report.errors]
    assert any("JSON says 10x10, the file is 12x10" in r for r in reasons)
    assert any("missing image file" in r for r in reasons)
    assert _counts(registry) == (0, 0, 0)


def test_zip_import_and_unsafe_zips(registry: Registry, tmp_path: Path) -> None:
    import zipfile

    from PIL import Image

    from dsgen_core.errors import DsgenError

    buf = io.BytesIO()
    Image.new("RGB", (10, 10), "red").save(buf, "JPEG")
    ok = tmp_path / "ok.zip"
    with zipfile.ZipFile(ok, "w") as z:
        z.writestr("images/sub dir/a.jpg", buf.getvalue())
    doc = {**BASE, "images": [{"id": 1, "width": 10, "height": 10, "file_name": "sub dir/a.jpg"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3]}]}
    res = import_file(registry, _write(tmp_path, doc, "ok.json"), images=ok, project="p")
    assert res.summary()["images_new"] == 1
    with registry.session() as s:
        uri = s.scalar(select(Asset.storage_uri))
    assert Path(uri).is_file() and Path(uri).is_relative_to(Path(registry.settings.storage_root))

    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("../../evil.jpg", buf.getvalue())
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("images/a.jpg", b"\0" * (50 << 20))
    exe = tmp_path / "exe.zip"
    with zipfile.ZipFile(exe, "w") as z:
        z.writestr("images/run.sh", b"#!/bin/sh\n")
    for bad, why in ((slip, "outside the target folder"), (bomb, "decompression bomb"), (exe, "not an image file")):
        with pytest.raises(DsgenError, match=why):
            import_file(registry, _write(tmp_path, doc, "x.json"), images=bad, project="q")
    assert not (tmp_path / "evil.jpg").exists() and not (tmp_path.parent / "evil.jpg").exists()
    assert _counts(registry)[0] == 1


def test_cli_import_export_stats_contract(cli, corpus: Path, tmp_path: Path) -> None:
    good = corpus / "cvat-exports-licensed/tzopiz__LungsNN/instances_default.json"
    bad = corpus / "mmdetection/tests/data/coco_wrong_format_sample.json"
    r = cli("import", "coco", str(bad), "--project", "lungs")
    assert r.returncode != 0 and "duplicate annotation id" in r.stderr and "Traceback" not in r.stderr
    assert cli("import", "coco", str(good), "--project", "lungs").returncode == 0
    stats = orjson.loads(cli("stats", "--project", "lungs", "--json").stdout)
    assert (stats["images"], stats["objects"], stats["categories"]) == (27, 54, 1)
    out = tmp_path / "out.json"
    assert cli("export", "coco", str(out), "--project", "lungs").returncode == 0
    assert_same_coco(good, orjson.loads(out.read_bytes()))
    r = cli("stats", "--project", "nope", "--json")
    assert r.returncode != 0 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_fast_box_path_reads_exactly_like_the_general_path(tmp_path: Path) -> None:
    """Plain boxes take a fast path; an unknown key forces the general one. Both must agree."""
    from dsgen_core.formats.coco.reader import HINTS, read_coco

    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0, "segmentation": [],
         "attributes": {"occluded": True}},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1.5, 2, 3, 4.25]},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "segmentation": None, "iscrowd": 1},
        {"id": 4, "image_id": 1, "category_id": 1, "bbox": [8, 8, 5, 5], "area": 25.0},  # beyond the image: warning
    ]
    doc = {"images": [{"id": 1, "width": 10, "height": 10, "file_name": "a.jpg"}], "categories": [{"id": 1, "name": "x"}]}
    fast = read_coco(_write(tmp_path, {**doc, "annotations": anns}, "fast.json"))
    slow = read_coco(_write(tmp_path, {**doc, "annotations": [dict(a, zz=1) for a in anns]}, "slow.json"))
    assert len(fast.annotations) == len(slow.annotations) == 4
    for f, s in zip(fast.annotations, slow.annotations, strict=True):
        s_extra = {k: v for k, v in (s.extra or {}).items() if k != "zz"} or None
        assert f._replace(extra=None) == s._replace(extra=None)
        assert (f.extra or {}).get(HINTS) == (s_extra or {}).get(HINTS)
    assert [p.reason for p in fast.report.warnings] == [p.reason for p in slow.report.warnings]
