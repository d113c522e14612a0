"""YOLO (Ultralytics and Darknet), Pascal VOC and ImageNet layouts, on the corpus's real examples (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Annotation, Asset, LabelClass
from dsgen_core.storage import LocalStorage
from dsgen_core.versions.lifecycle import create_version, freeze_version


@pytest.fixture(scope="module")
def assets(corpus: Path) -> Path:
    return corpus / "cvat-datumaro" / "tests" / "assets"


def _ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _objects(reg: Registry, project: str = "p") -> list[Annotation]:
    with reg.session() as s:
        pid = get_project(s, project).id
        return list(s.scalars(select(Annotation).join(Asset, Asset.id == Annotation.asset_id)
                              .where(Asset.project_id == pid).order_by(Annotation.id)))


@pytest.mark.parametrize("variant", ["yolov8_detection", "yolov8_detection_with_list_of_names",
                                     "yolov8_detection_with_subset_txt", "yolov8_detection_with_list_of_imgs"])
def test_yolo_boxes_are_pixels_and_splits_are_metadata(registry: Registry, cli: Any, assets: Path,
                                                       variant: str) -> None:
    root = assets / "yolo_dataset" / variant
    out = _ok(cli.invoke("import", "yolo", root, "--project", "p", "--json"))
    assert out["images_new"] == 1 and out["annotations"] == 2
    w, h = Image.open(next(root.rglob("1.jpg"))).size
    boxes = sorted((round(a.bbox_x, 3), round(a.bbox_y, 3), round(a.bbox_w, 3), round(a.bbox_h, 3))
                   for a in _objects(registry))
    expect = sorted((round((cx - bw / 2) * w, 3), round((cy - bh / 2) * h, 3), round(bw * w, 3), round(bh * h, 3))
                    for cx, cy, bw, bh in ((0.133333, 0.3, 0.266667, 0.2), (0.266667, 0.45, 0.133333, 0.3)))
    assert boxes == expect
    with registry.session() as s:
        assert set(s.scalars(select(LabelClass.key))) >= {"label_2", "label_4"}
    train = _ok(cli.invoke("query", "source_split:train", "--project", "p", "--json"))
    assert len(train["ids"] if isinstance(train, dict) else train) == 1
    again = _ok(cli.invoke("import", "yolo", root, "--project", "p", "--json"))
    assert again["annotations"] == 0 and again["images_new"] == 0


def test_yolo_segments_poses_and_oriented_boxes(registry: Registry, cli: Any, assets: Path) -> None:
    y = assets / "yolo_dataset"
    _ok(cli.invoke("import", "yolo", y / "yolov8_segmentation", "--project", "seg", "--json"))
    polys = list(_objects(registry, "seg"))
    assert [a.geometry_type for a in polys] == ["polygon", "polygon"] and len(polys[1].polygon[0]) == 10
    _ok(cli.invoke("import", "yolo", y / "yolov8_pose", "--project", "pose", "--json"))
    (kp,) = _objects(registry, "pose")
    assert kp.geometry_type == "keypoints" and kp.keypoints[2::3] == [2, 2, 2] and kp.num_keypoints == 3
    _ok(cli.invoke("import", "yolo", y / "yolov8_pose_two_values_per_point", "--project", "pose2", "--json"))
    (kp2,) = _objects(registry, "pose2")
    assert kp2.keypoints[0::3] == pytest.approx([v * (kp.keypoints[0] / 0.1) for v in (0.1, 0.3, 0.5)])
    _ok(cli.invoke("import", "yolo", y / "yolov8_oriented_boxes", "--project", "obb", "--task", "obb", "--json"))
    rotated = _objects(registry, "obb")
    assert all(a.geometry_type == "bbox" and "rotation" in (a.attributes or {}) for a in rotated)
    assert any(abs(a.attributes["rotation"]) > 1 for a in rotated)


def test_darknet_yolo(registry: Registry, cli: Any, assets: Path) -> None:
    out = _ok(cli.invoke("import", "yolo", assets / "yolo_dataset" / "yolo", "--project", "p", "--json"))
    assert out["images_new"] == 1 and out["annotations"] == 2


def test_voc_objects_flags_parts_and_splits_round_trip(registry: Registry, cli: Any, assets: Path,
                                                        tmp_path: Path) -> None:
    root = assets / "voc_dataset" / "voc_dataset1"
    out = _ok(cli.invoke("import", "voc", root, "--project", "p", "--json"))
    assert out["annotations"] == 2
    cat, person = _objects(registry)
    assert (cat.bbox_x, cat.bbox_y, cat.bbox_w, cat.bbox_h) == (1, 2, 2, 2)
    assert cat.attributes == {"pose": "Unspecified", "truncated": True, "difficult": False}
    assert person.extra == {"voc": {"parts": [{"name": "head", "bndbox": [5.5, 6.0, 2.0, 2.0]}]}}
    assert person.attributes["action.jumping"] is False and person.attributes["action.phoning"] is True
    with registry.session() as s:
        p = get_project(s, "p")
        create_version(s, p, "v1", seed=1)
        freeze_version(s, p, "v1", storage=LocalStorage(registry.settings.storage_root))
    _ok(cli.invoke("export", "voc", "v1", tmp_path / "voc", "--project", "p", "--json"))
    _ok(cli.invoke("import", "voc", tmp_path / "voc", "--project", "q", "--json"))

    def facts(objs: list[Annotation]) -> list[Any]:
        return sorted((a.geometry_type, a.bbox_x, a.bbox_y, a.bbox_w, a.bbox_h, a.area,
                       json.dumps(a.attributes, sort_keys=True), json.dumps(a.extra, sort_keys=True)) for a in objs)

    assert facts(_objects(registry, "q")) == facts(_objects(registry, "p"))


def test_imagenet_folders_and_lists(registry: Registry, cli: Any, assets: Path, tmp_path: Path) -> None:
    out = _ok(cli.invoke("import", "imagenet", assets / "imagenet_dataset", "--project", "p", "--json"))
    assert out["images_new"] == 3 and out["annotations"] == 3
    assert {a.geometry_type for a in _objects(registry)} == {"label"}
    txt = _ok(cli.invoke("import", "imagenet", assets / "imagenet_txt_dataset" / "basic", "--project", "t",
                         "--json"))
    assert txt["images_new"] == 4 and txt["annotations"] == 4 and txt["warnings"] == 2  # two listed files missing
    with registry.session() as s:
        p = get_project(s, "p")
        create_version(s, p, "v1", seed=1)
        freeze_version(s, p, "v1", storage=LocalStorage(registry.settings.storage_root))
    exp = _ok(cli.invoke("export", "imagenet", "v1", tmp_path / "in", "--project", "p", "--json"))
    assert exp["images"] == 3
    assert sorted(p.parent.name for p in (tmp_path / "in").rglob("*.jpg")) == ["label_0", "label_0", "label_1"]


@pytest.mark.parametrize(("source", "rel", "target"), [
    ("voc", "voc_dataset/voc_dataset1", "yolo"),
    ("yolo", "yolo_dataset/yolov8_segmentation", "voc"),
    ("yolo", "yolo_dataset/yolov8_detection", "coco"),
    ("imagenet", "imagenet_dataset", "datamaker"),
    ("voc", "voc_dataset/voc_dataset1", "imagenet"),
])
def test_convert_any_to_any_with_a_loss_report(registry: Registry, cli: Any, assets: Path, tmp_path: Path,
                                               source: str, rel: str, target: str) -> None:
    out = tmp_path / ("out.json" if target == "coco" else "out")
    r = _ok(cli.invoke("convert", "--from", source, "--to", target, assets / rel, out, "--json"))
    assert r["objects"] > 0 and out.exists()
    if (source, target) == ("yolo", "voc"):
        assert r["loss_report"] == {"polygons, masks, keypoints and polylines (written as their boxes)": 2}
        xml = next((out / "Annotations").glob("*.xml")).read_text()
        assert xml.count("<object>") == 2
    if (source, target) == ("voc", "yolo"):
        assert "object attributes (occluded, rotation, custom)" in r["loss_report"]
        # VOC's own splits (ImageSets/Main: 000001 train, 000002 test) are the YOLO splits
        assert {(p.parent.name, p.name.split("__")[-1]) for p in (out / "images").rglob("*.jpg")} == {
            ("train", "2007_000001.jpg"), ("test", "2007_000002.jpg")}
    with registry.session() as s:  # the user's registry is not touched
        assert s.scalar(select(Annotation.id)) is None


def test_voc_instance_masks_land_on_their_objects(registry: Registry, cli: Any, assets: Path) -> None:
    from dsgen_core.formats.voc_imagenet import voc_colormap

    assert voc_colormap()[1:4] == [(128, 0, 0), (0, 128, 0), (128, 128, 0)]  # VOC's own palette
    _ok(cli.invoke("import", "voc", assets / "voc_dataset" / "voc_dataset1", "--project", "p", "--json"))
    cat, person = _objects(registry)
    # SegmentationObject/2007_000001.png: 200 pixels of colour (128, 0, 0), object 1 (the cat)
    assert cat.geometry_type == "mask" and cat.mask_uri is not None and person.geometry_type == "bbox"


def test_names_in_a_dataset_cannot_reach_outside_it(registry: Registry, cli: Any, assets: Path,
                                                    tmp_path: Path) -> None:
    """Review findings: a VOC filename with ``..`` is not read, and a class name with ``/`` or ``..``
    stays one folder inside an ImageNet export."""
    import shutil

    voc = tmp_path / "voc"
    shutil.copytree(assets / "voc_dataset" / "voc_dataset1", voc)
    (tmp_path / "secret.jpg").write_bytes((voc / "JPEGImages" / "2007_000001.jpg").read_bytes())
    xml = voc / "Annotations" / "2007_000002.xml"
    xml.write_text("<annotation><filename>../../secret.jpg</filename><object><name>../../escaped</name>"
                   "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax><ymax>3</ymax></bndbox></object></annotation>")
    refused = cli.invoke("import", "voc", voc, "--project", "p")
    assert refused.exit_code == 2 and "outside the dataset folder" in refused.output
    _ok(cli.invoke("import", "voc", voc, "--project", "p", "--skip-invalid", "--json"))
    with registry.session() as s:
        assert not any("secret" in (a.storage_uri or "") for a in s.scalars(select(Asset)))
    shutil.rmtree(voc / "Annotations")
    (voc / "Annotations").mkdir()
    (voc / "Annotations" / "2007_000001.xml").write_text(
        "<annotation><filename>2007_000001.jpg</filename><object><name>../../escaped</name><bndbox><xmin>1</xmin>"
        "<ymin>1</ymin><xmax>3</xmax><ymax>3</ymax></bndbox></object></annotation>")
    _ok(cli.invoke("import", "voc", voc, "--project", "q", "--json"))
    with registry.session() as s:
        q = get_project(s, "q")
        create_version(s, q, "v1", seed=1)
        freeze_version(s, q, "v1", storage=LocalStorage(registry.settings.storage_root))
    out = tmp_path / "deep" / "er" / "in"
    before = set(tmp_path.rglob("*.jpg"))
    _ok(cli.invoke("export", "imagenet", "v1", out, "--project", "q", "--json"))
    written = set(tmp_path.rglob("*.jpg")) - before
    assert written and all(p.resolve().is_relative_to(out.resolve()) for p in written)


def _jpeg(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 150)).save(path)
    return path


def test_review_findings_on_layout_paths_and_names(registry: Registry, cli: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Review findings (fixed in dd9eaaf, tested here; each assertion fails on the code before it): a
    YOLO folder given as a relative path, Roboflow's ``../train/images`` in data.yaml, an ImageNet
    label folder that is called ``train``, and two images of one stem in a VOC export."""
    rf = tmp_path / "roboflow"
    for split in ("train", "valid"):
        _jpeg(rf / split / "images" / f"{split}_1.jpg")
        (rf / split / "labels").mkdir(parents=True)
        (rf / split / "labels" / f"{split}_1.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (rf / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 1\nnames: ['car']\n")
    monkeypatch.chdir(tmp_path)
    out = _ok(cli.invoke("import", "yolo", "roboflow", "--project", "rf", "--json"))
    assert out["images_new"] == 2 and out["annotations"] == 2
    with registry.session() as s:
        uris = list(s.scalars(select(Asset.storage_uri)))
    assert uris and all(Path(u).is_absolute() and Path(u).is_file() for u in uris)
    val = _ok(cli.invoke("query", "source_split:val", "--project", "rf", "--json"))
    assert len(val["ids"] if isinstance(val, dict) else val) == 1

    inet = tmp_path / "inet"
    _jpeg(inet / "train" / "t1.jpg")  # a class called "train", not a split
    _jpeg(inet / "cat" / "c1.jpg")
    _ok(cli.invoke("import", "imagenet", inet, "--project", "in", "--json"))
    with registry.session() as s:
        pid = get_project(s, "in").id
        keys = set(s.scalars(select(LabelClass.key).join(Annotation, Annotation.label_class_id == LabelClass.id)
                             .join(Asset, Asset.id == Annotation.asset_id).where(Asset.project_id == pid)))
    assert keys == {"train", "cat"}

    voc = tmp_path / "voc"
    for name in ("a.jpg", "a.png"):
        _jpeg(voc / "JPEGImages" / name)
        (voc / "Annotations").mkdir(parents=True, exist_ok=True)
        (voc / "Annotations" / f"{name.replace('.', '_')}.xml").write_text(
            f"<annotation><filename>{name}</filename><object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
            "<xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>")
    _ok(cli.invoke("import", "voc", voc, "--project", "v", "--json"))
    with registry.session() as s:
        p = get_project(s, "v")
        create_version(s, p, "v1", seed=1)
        freeze_version(s, p, "v1", storage=LocalStorage(registry.settings.storage_root))
    exp = _ok(cli.invoke("export", "voc", "v1", tmp_path / "voc_out", "--project", "v", "--json"))
    assert exp["images"] == 2 and len(list((tmp_path / "voc_out" / "Annotations").glob("*.xml"))) == 2
    again = _ok(cli.invoke("import", "voc", tmp_path / "voc_out", "--project", "v2", "--json"))
    assert again["images_new"] == 2 and again["annotations"] == 2
