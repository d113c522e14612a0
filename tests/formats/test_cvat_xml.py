"""CVAT's XML ("CVAT for images 1.1" / "CVAT for video 1.1") in and out of the registry (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from cvat_server import _from_cvat_xml
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Annotation, Asset, LabelClass
from dsgen_core.storage import LocalStorage
from dsgen_core.versions.lifecycle import create_version, freeze_version


@pytest.fixture(scope="module")
def xml_sets(corpus: Path) -> dict[str, Path]:
    return {"images": corpus / "cvat-datumaro" / "tests" / "assets" / "cvat_dataset" / "for_images" / "train.xml",
            "video": corpus / "datumaro" / "tests" / "assets" / "cvat_dataset" / "for_video",
            "project": corpus / "datumaro" / "tests" / "assets" / "cvat_dataset" / "for_images" / "export_project"}


def _ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _objects(reg: Registry, project: str) -> list[Annotation]:
    with reg.session() as s:
        pid = get_project(s, project).id
        return list(s.scalars(select(Annotation).join(Asset, Asset.id == Annotation.asset_id)
                              .where(Asset.project_id == pid).order_by(Annotation.id)))


def _facts(reg: Registry, project: str) -> list[str]:
    return sorted(json.dumps([a.geometry_type, a.bbox_x, a.bbox_y, a.bbox_w, a.bbox_h, a.polygon, a.keypoints,
                              a.attributes, a.extra, a.track_id is not None], sort_keys=True)
                  for a in _objects(reg, project))


def _freeze(reg: Registry, project: str, tag: str = "v1") -> None:
    with reg.session() as s:
        p = get_project(s, project)
        create_version(s, p, tag, seed=1)
        freeze_version(s, p, tag, storage=LocalStorage(reg.settings.storage_root))


def test_images_xml_labels_attribute_types_skeletons_and_unlabelled_shapes(registry: Registry, cli: Any,
                                                                           xml_sets: dict[str, Path]) -> None:
    out = _ok(cli.invoke("import", "cvat", xml_sets["images"], "--project", "a", "--json"))
    assert out["images_new"] == 2 and out["annotations"] == 6
    box, polyline, skel, polygon, points, skel2 = _objects(registry, "a")
    assert (box.bbox_x, box.bbox_y, box.bbox_w, box.bbox_h) == (0, 2, 4, 2)
    # checkbox -> bool, number -> number, radio and text -> text exactly as written ("0003")
    assert box.attributes == {"a1": True, "a2": "v3", "a3": "0003", "a4": 2.4, "occluded": True, "rotation": 0.0}
    assert box.extra == {"cvat": {"z_order": "1"}}
    assert polyline.label_class_id is None and polygon.label_class_id is None  # label="" is no class
    assert polyline.polygon == [[1, 2, 3, 4, 5, 6, 7, 8]] and points.keypoints == [1, 2, 2, 3, 4, 2, 5, 6, 2]
    assert skel.keypoints[:3] == [0, 0, 0] and skel.keypoints[3:] == [2, 2, 2, 3, 3, 2, 4, 4, 2]  # outside: v 0
    with registry.session() as s:
        sk = s.scalars(select(LabelClass).where(LabelClass.key == "skeleton")).one()
        assert sk.keypoint_spec == {"keypoints": ["1", "2", "3", "4"], "skeleton": [[3, 2], [1, 4]]}
        assert not s.scalars(select(LabelClass).where(LabelClass.key.in_(["1", "2", "", "3"]))).all()
    assert skel2.keypoints[6:9] == [0, 0, 0]


def test_export_then_import_adds_nothing_and_another_project_gets_the_same(registry: Registry, cli: Any,
                                                                            xml_sets: dict[str, Path],
                                                                            tmp_path: Path) -> None:
    _ok(cli.invoke("import", "cvat", xml_sets["images"], "--project", "a", "--json"))
    _freeze(registry, "a")
    written = _ok(cli.invoke("export", "cvat", "v1", tmp_path / "out", "--project", "a", "--json"))
    assert written["images"] == 2 and written["objects"] == 6 and written["not_written"] == 0
    doc = (tmp_path / "out" / "annotations.xml").read_text()
    assert 'name="img0.jpg"' in doc and "<type>skeleton</type>" in doc and "<input_type>number</input_type>" in doc
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["img0.jpg", "img1.jpg"]
    again = _ok(cli.invoke("import", "cvat", tmp_path / "out", "--project", "a", "--json"))
    assert (again["images_new"], again["annotations"], again["annotations_unchanged"]) == (0, 0, 6)
    _ok(cli.invoke("import", "cvat", tmp_path / "out", "--project", "b", "--json"))
    assert _facts(registry, "b") == _facts(registry, "a")
    # What CVAT's own "CVAT 1.1" importer (as the test server implements it) makes of the export.
    task = {"labels": [{"id": 1, "name": "label1", "attributes": [{"id": 11, "name": n} for n in ("a1", "a2", "a3", "a4")],
                        "sublabels": []},
                       {"id": 2, "name": "label2", "attributes": [], "sublabels": []},
                       {"id": 3, "name": "skeleton", "attributes": [],
                        "sublabels": [{"id": 30 + i, "name": str(i)} for i in range(1, 5)]},
                       {"id": 4, "name": "", "attributes": [], "sublabels": []}],
            "frames": [{"name": "img0.jpg"}, {"name": "img1.jpg"}]}
    found = _from_cvat_xml(task, doc.encode())
    assert len(found["shapes"]) == 6 and {s["type"] for s in found["shapes"]} == {
        "rectangle", "polyline", "polygon", "points", "skeleton"}


def test_video_xml_frames_by_number_and_tracks(registry: Registry, cli: Any, xml_sets: dict[str, Path]) -> None:
    out = _ok(cli.invoke("import", "cvat", xml_sets["video"], "--project", "v", "--json"))
    # start 10, stop 19, step 3: frames 10, 13, 16, 19; 19 has no image file (a warning, kept without file)
    assert out["images_new"] == 4 and out["warnings"] == 1 and out["annotations"] == 3 and out["tracks"] == 3
    with registry.session() as s:
        names = dict(s.execute(select(Asset.id, Asset.file_name)).all())
    box, pts, line = _objects(registry, "v")
    assert names[box.asset_id].endswith("frame_000010.png") and box.attributes["occluded"] is True
    assert names[line.asset_id].endswith("frame_000013.png") and line.geometry_type == "polyline"
    assert pts.attributes["hgl"] == "hgkf" and len({box.track_id, pts.track_id, line.track_id}) == 3


def test_track_rectangles_are_interpolated_and_written_back_as_tracks(registry: Registry, cli: Any,
                                                                      tmp_path: Path) -> None:
    root = tmp_path / "t"
    for i in range(4):
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (50, 40)).save(root / "images" / f"f{i}.png")
    images = "".join(f'<image id="{i}" name="f{i}.png" width="50" height="40"></image>' for i in range(4))
    (root / "annotations.xml").write_text(
        f'<annotations><version>1.1</version>{images}<track id="7" label="car">'
        '<box frame="0" keyframe="1" outside="0" occluded="0" xtl="0" ytl="0" xbr="10" ybr="10"></box>'
        '<box frame="2" keyframe="1" outside="0" occluded="0" xtl="10" ytl="0" xbr="20" ybr="10"></box>'
        '<box frame="3" keyframe="1" outside="1" occluded="0" xtl="10" ytl="0" xbr="20" ybr="10"></box>'
        "</track></annotations>")
    out = _ok(cli.invoke("import", "cvat", root, "--project", "t", "--json"))
    assert out["annotations"] == 3 and out["tracks"] == 1
    objs = _objects(registry, "t")
    assert [a.bbox_x for a in objs] == [0, 5, 10] and [a.attributes["keyframe"] for a in objs] == [True, False, True]
    _freeze(registry, "t")
    _ok(cli.invoke("export", "cvat", "v1", tmp_path / "out", "--project", "t", "--json"))
    doc = (tmp_path / "out" / "annotations.xml").read_text()
    assert doc.count("<track ") == 1 and doc.count('outside="1"') == 1  # keyframes 0 and 2, ended at 3
    again = _ok(cli.invoke("import", "cvat", tmp_path / "out", "--project", "t", "--json"))
    assert (again["annotations"], again["annotations_unchanged"]) == (0, 3)


def test_shapes_the_registry_cannot_hold_refuse_the_import_unless_skipped(registry: Registry, cli: Any,
                                                                         tmp_path: Path) -> None:
    xml = tmp_path / "e.xml"
    xml.write_text('<annotations><image id="0" name="a.jpg" width="20" height="20">'
                   '<ellipse label="ball" cx="5" cy="5" rx="2" ry="3" occluded="0"></ellipse>'
                   '<box label="ball" xtl="1" ytl="1" xbr="4" ybr="4" occluded="0"></box></image></annotations>')
    refused = cli.invoke("import", "cvat", xml, "--project", "e")
    assert refused.exit_code == 2 and "ellipse" in refused.output and "Traceback" not in refused.output
    with registry.session() as s:  # all-or-nothing: not even the box was written
        assert s.scalar(select(Annotation.id)) is None
    out = _ok(cli.invoke("import", "cvat", xml, "--project", "e", "--skip-invalid", "--json"))
    assert out["annotations"] == 1 and out["errors"] == 1
    bad = tmp_path / "bad.xml"
    bad.write_text("<annotations><image")
    r = cli.invoke("import", "cvat", bad, "--project", "e")
    assert r.exit_code == 2 and "not XML" in r.output


def test_convert_coco_to_cvat_and_back(registry: Registry, cli: Any, tmp_path: Path) -> None:
    from dsgen_core.demo.synth import generate_demo_dataset

    demo = generate_demo_dataset(tmp_path / "demo", n_images=8, seed=2)
    r = _ok(cli.invoke("convert", "--from", "coco", "--to", "cvat", demo.annotations_path, tmp_path / "x",
                       "--images", demo.images_dir, "--json"))
    assert r["objects"] > 0 and (tmp_path / "x" / "annotations.xml").is_file()
    back = _ok(cli.invoke("convert", "--from", "cvat", "--to", "coco", tmp_path / "x", tmp_path / "back.json", "--json"))
    src = json.loads(demo.annotations_path.read_text())
    got = json.loads((tmp_path / "back.json").read_text())
    assert back["objects"] == r["objects"] == len(src["annotations"])

    def boxes(doc: dict[str, Any]) -> list[tuple[float, ...]]:
        return sorted(tuple(round(v, 6) for v in a["bbox"]) for a in doc["annotations"])

    assert boxes(got) == boxes(src)
    assert sorted(c["name"] for c in got["categories"]) == sorted(c["name"] for c in src["categories"])


def test_review_findings_explicit_track_frames_off_step_frames_and_name_clashes(registry: Registry, cli: Any,
                                                                                tmp_path: Path) -> None:
    """A video export's polygon track lists every frame (keyframe="0" between keys): each is kept; a frame
    number off the task's step is an error, not rounded; an export never gives two images one name."""
    xml = tmp_path / "v.xml"
    shape = '<polygon frame="{f}" keyframe="{k}" outside="0" occluded="0" points="{x},1;9,1;9,9"></polygon>'
    xml.write_text('<annotations><meta><task><start_frame>0</start_frame><stop_frame>4</stop_frame>'
                   '<frame_filter>step=2</frame_filter><original_size><width>20</width><height>20</height>'
                   '</original_size></task></meta><track id="3" label="lane">'
                   + "".join(shape.format(f=f, k=int(f != 2), x=f) for f in (0, 2, 4)) + "</track></annotations>")
    out = _ok(cli.invoke("import", "cvat", xml, "--project", "v", "--json"))
    assert out["annotations"] == 3 and out["images_new"] == 3
    assert [(a.polygon[0][0], a.attributes["keyframe"]) for a in _objects(registry, "v")] == [
        (0, True), (2, False), (4, True)]
    xml.write_text(xml.read_text().replace('frame="2"', 'frame="3"'))
    off = cli.invoke("import", "cvat", xml, "--project", "w")
    assert off.exit_code == 2 and "frame 3 is not one of the task's" in off.output

    root = tmp_path / "n"  # a CVAT image named j.jpg (its file images/j.jpg), and a COCO image whose file is j.jpg
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "images" / "j.jpg")
    (root / "annotations.xml").write_text(
        '<annotations><image id="0" name="j.jpg" width="8" height="8"><tag label="x"></tag></image></annotations>')
    _ok(cli.invoke("import", "cvat", root, "--project", "n", "--json"))
    coco = tmp_path / "coco"
    coco.mkdir()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(coco / "j.jpg")
    (coco / "c.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "j.jpg", "width": 8, "height": 8}],
                                             "categories": [{"id": 1, "name": "x"}], "annotations": []}))
    _ok(cli.invoke("import", "coco", coco / "c.json", "--images", coco, "--project", "n", "--json"))
    _freeze(registry, "n")
    _ok(cli.invoke("export", "cvat", "v1", tmp_path / "out", "--project", "n", "--json"))
    names = [line.split('name="')[1].split('"')[0] for line in (tmp_path / "out" / "annotations.xml").read_text()
             .splitlines() if line.startswith("<image ")]
    assert len(names) == 2 and "j.jpg" in names
    assert len(names) == len(set(names))
