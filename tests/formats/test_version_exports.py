"""Exports of frozen versions: COCO per split, YOLO detect/segment/pose; byte-identical; trainable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml
from pycocotools.coco import COCO

from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.errors import DsgenError
from dsgen_core.formats.version_export import export_version_coco, export_version_yolo
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.storage import LocalStorage
from dsgen_core.versions.lifecycle import create_version, freeze_version, get_version, version_summary
from support import import_file, tree_digest


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo"), n_images=40, seed=5).root


@pytest.fixture
def frozen(registry: Registry, demo_data: Path) -> tuple[Registry, int]:
    import_file(registry, demo_data / "annotations" / "instances_default.json", images=demo_data / "images", project="p")
    with registry.session() as s:
        create_version(s, get_project(s, "p"), "v1", seed=1)
    with registry.session() as s:
        pid = get_project(s, "p").id
        freeze_version(s, get_project(s, "p"), "v1", storage=LocalStorage(registry.settings.storage_root))
    return registry, pid


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_yolo_export_is_complete_hard_linked_and_byte_identical(frozen: tuple[Registry, int], tmp_path: Path, task: str) -> None:
    reg, pid = frozen
    storage = LocalStorage(reg.settings.storage_root)
    out = tmp_path / "yolo"
    with reg.session() as s:
        r = export_version_yolo(s, get_project(s, "p"), "v1", out, storage=storage, task=task)
        summary = version_summary(s, get_version(s, get_project(s, "p"), "v1")).to_dict()
    assert r.files == summary["splits"]
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "circle", 1: "square", 2: "triangle"} and "path" not in data
    labels = list((out / "labels").rglob("*.txt"))
    assert len(labels) == sum(summary["splits"].values())
    n_lines = sum(len(p.read_text().splitlines()) for p in labels)
    assert n_lines == sum(r.annotations.values()) > 0
    for p in labels:
        for line in p.read_text().splitlines():
            cls, *coords = line.split()
            assert int(cls) in (0, 1, 2) and all(0.0 <= float(c) <= 1.0 for c in coords)
            assert len(coords) == 4 if task == "detect" else len(coords) >= 6 and len(coords) % 2 == 0
    img = next((out / "images" / "train").iterdir())
    assert img.stat().st_nlink >= 2, "images should be hard links to the registry's files"
    assert r.linked == sum(r.files.values())
    first = tree_digest(out)
    with reg.session() as s:
        export_version_yolo(s, get_project(s, "p"), "v1", out, storage=storage, task=task)
    assert tree_digest(out) == first, "re-exporting a version must give the same bytes"


def test_coco_export_per_split_loads_and_matches_the_version(frozen: tuple[Registry, int], tmp_path: Path) -> None:
    reg, pid = frozen
    with reg.session() as s:
        r = export_version_coco(s, get_project(s, "p"), "v1", tmp_path / "coco", storage=LocalStorage(reg.settings.storage_root))
        summary = version_summary(s, get_version(s, get_project(s, "p"), "v1")).to_dict()
    for split, n in summary["splits"].items():
        c = COCO(str(tmp_path / "coco" / "annotations" / f"instances_{split}.json"))
        assert len(c.imgs) == n == r.files[split]
        assert len(c.anns) == summary["annotations"][split]
        for im in c.imgs.values():
            assert (tmp_path / "coco" / "images" / split / im["file_name"]).is_file()
        for ann in c.anns.values():
            if ann.get("segmentation"):
                assert c.annToMask(ann).sum() > 0
    tracked = [a for split in summary["splits"] for a in orjson.loads(
        (tmp_path / "coco" / "annotations" / f"instances_{split}.json").read_bytes())["annotations"]
        if "track_id" in (a.get("attributes") or {})]
    assert tracked, "CVAT track ids survive into the version's export"


def test_export_of_a_draft_is_refused(registry: Registry, demo_data: Path, tmp_path: Path) -> None:
    import_file(registry, demo_data / "annotations" / "instances_default.json", images=demo_data / "images", project="p")
    with registry.session() as s:
        create_version(s, get_project(s, "p"), "draft")
    with pytest.raises(DsgenError, match="is a draft"), registry.session() as s:
        export_version_yolo(s, get_project(s, "p"), "draft", tmp_path, storage=LocalStorage(registry.settings.storage_root))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_exported_yolo_folder_trains_with_plain_yolo_offline(cli, frozen: tuple[Registry, int], tmp_path: Path) -> None:
    """The export is an ordinary Ultralytics dataset: `yolo train` runs one epoch on it with no network."""
    out = tmp_path / "yolo"
    assert cli("export", "yolo", "v1", str(out), "--project", "p").returncode == 0
    env = {**cli.env, "YOLO_OFFLINE": "1", "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "YOLO_CONFIG_DIR": str(tmp_path / "ycfg")}
    yolo = Path(sys.executable).with_name("yolo")
    proc = subprocess.run(
        [str(yolo), "train", f"data={out / 'data.yaml'}", "model=yolov8n.yaml", "epochs=1", "imgsz=64", "batch=8",
         "workers=0", "device=cpu", "plots=False", "amp=False", f"project={tmp_path / 'runs'}", "name=t", "exist_ok=True"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "runs" / "t" / "weights" / "last.pt").is_file()
    assert not any(p.suffix == ".pt" and p.name.startswith("yolo") for p in tmp_path.iterdir()), "nothing downloaded"
