"""Every way to change a frozen version through SQL is refused by the database or detected by its
content hash, and exports, training and evaluation refuse a version that fails it (issue 9, defects 2, 3).

Live rows a frozen version was made from can change as they like: the version holds copies of
what its exports read, so its exports stay byte-identical.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import DBAPIError

from dsgen_core.config import load_settings
from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.errors import VersionTampered
from dsgen_core.formats.version_export import export_version_coco, export_version_yolo
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import (
    Annotation,
    Asset,
    DatasetSplit,
    DatasetVersion,
    DatasetVersionAnnotation,
    DatasetVersionAsset,
    DatasetVersionClass,
    ImportBatch,
    LabelClass,
    Project,
)
from dsgen_core.storage import LocalStorage
from dsgen_core.versions.content_hash import verify_content_hash
from dsgen_core.versions.lifecycle import create_version, freeze_version, get_version
from support import import_file


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo"), n_images=16, seed=11).root


def _frozen(registry: Registry, demo: Path, tag: str = "v1") -> LocalStorage:
    storage = LocalStorage(registry.settings.storage_root)
    import_file(registry, demo / "annotations" / "instances_default.json", images=demo / "images", project="p")
    with registry.session() as s:
        create_version(s, get_project(s, "p"), tag, seed=2)
        freeze_version(s, get_project(s, "p"), tag, storage=storage)
    return storage


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _exports(registry: Registry, storage: LocalStorage, out: Path, tag: str = "v1") -> dict[str, str]:
    with registry.session() as s:
        p = get_project(s, "p")
        export_version_yolo(s, p, tag, out / "detect", storage=storage)
        export_version_yolo(s, p, tag, out / "segment", storage=storage, task="segment")
        export_version_coco(s, p, tag, out / "coco", storage=storage)
    return _tree(out)


@contextmanager
def _unguarded(registry: Registry) -> Iterator[Connection]:
    """A session with the database's guards off, as an administrator could open one: PostgreSQL in
    replica mode (no triggers, no foreign keys), SQLite with its triggers dropped and foreign keys off."""
    with registry.engine.connect() as conn:
        if registry.dialect == "postgresql":
            conn.exec_driver_sql("SET session_replication_role = replica")
            yield conn
            conn.commit()
            conn.exec_driver_sql("SET session_replication_role = DEFAULT")
            return
        triggers = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").all()
        conn.commit()
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        for name, _ in triggers:
            conn.exec_driver_sql(f"DROP TRIGGER {name}")
        yield conn
        for _, sql in triggers:
            conn.exec_driver_sql(sql)
        conn.commit()
        conn.exec_driver_sql("PRAGMA foreign_keys = ON")


def _first(conn: Connection, column: Any) -> Any:
    return conn.execute(select(column).order_by(column).limit(1)).scalar_one()


def _mask_file(registry: Registry, conn: Connection) -> None:
    uri = conn.execute(select(DatasetVersionAnnotation.mask_uri).where(DatasetVersionAnnotation.mask_uri.is_not(None))
                       .limit(1)).scalar_one()
    storage = LocalStorage(registry.settings.storage_root)
    path = storage.path(storage.key_of(uri))
    path.write_bytes(path.read_bytes().replace(b'"counts":"', b'"counts":"0'))


va, vm, vc = DatasetVersionAnnotation, DatasetVersionAsset, DatasetVersionClass
TAMPERING: dict[str, Callable[[Registry, Connection], Any]] = {
    "a snapshot box moved": lambda r, c: c.execute(update(va).values(bbox_x=va.bbox_x + 1)),
    "a snapshot object deleted": lambda r, c: c.execute(delete(va).where(va.annotation_id == _first(c, va.annotation_id))),
    "a snapshot object relabelled": lambda r, c: c.execute(update(va).values(label_class_id=_first(c, vc.label_class_id))),
    "a member deleted": lambda r, c: c.execute(delete(vm).where(vm.asset_id == _first(c, vm.asset_id))),
    "a member's size doubled": lambda r, c: c.execute(update(vm).values(width=vm.width * 2, height=vm.height * 2)),
    "a member renamed": lambda r, c: c.execute(update(vm).where(vm.asset_id == _first(c, vm.asset_id)).values(file_name="x.png")),
    "a member moved to another split": lambda r, c: c.execute(
        update(vm).where(vm.asset_id == _first(c, vm.asset_id))
        .values(split_id=select(func.max(DatasetSplit.id)).scalar_subquery())),
    "a class renamed": lambda r, c: c.execute(update(vc).values(display_name="renamed")),
    "a class deleted": lambda r, c: c.execute(delete(vc).where(vc.label_class_id == _first(c, vc.label_class_id))),
    "a split deleted": lambda r, c: c.execute(delete(DatasetSplit).where(DatasetSplit.split == "test")),
    "the file header edited": lambda r, c: c.execute(update(ImportBatch).values(header={"info": {"description": "x"}})),
    "a mask file edited": _mask_file,
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_past_the_guards_is_detected_and_refused(registry: Registry, demo: Path, tmp_path: Path, case: str) -> None:
    storage = _frozen(registry, demo)
    with _unguarded(registry) as conn:
        TAMPERING[case](registry, conn)
    with registry.session() as s:
        v = get_version(s, get_project(s, "p"), "v1")
        assert not verify_content_hash(s, v, storage)
        with pytest.raises(VersionTampered, match=r"no longer matches its content hash.*refusing to export it"):
            export_version_yolo(s, get_project(s, "p"), "v1", tmp_path / "out", storage=storage)
    assert not (tmp_path / "out").exists()


def test_version_verify_command(cli: Any, registry: Registry, demo: Path) -> None:
    _frozen(registry, demo)
    r = cli("version", "verify", "v1", "--project", "p", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and report["images"] == 16 and report["hash_version"] == 2
    with _unguarded(registry) as conn:
        conn.execute(update(vm).values(width=vm.width * 2))
    r = cli("version", "verify", "v1", "--project", "p")
    assert r.returncode == 4 and "does not match its content hash" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cli("export", "yolo", "v1", "out", "--project", "p")
    assert r.returncode == 4 and "refusing to export it" in r.stderr, r.stderr
    r = cli("version", "verify", "v9", "--project", "p")
    assert r.returncode == 2 and "does not exist" in r.stderr


GUARDED: dict[str, Callable[[int], Any]] = {
    "UPDATE a member copy": lambda vid: update(vm).where(vm.dataset_version_id == vid).values(width=1),
    "DELETE a class copy": lambda vid: delete(vc).where(vc.dataset_version_id == vid),
    "UPDATE a class copy": lambda vid: update(vc).where(vc.dataset_version_id == vid).values(display_name="x"),
    "INSERT a class copy": lambda vid: DatasetVersionClass.__table__.insert().values(
        dataset_version_id=vid, label_class_id=10**6, key="k", display_name="k", in_ontology=True),
    "DELETE the version": lambda vid: delete(DatasetVersion).where(DatasetVersion.id == vid),
    "DELETE the project (cascade)": lambda vid: delete(Project),
    "DELETE a member image": lambda vid: delete(Asset),
    "DELETE a class the snapshot uses": lambda vid: delete(LabelClass),
}


@pytest.mark.parametrize("case", sorted(GUARDED))
def test_the_database_refuses_changes_to_a_frozen_version(registry: Registry, demo: Path, case: str) -> None:
    _frozen(registry, demo)
    with registry.session() as s:
        vid = get_version(s, get_project(s, "p"), "v1").id
    with pytest.raises(DBAPIError, match=r"frozen|FOREIGN KEY|foreign key"), registry.session() as s:
        s.execute(GUARDED[case](vid))
    with registry.session() as s:
        assert verify_content_hash(s, get_version(s, get_project(s, "p"), "v1"), LocalStorage(registry.settings.storage_root))


@pytest.fixture
def pg_registry(pg_server: Any, tmp_path: Path) -> Iterator[Registry]:
    """TRUNCATE is PostgreSQL's (SQLite has none): this test runs on that backend only."""
    name = pg_server.create_database()
    reg = Registry(load_settings(home=tmp_path, database_url=pg_server.url(name)))
    try:
        yield reg
    finally:
        reg.dispose()
        pg_server.drop_database(name)


