"""The migration chain builds exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import Base


def test_migrated_schema_matches_models(registry: Registry) -> None:
    """A new registry (created from the models) describes the models exactly."""
    with registry.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], diff


def _database_objects(engine: Any) -> dict[Any, Any]:
    """What compare_metadata does not see: triggers and trigger functions, indexes' exact definitions,
    foreign keys with their actions (cyclic ones included)."""
    insp = inspect(engine)
    fks = {("fk", t, tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]),
            (fk.get("options") or {}).get("ondelete")): True for t in insp.get_table_names() for fk in insp.get_foreign_keys(t)}
    return {**fks, **_trigger_and_index_ddl(engine)}


def _trigger_and_index_ddl(engine: Any) -> dict[Any, Any]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("SELECT type, name, sql FROM sqlite_master WHERE type IN ('trigger', 'index') "
                                        "AND sql IS NOT NULL").all()
            return {(t, n): " ".join(sql.split()) for t, n, sql in rows}
        triggers = conn.exec_driver_sql("SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal").all()
        functions = conn.exec_driver_sql("SELECT proname, prosrc FROM pg_proc WHERE proname IN ('dsgen_refuse_frozen', 'dsgen_refuse_truncate')").all()
        indexes = conn.exec_driver_sql("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'").all()
        return {**{("trigger", n): d for n, d in triggers}, **{("function", n): " ".join(s.split()) for n, s in functions},
                **{("index", n): d for n, d in indexes}}


def test_the_migration_chain_builds_what_a_new_registry_gets(registry: Registry, tmp_path: Path,
                                                              request: pytest.FixtureRequest) -> None:
    """An empty database replaying 0001..head and a new registry (models + invariants) are the same schema."""
    from dsgen_core.registry.db import HEAD_REVISION, _upgrade, alembic_config, make_engine

    if registry.dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'chain.db'}"
    else:
        server = request.getfixturevalue("pg_server")
        url = server.url(server.create_database())
    chain = make_engine(url)
    try:
        _upgrade(chain, alembic_config(url))
        with chain.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == HEAD_REVISION
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
        assert _database_objects(chain) == _database_objects(registry.engine)
    finally:
        chain.dispose()


def test_partial_indexes_exist(registry: Registry) -> None:
    indexes = {ix["name"]: ix for ix in inspect(registry.engine).get_indexes("annotations")}
    assert {"ix_annotations_confidence", "ix_annotations_track_id", "ix_annotations_model_version_id",
            "ix_annotations_label_asset", "uq_annotations_asset_source_key"} <= indexes.keys()
    with registry.engine.connect() as conn:
        if registry.dialect == "sqlite":
            sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'ix_annotations_track_id'").scalar_one()
        else:
            sql = conn.exec_driver_sql("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_annotations_track_id'").scalar_one()
    assert "track_id IS NOT NULL" in sql


def test_head_revision_constant_is_the_chain_head(registry: Registry) -> None:
    """The registry checks its schema against HEAD_REVISION without importing Alembic."""
    from alembic.script import ScriptDirectory

    from dsgen_core.registry.db import HEAD_REVISION, alembic_config

    assert ScriptDirectory.from_config(alembic_config(registry.settings.database_url)).get_current_head() == HEAD_REVISION
    with registry.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == HEAD_REVISION


def test_upgrade_from_0001_merges_copied_classes_and_keeps_frozen_versions(database_url: str, tmp_path) -> None:  # noqa: ANN001
    """A registry made before 0002: an ontology fork had copied every class; annotations, tracks and a
    frozen snapshot point at both copies. After the upgrade one row per class remains, everything
    points at it, the frozen version still refuses changes, and assets got their source keys."""
    from alembic import command

    from dsgen_core.registry.db import _upgrade, alembic_config, make_engine

    engine = make_engine(database_url)
    cfg = alembic_config(database_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    ts = "'2026-01-01 00:00:00'"
    rows = [
        f"INSERT INTO projects (id, name, status, tags, created_at) VALUES (1, 'p', 'ready', '[]', {ts})",
        f"INSERT INTO ontology_versions (id, project_id, version_tag, is_frozen, created_at) VALUES (1, 1, 'o1', true, {ts})",
        f"INSERT INTO ontology_versions (id, project_id, version_tag, is_frozen, parent_id, created_at) VALUES (2, 1, 'o2', false, 1, {ts})",
        f"INSERT INTO datasets (id, project_id, name, status, created_at) VALUES (1, 1, 'p', 'ready', {ts})",
        *(f"INSERT INTO label_classes (id, ontology_version_id, key, display_name, synonyms, created_at) "
          f"VALUES ({i}, {o}, '{k}', '{k}', '[]', {ts})" for i, o, k in ((1, 1, "car"), (2, 2, "car"), (3, 2, "bus"))),
        *(f"INSERT INTO assets (id, project_id, asset_type, file_name, sha256, status, external_id, created_at, updated_at) "
          f"VALUES ({i}, 1, 'image', '{n}', '{h}', 'ready', {i}, {ts}, {ts})" for i, n, h in ((1, "a.jpg", "x" * 64), (2, "b.jpg", "y" * 64), (3, "a.jpg", "z" * 64))),
        f"INSERT INTO tracks (id, project_id, external_id, label_class_id, object_count, created_at) VALUES (1, 1, '7', 2, 1, {ts})",
        *(f"INSERT INTO annotations (id, asset_id, label_class_id, geometry_type, iscrowd, source, external_id, is_normalized, "
          f"is_validated, created_at, updated_at) VALUES ({i}, {a}, {c}, 'bbox', false, 'human', {e}, false, false, {ts}, {ts})"
          for i, a, c, e in ((1, 1, 1, 10), (2, 2, 2, 11), (3, 2, 3, 11))),
        f"INSERT INTO dataset_versions (id, dataset_id, project_id, version_tag, ontology_version_id, status, is_frozen, seed, "
        f"created_at) VALUES (1, 1, 1, 'v1', 1, 'draft', false, 0, {ts})",
        f"INSERT INTO dataset_splits (id, dataset_version_id, split, created_at) VALUES (1, 1, 'train', {ts})",
        "INSERT INTO dataset_version_assets (dataset_version_id, asset_id, split_id) VALUES (1, 2, 1)",
        "INSERT INTO dataset_version_annotations (dataset_version_id, annotation_id, asset_id, label_class_id, geometry_type, "
        "iscrowd, source, external_id) VALUES (1, 2, 2, 2, 'bbox', false, 'human', 11)",
        "UPDATE dataset_versions SET is_frozen = true, status = 'frozen' WHERE id = 1",
        f"INSERT INTO models (id, project_id, name, created_at) VALUES (1, 1, 'det', {ts})",
        f"INSERT INTO model_versions (id, model_id, human_id, status, is_frozen, created_at) VALUES (1, 1, 'm1', 'succeeded', true, {ts})",
    ]
    with engine.begin() as conn:
        for sql in rows:
            conn.exec_driver_sql(sql)
    _upgrade(engine, cfg)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id, project_id, key FROM label_classes ORDER BY id").all() == [
            (1, 1, "car"), (3, 1, "bus")]
        assert conn.exec_driver_sql("SELECT ontology_version_id, label_class_id FROM ontology_version_classes "
                                    "ORDER BY 1, 2").all() == [(1, 1), (2, 1), (2, 3)]
        assert conn.exec_driver_sql("SELECT label_class_id FROM annotations ORDER BY id").scalars().all() == [1, 1, 3]
        assert conn.exec_driver_sql("SELECT label_class_id FROM tracks").scalar() == 1
        assert conn.exec_driver_sql("SELECT label_class_id, source_key FROM dataset_version_annotations").one() == (1, "coco:11")
        # Two annotations of image 2 had COCO id 11: the first keeps the key, the other has none.
        assert conn.exec_driver_sql("SELECT source_key FROM annotations ORDER BY id").scalars().all() == [
            "coco:10", "coco:11", None]
        assert conn.exec_driver_sql("SELECT source_key FROM assets ORDER BY id").scalars().all() == ["a.jpg", "b.jpg", "a.jpg#3"]
        assert conn.exec_driver_sql("SELECT project_id, human_id FROM model_versions").one() == (1, "m1")
        # 0003: the frozen version holds copies of its member and its classes (ontology o1 lists car).
        assert conn.exec_driver_sql("SELECT asset_id, file_name, source_key, sha256 FROM dataset_version_assets").one() == (
            2, "b.jpg", "b.jpg", "y" * 64)
        assert conn.exec_driver_sql("SELECT label_class_id, key, in_ontology FROM dataset_version_classes").one() == (
            1, "car", True)
        assert conn.exec_driver_sql("SELECT hash_version FROM dataset_versions").scalar() == 1
    for sql in ("UPDATE dataset_version_annotations SET caption = 'x'", "UPDATE dataset_version_assets SET width = 1",
                "DELETE FROM dataset_version_classes"):
        with pytest.raises(Exception, match="frozen"), engine.begin() as conn:
            conn.exec_driver_sql(sql)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
    engine.dispose()


def test_upgrade_to_0003_keeps_frozen_versions_verifiable(tmp_path: Path) -> None:
    """A registry written by the 0002 code (tests/registry/data/registry_0002.sql: version v1 frozen
    over four images, a polygon, keypoints and two classes): after the upgrade v1 still verifies with
    the hash it froze with (hash_version 1), its copies hold what the live rows held, they are guarded
    like the rest of it, and a new freeze hashes the copies too (hash_version 2)."""
    import sqlite3

    from sqlalchemy.exc import DBAPIError

    from dsgen_core.config import load_settings
    from dsgen_core.registry.projects import get_project
    from dsgen_core.versions.content_hash import verify_version
    from dsgen_core.versions.lifecycle import create_version, freeze_version, get_version
    from dsgen_core.versions.members import class_order, version_members

    db = tmp_path / "registry.db"
    with sqlite3.connect(db) as conn:
        conn.executescript((Path(__file__).parent / "data" / "registry_0002.sql").read_text())
    reg = Registry(load_settings(home=tmp_path, database_url=f"sqlite:///{db}"))
    try:
        with reg.session() as s:
            v1 = get_version(s, get_project(s, "p"), "v1")
            r = verify_version(s, v1)
            assert (r.ok, r.hash_version, r.images, r.annotations) == (True, 1, 4, 4)
            assert r.content_hash == "8ad0cb4692f2dba955032e8e02b9506c096e55cfeca968cb542ad810f22eb1f5"
            assert sorted((m.name, m.asset.width, m.asset.external_id) for m in version_members(s, v1)) == [
                (f"f__{i}.jpg", 64, i) for i in (1, 2, 3, 4)]
            assert [(c.key, c.external_id, c.supercategory, bool(c.keypoint_spec)) for c in class_order(s, v1)] == [
                ("car", 3, "vehicle", False), ("person", 7, "", True)]
        with pytest.raises(DBAPIError, match="frozen"), reg.session() as s:
            s.execute(text("UPDATE dataset_version_classes SET display_name = 'x'"))
        with reg.session() as s:
            create_version(s, get_project(s, "p"), "v2")
            freeze_version(s, get_project(s, "p"), "v2")
        with reg.session() as s:
            r2 = verify_version(s, get_version(s, get_project(s, "p"), "v2"))
            assert r2.ok and r2.hash_version == 2 and r2.computed != r.computed
    finally:
        reg.dispose()


def test_0005_to_0009_go_down_to_0004_and_up_again(database_url: str) -> None:
    """The embeddings, track-scope, loop and CVAT migrations can be undone (on an empty registry) and redone."""
    from alembic import command
    from alembic.autogenerate import compare_metadata as compare

    from dsgen_core.registry.db import alembic_config, make_engine

    engine = make_engine(database_url)
    cfg = alembic_config(database_url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            command.downgrade(cfg, "0008")
            assert not {"project_members", "refresh_tokens"} & set(inspect(conn).get_table_names())
            command.downgrade(cfg, "0007")
            assert "jobs_seen" not in {c["name"] for c in inspect(conn).get_columns("cvat_tasks")}
            command.downgrade(cfg, "0006")
            assert not {"cvat_tasks", "cvat_frames", "cvat_objects"} & set(inspect(conn).get_table_names())
            command.downgrade(cfg, "0005")
            tables = inspect(conn).get_table_names()
            assert "project_policies" not in tables and "batch_id" not in {
                c["name"] for c in inspect(conn).get_columns("change_events")}
            command.downgrade(cfg, "0004")
            cols = {c["name"] for c in inspect(conn).get_columns("tracks")}
            assert "scope" not in cols and "near_duplicates" not in inspect(conn).get_table_names()
            command.upgrade(cfg, "head")
            assert compare(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
    finally:
        engine.dispose()
