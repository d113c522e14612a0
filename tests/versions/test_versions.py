"""Dataset versions: deterministic, stratified, group-aware splits; immutability; diff; CLI."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError

from dsgen_core.config import load_settings
from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.errors import DsgenError
from dsgen_core.query import count_query
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import (
    Annotation,
    Asset,
    DatasetSplit,
    DatasetVersion,
    DatasetVersionAnnotation,
    DatasetVersionAsset,
    LabelClass,
    Project,
)
from dsgen_core.storage import LocalStorage
from dsgen_core.versions.content_hash import verify_content_hash
from dsgen_core.versions.lifecycle import (
    create_version,
    diff_versions,
    freeze_version,
    get_version,
    version_summary,
)
from dsgen_core.versions.splits import assign_splits, parse_split_config
from support import import_file


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo"), n_images=60, seed=3).root


def _load(reg: Registry, demo: Path) -> int:
    import_file(reg, demo / "annotations" / "instances_default.json", images=demo / "images", project="p")
    with reg.session() as s:
        return get_project(s, "p").id


def _freeze(reg: Registry, tag: str, **kw: object) -> dict:
    with reg.session() as s:
        create_version(s, get_project(s, "p"), tag, **kw)
    with reg.session() as s:
        freeze_version(s, get_project(s, "p"), tag, storage=LocalStorage(reg.settings.storage_root))
        return version_summary(s, get_version(s, get_project(s, "p"), tag)).to_dict()


def _membership(reg: Registry, tag: str) -> dict[str, str]:
    with reg.session() as s:
        v = s.scalar(select(DatasetVersion).where(DatasetVersion.version_tag == tag))
        rows = s.execute(
            select(Asset.file_name, DatasetSplit.split)
            .join(DatasetVersionAsset, DatasetVersionAsset.asset_id == Asset.id)
            .join(DatasetSplit, DatasetSplit.id == DatasetVersionAsset.split_id)
            .where(DatasetVersionAsset.dataset_version_id == v.id)
        ).all()
    return dict(rows)


def test_freeze_is_deterministic_stratified_and_group_aware(registry: Registry, demo_data: Path, tmp_path: Path) -> None:
    pid = _load(registry, demo_data)
    summary = _freeze(registry, "v1", seed=7)
    assert summary["frozen"] and len(summary["content_hash"]) == 64
    assert sum(summary["splits"].values()) == 60 and all(n > 0 for n in summary["splits"].values())
    assert summary["splits"]["train"] >= 40
    for cls, per_split in summary["classes"].items():
        assert per_split.get("train", 0) > 0, f"class {cls} has no train examples"

    split_of = _membership(registry, "v1")
    with registry.session() as s:
        tracks = s.execute(select(Annotation.track_id, Asset.file_name).join(Asset).where(Annotation.track_id.is_not(None))).all()
    by_track: dict[int, set[str]] = defaultdict(set)
    for track_id, name in tracks:
        by_track[track_id].add(split_of[name])
    assert by_track and all(len(splits) == 1 for splits in by_track.values()), "a track straddles splits"

    # The same content in a fresh SQLite registry, imported in another order of ids: same split, same hash.
    other = Registry(load_settings(home=tmp_path / "other", database_url=f"sqlite:///{tmp_path / 'other.db'}"))
    import_file(other, demo_data / "annotations" / "instances_default.json", images=demo_data / "images", project="zz")
    import_file(other, demo_data / "annotations" / "instances_default.json", images=demo_data / "images", project="p")
    assert _freeze(other, "v1", seed=7)["content_hash"] == summary["content_hash"]
    assert _membership(other, "v1") == split_of
    _freeze(other, "v2", seed=8)
    assert _membership(other, "v2") == split_of, "an image keeps its split in later versions, whatever the seed"
    _freeze(other, "v3", seed=8, fresh_splits=True)
    assert _membership(other, "v3") != split_of, "another seed should give another split"
    other.dispose()

    with registry.session() as s:
        assert count_query(s, s.get(Project, pid), "version:v1 split:train") == summary["splits"]["train"]


def test_frozen_version_refuses_changes_and_keeps_its_annotations(registry: Registry, demo_data: Path) -> None:
    _load(registry, demo_data)
    summary = _freeze(registry, "v1")
    storage = LocalStorage(registry.settings.storage_root)
    with registry.session() as s:
        vid = s.scalar(select(DatasetVersion.id).where(DatasetVersion.version_tag == "v1"))
    refused = [
        update(DatasetVersion).where(DatasetVersion.id == vid).values(query="tag:x"),
        delete(DatasetVersion).where(DatasetVersion.id == vid),
        delete(DatasetVersionAsset).where(DatasetVersionAsset.dataset_version_id == vid),
        update(DatasetVersionAnnotation).where(DatasetVersionAnnotation.dataset_version_id == vid).values(bbox_x=0),
        update(DatasetSplit).where(DatasetSplit.dataset_version_id == vid).values(ratio=0.5),
    ]
    for stmt in refused:
        with pytest.raises(DBAPIError, match="dataset version is frozen"), registry.session() as s:
            s.execute(stmt)
    with pytest.raises(DsgenError, match="already exists"), registry.session() as s:
        create_version(s, get_project(s, "p"), "v1")

    # Edit and delete annotations in the registry: the frozen version does not see it.
    with registry.session() as s:
        s.execute(update(Annotation).values(bbox_x=Annotation.bbox_x + 3))
        victim = s.scalar(select(Annotation.id).order_by(Annotation.id).limit(1))
        s.execute(delete(Annotation).where(Annotation.id == victim))
    with registry.session() as s:
        v = get_version(s, get_project(s, "p"), "v1")
        assert verify_content_hash(s, v, storage)
        assert version_summary(s, v).to_dict()["annotations"] == summary["annotations"]
        assert s.scalar(select(DatasetVersionAnnotation.annotation_id).where(DatasetVersionAnnotation.annotation_id == victim))
    # Nor an edit of a member image's row or a class's name: the version holds its own copies.
    with registry.session() as s:
        s.execute(update(Asset).values(sha256=None, width=Asset.width * 2, file_name="renamed.png"))
        s.execute(update(LabelClass).values(display_name="renamed"))
    with registry.session() as s:
        assert verify_content_hash(s, get_version(s, get_project(s, "p"), "v1"), storage)


def test_diff_reports_added_removed_and_relabelled(registry: Registry, demo_data: Path) -> None:
    _load(registry, demo_data)
    _freeze(registry, "v1", query="-category:circle")
    with registry.session() as s:
        square = s.scalar(select(LabelClass.id).where(LabelClass.key == "square"))
        triangle = s.scalar(select(LabelClass.id).where(LabelClass.key == "triangle"))
        target = s.scalar(select(Annotation.id).where(Annotation.label_class_id == square).order_by(Annotation.id).limit(1))
        s.execute(update(Annotation).where(Annotation.id == target).values(label_class_id=triangle))
    _freeze(registry, "v2")
    with registry.session() as s:
        d = diff_versions(s, get_project(s, "p"), "v1", "v2").to_dict()
    assert d["relabelled"] == [{"annotation_id": target, "from": "square", "to": "triangle"}]
    assert d["images_added"] and not d["images_removed"]
    assert d["annotations_added_by_class"].get("circle", 0) > 0


def test_split_assignment_keeps_groups_and_ratios() -> None:
    assets = {i: f"sha{i}" for i in range(200)}
    assets[199] = "sha0"  # an exact duplicate of image 0
    classes = {i: {"a" if i % 3 else "b"} for i in range(200)}
    linked = [list(range(10, 20)), [30, 40, 50]]
    r = assign_splits(assets, classes, linked, {"train": 0.7, "val": 0.2, "test": 0.1}, seed=1)
    assert r.split_of[0] == r.split_of[199]
    assert len({r.split_of[i] for i in range(10, 20)}) == 1 and len({r.split_of[i] for i in (30, 40, 50)}) == 1
    counts = {s: list(r.split_of.values()).count(s) for s in ("train", "val", "test")}
    assert abs(counts["train"] - 140) <= 10 and abs(counts["val"] - 40) <= 10 and abs(counts["test"] - 20) <= 10
    assert assign_splits(dict(reversed(assets.items())), classes, linked, {"train": 0.7, "val": 0.2, "test": 0.1}, 1).split_of == r.split_of


@pytest.mark.parametrize("bad", ["train=0.5,val=0.4", "train=0.8,dev=0.2", "train=x", "train=-1,val=2"])
def test_bad_split_config_is_a_clear_error(bad: str) -> None:
    with pytest.raises(DsgenError):
        parse_split_config(bad)


def test_version_cli_contract(cli, registry: Registry, demo_data: Path) -> None:  # noqa: ANN001
    _load(registry, demo_data)
    assert cli("version", "create", "v1", "--split", "train=0.8,val=0.1,test=0.1", "--seed", "2", "--project", "p").returncode == 0
    r = cli("version", "freeze", "v1", "--project", "p", "--json")
    assert r.returncode == 0, r.stderr
    shown = orjson.loads(cli("version", "show", "v1", "--project", "p", "--json").stdout)
    assert {"tag", "frozen", "content_hash", "splits"} <= shown.keys()
    assert shown["frozen"] is True and sum(shown["splits"].values()) == 60
    assert cli("version", "create", "v2", "-q", "category:circle", "--project", "p").returncode == 0
    assert cli("version", "freeze", "v2", "--project", "p").returncode == 0
    diff = orjson.loads(cli("version", "diff", "v1", "v2", "--project", "p", "--json").stdout)
    assert diff["images_removed"] and not diff["images_added"]
    bad = cli("version", "create", "v3", "-q", "width>>3", "--project", "p")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    missing = cli("version", "freeze", "nope", "--project", "p")
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_splits_are_stable_across_versions(registry: Registry, demo_data: Path, tmp_path: Path) -> None:
    """No image of an earlier version changes split in a later one; only new images are split, toward the
    ratios, and a new image joins the split of the tracks it shares."""
    data = json.loads((demo_data / "annotations" / "instances_default.json").read_text())
    half = {im["id"] for im in data["images"][: len(data["images"]) // 2]}
    first = tmp_path / "first.json"
    first.write_text(json.dumps({**data, "images": [im for im in data["images"] if im["id"] in half],
                                 "annotations": [a for a in data["annotations"] if a["image_id"] in half]}))
    import_file(registry, first, images=demo_data / "images")
    _freeze(registry, "v1", seed=3)
    v1 = _membership(registry, "v1")
    import_file(registry, demo_data / "annotations" / "instances_default.json", images=demo_data / "images")
    summary = _freeze(registry, "v2", seed=99)
    v2 = _membership(registry, "v2")
    assert {name: v2[name] for name in v1} == v1  # every v1 image where it was
    new = set(v2) - set(v1)
    assert new and {v2[n] for n in new} >= {"train"}
    assert summary["splits"]["train"] >= 0.6 * sum(summary["splits"].values())
    with registry.session() as s:
        tracks = s.execute(select(Annotation.track_id, Asset.file_name).join(Asset)
                           .where(Annotation.track_id.is_not(None))).all()
    by_track: dict[int, set[str]] = defaultdict(set)
    for track_id, name in tracks:
        by_track[track_id].add(v2[name])
    assert all(len(splits) == 1 for splits in by_track.values()), "a track straddles splits"