@pytest.mark.parametrize("statement", [
    "TRUNCATE dataset_version_annotations", "TRUNCATE dataset_version_assets", "TRUNCATE dataset_version_classes",
    "TRUNCATE dataset_splits CASCADE", "TRUNCATE dataset_versions CASCADE", "TRUNCATE assets CASCADE",
    "TRUNCATE label_classes CASCADE", "TRUNCATE model_versions CASCADE", "TRUNCATE annotations CASCADE",
])
def test_postgresql_refuses_truncate(pg_registry: Registry, demo: Path, statement: str) -> None:
    registry = pg_registry
    _frozen(registry, demo)
    with registry.session() as s:
        before = (s.scalar(select(func.count()).select_from(DatasetVersionAnnotation)),
                  s.scalar(select(func.count()).select_from(Annotation)))
    with pytest.raises(DBAPIError, match="TRUNCATE is refused on registry tables"), registry.engine.begin() as conn:
        conn.exec_driver_sql(statement)
    with registry.session() as s:
        assert (s.scalar(select(func.count()).select_from(DatasetVersionAnnotation)),
                s.scalar(select(func.count()).select_from(Annotation))) == before
        assert before[0] > 0 and before[1] > 0


def test_live_edits_do_not_change_what_a_frozen_version_exports(registry: Registry, demo: Path, tmp_path: Path) -> None:
    """Doubling member images' sizes, renaming their files and the classes, and deleting a member
    image with foreign keys off: the version's exports stay byte-identical and it still verifies."""
    storage = _frozen(registry, demo)
    before = _exports(registry, storage, tmp_path / "before")
    with registry.session() as s:
        s.execute(update(Asset).values(width=Asset.width * 2, height=Asset.height * 2, file_name="renamed/" + Asset.file_name))
        s.execute(update(LabelClass).values(display_name="renamed " + LabelClass.display_name, supercategory="x"))
    with _unguarded(registry) as conn:
        victim = _first(conn, Asset.id)
        conn.execute(delete(Annotation).where(Annotation.asset_id == victim))
        conn.execute(delete(Asset).where(Asset.id == victim))
    with registry.session() as s:
        assert verify_content_hash(s, get_version(s, get_project(s, "p"), "v1"), storage)
    assert _exports(registry, storage, tmp_path / "after") == before
