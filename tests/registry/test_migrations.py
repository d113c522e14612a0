"""The migration chain builds exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import Base


def test_migrated_schema_matches_models(registry: Registry) -> None:
    with registry.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], diff


def test_partial_indexes_exist(registry: Registry) -> None:
    indexes = {ix["name"]: ix for ix in inspect(registry.engine).get_indexes("annotations")}
    assert {"ix_annotations_confidence", "ix_annotations_track_id", "ix_annotations_model_version_id",
            "ix_annotations_label_asset", "ix_annotations_asset_id"} <= indexes.keys()
    with registry.engine.connect() as conn:
        if registry.dialect == "sqlite":
            sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'ix_annotations_track_id'").scalar_one()
        else:
            sql = conn.exec_driver_sql("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_annotations_track_id'").scalar_one()
    assert "track_id IS NOT NULL" in sql
