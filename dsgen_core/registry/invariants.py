"""Invariants the database enforces itself, whoever writes: a frozen dataset version never changes.

Triggers on ``dataset_versions`` and on its splits, members, classes and annotation snapshot refuse
every UPDATE and DELETE of a frozen version (and any INSERT into it). On PostgreSQL, TRUNCATE fires
no row trigger, so every registry table refuses TRUNCATE outright (a ``TRUNCATE ... CASCADE`` of
one table would otherwise empty the tables that refer to it, live annotations included).
Migrations 0001 and 0003 created them; a new registry is created from the current schema
(:func:`dsgen_core.registry.db.migrate`) and gets them from here, and a test keeps the two the same.
"""

from __future__ import annotations

FROZEN_MEMBER_TABLES = ("dataset_splits", "dataset_version_assets", "dataset_version_annotations",
                        "dataset_version_classes")
TRUNCATE_MESSAGE = "TRUNCATE is refused on registry tables: a cascade would reach frozen versions or live data"
FROZEN_MESSAGE = "dataset version is frozen: its definition, members and annotations cannot change"


def invariant_ddl(dialect: str, tables: list[str]) -> list[str]:
    """Every statement that installs the invariants on a new registry holding ``tables``."""
    return frozen_version_ddl(dialect) + (truncate_guard_ddl(tables) if dialect == "postgresql" else [])


def truncate_guard_ddl(tables: list[str]) -> list[str]:
    """PostgreSQL: a statement trigger on each table that refuses TRUNCATE."""
    return [
        f"""
        CREATE FUNCTION dsgen_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION USING MESSAGE = '{TRUNCATE_MESSAGE} (' || TG_TABLE_NAME || ')', ERRCODE = 'P0001';
        END $$""",
        *(f"CREATE TRIGGER trg_{t}_no_truncate BEFORE TRUNCATE ON {t} FOR EACH STATEMENT "
          "EXECUTE FUNCTION dsgen_refuse_truncate()" for t in sorted(tables)),
    ]


def frozen_version_ddl(dialect: str) -> list[str]:
    """The statements that create the frozen-version triggers on ``dialect`` (sqlite or postgresql)."""
    if dialect == "sqlite":
        ddl = [f"CREATE TRIGGER trg_dataset_versions_frozen_{when.lower()} BEFORE {when} ON dataset_versions "
               f"WHEN OLD.is_frozen BEGIN SELECT RAISE(ABORT, '{FROZEN_MESSAGE}'); END" for when in ("UPDATE", "DELETE")]
        for table in FROZEN_MEMBER_TABLES:
            for when, row in (("INSERT", "NEW"), ("UPDATE", "OLD"), ("DELETE", "OLD")):
                ddl.append(f"CREATE TRIGGER trg_{table}_frozen_{when.lower()} BEFORE {when} ON {table} "
                           f"WHEN (SELECT is_frozen FROM dataset_versions WHERE id = {row}.dataset_version_id) "
                           f"BEGIN SELECT RAISE(ABORT, '{FROZEN_MESSAGE}'); END")
        return ddl
    return [
        f"""
        CREATE FUNCTION dsgen_refuse_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE vid bigint;
        BEGIN
            IF TG_TABLE_NAME = 'dataset_versions' THEN
                IF OLD.is_frozen THEN RAISE EXCEPTION '{FROZEN_MESSAGE}' USING ERRCODE = 'P0001'; END IF;
                RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
            END IF;
            vid := CASE WHEN TG_OP = 'INSERT' THEN NEW.dataset_version_id ELSE OLD.dataset_version_id END;
            IF (SELECT is_frozen FROM dataset_versions WHERE id = vid) THEN
                RAISE EXCEPTION '{FROZEN_MESSAGE}' USING ERRCODE = 'P0001';
            END IF;
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END $$""",
        ("CREATE TRIGGER trg_dataset_versions_frozen BEFORE UPDATE OR DELETE ON dataset_versions "
        "FOR EACH ROW EXECUTE FUNCTION dsgen_refuse_frozen()"),
        *(f"CREATE TRIGGER trg_{table}_frozen BEFORE INSERT OR UPDATE OR DELETE ON {table} "
          "FOR EACH ROW EXECUTE FUNCTION dsgen_refuse_frozen()" for table in FROZEN_MEMBER_TABLES),
    ]
