"""Datamaker annotatorData (issue 12): import with dm-schema validation, export back, round-trips.

The fixtures are written from seed 004's definitions: every tool, raw and RLE segmentation,
relations, nested groups, flattened classifications with Korean names and values, flags kept.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from pycocotools import mask as mask_utils
from sqlalchemy import func, select

from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import (
    Annotation,
    AnnotationGroupMember,
    AnnotationRelation,
    Asset,
    ImportBatch,
    LabelClass,
)

FIXTURES = Path(__file__).parent / "datamaker_fixtures"
SOURCE = FIXTURES / "tasks" / "street.json"


def _ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _objects(reg: Registry) -> dict[str, Annotation]:
    with reg.session() as s:
        return {a.source_key.split(":", 1)[1]: a for a in s.scalars(select(Annotation))}


def test_every_tool_lands_in_the_registry(registry: Registry, cli: Any) -> None:
    out = _ok(cli.invoke("import", "datamaker", FIXTURES / "tasks", "--images", FIXTURES / "images",
                         "--schema", FIXTURES / "dm-schema.json", "--project", "p", "--json"))
    assert out["images_new"] == 1 and out["annotations"] == 7
    objs = _objects(registry)
    box = objs["Cd1qfFQFI4"]
    assert (box.geometry_type, box.bbox_x, box.bbox_y, box.bbox_w, box.bbox_h) == ("bbox", 1, 0.5, 2, 1.25)
    assert box.attributes == {"색상": "빨강", "옵션": ["썬루프", "루프랙"], "rotation": pytest.approx(math.degrees(0.3))}
    written = json.loads(box.extra["datamaker"]["a"])  # the record as written, flags and label included
    assert {k: written[k] for k in ("isLocked", "isVisible", "isValid", "label")} == {
        "isLocked": False, "isVisible": True, "isValid": True, "label": ["자동차", "빨강"]}
    assert objs["AUjPgaMzQa"].polygon == [[0, 0, 3, 0, 3, 2]] and objs["pl00000001"].geometry_type == "polyline"
    assert objs["kp00000001"].keypoints == [2, 1, 2]
    raw, rle = objs["sg00000001"], objs["sg00000002"]
    assert raw.geometry_type == rle.geometry_type == "mask" and raw.area == 5 and rle.area == 5
    assert objs["cl00000001"].geometry_type == "label"
    with registry.session() as s:
        assert set(s.scalars(select(LabelClass.key))) == {"자동차", "사람", "차선", "도로", "날씨"}
        (rel,) = s.scalars(select(AnnotationRelation))
        assert (rel.from_annotation_id, rel.to_annotation_id) == (objs["AUjPgaMzQa"].id, objs["Cd1qfFQFI4"].id)
        members = {(m.annotation_id, m.parent_annotation_id) for m in s.scalars(select(AnnotationGroupMember))}
        assert members == {(objs["AUjPgaMzQa"].id, None), (objs["kp00000001"].id, objs["AUjPgaMzQa"].id),
                           (objs["Cd1qfFQFI4"].id, None)}
        asset = s.scalars(select(Asset)).one()
        assert (asset.width, asset.height, asset.sha256 is not None) == (4, 3, True)


def test_export_gives_the_file_back_and_reimport_adds_nothing(registry: Registry, cli: Any, tmp_path: Path) -> None:
    _ok(cli.invoke("import", "datamaker", SOURCE, "--images", FIXTURES / "images", "--project", "p", "--json"))
    out = tmp_path / "out"
    _ok(cli.invoke("export", "datamaker", out, "--project", "p", "--json"))
    written = out / "street.json"
    assert json.loads(written.read_text()) == json.loads(SOURCE.read_text())
    first = written.read_bytes()
    _ok(cli.invoke("export", "datamaker", out, "--project", "p", "--json"))
    assert written.read_bytes() == first  # stable
    again = _ok(cli.invoke("import", "datamaker", written, "--images", FIXTURES / "images", "--project", "p",
                           "--json"))
    assert again["annotations"] == 0 and again["annotations_merged"] == 0 and again["annotations_unchanged"] == 7


def test_a_dm_schema_violation_names_the_rule_and_refuses_the_import(registry: Registry, cli: Any,
                                                                     tmp_path: Path) -> None:
    doc = json.loads(SOURCE.read_text())
    doc["annotations"]["image_1"][0]["classification"]["색상"] = "초록"  # not one of the enum
    del doc["annotations"]["image_1"][1]["classification"]["class"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc, ensure_ascii=False))
    r = cli.invoke("import", "datamaker", bad, "--images", FIXTURES / "images", "--schema",
                   FIXTURES / "dm-schema.json", "--project", "p")
    assert r.exit_code == 2
    assert "image_1 annotation Cd1qfFQFI4" in r.output and "'초록' is not one of" in r.output and "bad.json" in r.output
    assert "rule allOf/0/then/properties/색상/enum" in r.output and "image_1 annotation AUjPgaMzQa" in r.output
    with registry.session() as s:
        assert s.scalar(select(func.count()).select_from(ImportBatch)) == 0
    ok = _ok(cli.invoke("import", "datamaker", bad, "--images", FIXTURES / "images", "--schema",
                        FIXTURES / "dm-schema.json", "--project", "p", "--skip-invalid", "--json"))
    assert ok["annotations"] == 5 and ok["skipped"] == {"annotations": 2}


@pytest.mark.parametrize("rel", ["coco_instances/annotations/instances_train.json",
                                 "coco_instances/annotations/instances_val.json",
                                 "mmdet_coco/annotations/instances_val.json"])
def test_coco_to_datamaker_to_coco_keeps_what_both_hold(registry: Registry, cli: Any, corpus: Path,
                                                         tmp_path: Path, rel: str) -> None:
    ann = corpus / "datumaro" / "tests" / "assets" / "coco_dataset" / rel
    _ok(cli.invoke("import", "coco", ann, "--project", "a", "--json"))
    dm = tmp_path / "dm"
    _ok(cli.invoke("export", "datamaker", dm, "--project", "a", "--json"))
    _ok(cli.invoke("import", "datamaker", dm, "--project", "b", "--json"))
    coco_a, coco_b = tmp_path / "a.json", tmp_path / "b.json"
    _ok(cli.invoke("export", "coco", coco_a, "--project", "a", "--json"))
    _ok(cli.invoke("export", "coco", coco_b, "--project", "b", "--json"))
    a, b = json.loads(coco_a.read_text()), json.loads(coco_b.read_text())

    def shapes(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
        names = {c["id"]: c["name"] for c in doc["categories"]}
        # annotatorData has no area, iscrowd or box of a segmentation (derived again on import): those are
        # the loss; the class, boxes, polygons and each mask's pixels are compared.
        out = []
        for x in doc["annotations"]:
            seg = x.get("segmentation")
            if isinstance(seg, dict):
                rle = mask_utils.frPyObjects(seg, *seg["size"]) if isinstance(seg["counts"], list) else seg
                out.append((names[x["category_id"]], "mask", mask_utils.decode(rle).tobytes()))
            else:
                out.append((names[x["category_id"]], tuple(round(v, 6) for v in x["bbox"]), json.dumps(seg)))
        return sorted(out, key=repr)

    assert shapes(a) == shapes(b) and shapes(a)


def test_a_segmentation_needs_the_image_size(registry: Registry, cli: Any, tmp_path: Path) -> None:
    doc = json.loads(SOURCE.read_text())
    doc["extra"]["image_1"] = {"file_name": "street.png"}
    f = tmp_path / "nosize.json"
    f.write_text(json.dumps(doc, ensure_ascii=False))
    r = cli.invoke("import", "datamaker", f, "--project", "p")
    assert r.exit_code == 2 and "needs the image's size" in r.output and "sg00000001" not in r.output.split("\n")[0]
    shutil.rmtree(tmp_path / "none", ignore_errors=True)


def test_an_instance_across_a_sequence_is_one_track(registry: Registry, cli: Any, tmp_path: Path) -> None:
    frames = {}
    for i in range(3):
        frames[f"image_{i + 1}"] = [{"id": f"seq{i:07d}", "tool": "bounding_box", "isLocked": False,
                                     "isVisible": True, "classification": {"class": "자동차"}, "sequenceIndex": i,
                                     "instanceId": "inst-1"}]
    doc = {"extra": {k: {"width": 10, "height": 10} for k in frames}, "annotations": frames,
           "annotationsData": {k: [{"id": v[0]["id"], "coordinate": {"x": 1, "y": 1, "width": 2, "height": 2}}]
                               for k, v in frames.items()}, "relations": {}, "annotationGroups": {}}
    src = tmp_path / "seq.json"
    src.write_text(json.dumps(doc, ensure_ascii=False))
    _ok(cli.invoke("import", "datamaker", src, "--project", "p", "--json"))
    with registry.session() as s:
        tracks = {a.track_id for a in s.scalars(select(Annotation))}
    assert len(tracks) == 1 and None not in tracks
    out = tmp_path / "out"
    _ok(cli.invoke("export", "datamaker", out, "--project", "p", "--json"))
    assert json.loads((out / "seq.json").read_text()) == doc


def test_review_findings_identity_collisions_and_skip_invalid(registry: Registry, cli: Any, tmp_path: Path) -> None:
    nested = tmp_path / "dm" / "a"
    nested.mkdir(parents=True)
    shutil.copy(SOURCE, nested / "street.json")
    _ok(cli.invoke("import", "datamaker", nested / "street.json", "--images", FIXTURES / "images", "--project", "p",
                   "--json"))
    # The same work imported through its parent folder is the same asset (its assignmentId names it).
    again = _ok(cli.invoke("import", "datamaker", tmp_path / "dm", "--images", FIXTURES / "images", "--project", "p",
                           "--json"))
    assert again["images_new"] == 0 and again["annotations"] == 0
    # A file with other bytes for the same asset, under --skip-invalid: the image is refused, and its
    # relations and groups go with it (no crash).
    doc = json.loads(SOURCE.read_text())
    doc["extra"]["image_1"]["width"] = 5
    bad = tmp_path / "bad" / "street.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(doc, ensure_ascii=False))
    skipped = _ok(cli.invoke("import", "datamaker", bad, "--project", "p", "--skip-invalid", "--json"))
    assert skipped["skipped"]["relations"] == 1 and skipped["skipped"]["groups"] == 1
    # An image from COCO called street.png does not overwrite the Datamaker file street.json on export.
    coco = {"images": [{"id": 1, "file_name": "street.png", "width": 4, "height": 3}],
            "categories": [{"id": 1, "name": "자동차"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0}]}
    (tmp_path / "c.json").write_text(json.dumps(coco, ensure_ascii=False))
    _ok(cli.invoke("import", "coco", tmp_path / "c.json", "--project", "p", "--json"))
    out = tmp_path / "out"
    exported = _ok(cli.invoke("export", "datamaker", out, "--project", "p", "--json"))
    assert exported["files"] == 2 and exported["assets"] == 2
    assert json.loads((out / "street.json").read_text()) == json.loads(SOURCE.read_text())
    assert len(list(out.glob("street_*.json"))) == 1


def test_a_changed_classification_rewrites_its_label(registry: Registry, cli: Any, tmp_path: Path) -> None:
    _ok(cli.invoke("import", "datamaker", SOURCE, "--images", FIXTURES / "images", "--project", "p", "--json"))
    with registry.session() as s:
        box = s.scalars(select(Annotation).where(Annotation.source_key == "datamaker:Cd1qfFQFI4")).one()
        box.attributes = {**box.attributes, "색상": "파랑"}
    _ok(cli.invoke("export", "datamaker", tmp_path / "out", "--project", "p", "--json"))
    ann = json.loads((tmp_path / "out" / "street.json").read_text())["annotations"]["image_1"][0]
    assert ann["classification"]["색상"] == "파랑" and ann["label"] == ["자동차", "파랑", "썬루프", "루프랙"]
