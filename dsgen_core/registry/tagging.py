"""Tags and key-value metadata on images and objects, one at a time or in bulk.

Targets are an id list or a query (:mod:`dsgen_core.query`); either way every change is one
set-based statement per tag or key (``INSERT ... SELECT ... ON CONFLICT``, ``DELETE ... WHERE
id IN (SELECT ...)``), so tagging 100k images costs one round trip, not 100k. Every call writes
an audit row, and a change event when rows changed, in the caller's transaction.

Metadata values keep three forms: ``value_text`` (the string form, what ``key:value`` matches),
``value_num`` (the float when the value is numeric, what ``key>3`` compares) and ``value``
(``{"v": original JSON value}``, what :func:`get_metadata` returns).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

from sqlalchemy import CursorResult, DateTime, Float, Select, Text, delete, literal, or_, select
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.formats import limits
from dsgen_core.query import Level, compile_query, is_builtin_field, is_numeric_text, statement_timeout
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.schema import (
    AnnotationMetadata,
    AnnotationTag,
    AssetMetadata,
    AssetTag,
    Base,
    Json,
    Project,
    utcnow,
)

MAX_LENGTH = 255
# Bound parameters per statement stay far below SQLite's and PostgreSQL's limits.
ID_CHUNK = 5000
_KEY_FORBIDDEN = re.compile(r"[\s:<>=!\"'()]")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")

_TAGS: dict[str, tuple[type[AssetTag] | type[AnnotationTag], str]] = {
    "image": (AssetTag, "asset_id"),
    "object": (AnnotationTag, "annotation_id"),
}
_META: dict[str, tuple[type[AssetMetadata] | type[AnnotationMetadata], str]] = {
    "image": (AssetMetadata, "asset_id"),
    "object": (AnnotationMetadata, "annotation_id"),
}
_ENTITY = {"image": "asset", "object": "annotation"}
# SQLAlchemy keeps an INSERT's rowcount only when asked (psycopg closes the cursor before).
# Session.execute is typed to return a Result; for INSERT and DELETE it is a CursorResult, which has rowcount.
_COUNT_INSERTS = {"preserve_rowcount": True}


# --------------------------------------------------------------------------- validation and values


def validate_tag(tag: str) -> str:
    """A tag must be writable as ``tag:VALUE`` unquoted: no whitespace, no ':'."""
    if not isinstance(tag, str) or tag == "":
        raise DsgenError("empty tag: a tag needs at least one character")
    if any(ch.isspace() for ch in tag):
        raise DsgenError(f"tag {tag!r} contains whitespace, which the query language splits on; use '-' or '_'")
    if ":" in tag:
        raise DsgenError(f"tag {tag!r} contains ':', which the query language reads as key:value")
    if "\x00" in tag:
        raise DsgenError(f"tag {tag!r} contains a NUL character, which the registry cannot store")
    if len(tag) > MAX_LENGTH:
        raise DsgenError(f"tag is longer than {MAX_LENGTH} characters")
    return tag


def validate_key(key: str) -> str:
    """A metadata key must be usable as ``key:value`` in a query without shadowing a builtin field."""
    if not isinstance(key, str) or key == "":
        raise DsgenError("empty metadata key")
    if _KEY_FORBIDDEN.search(key) or key.startswith("-"):
        raise DsgenError(
            f"metadata key {key!r} cannot be queried: it must not contain whitespace, quotes, "
            "parentheses or any of : < > = !, nor start with '-'"
        )
    if "\x00" in key:
        raise DsgenError(f"metadata key {key!r} contains a NUL character, which the registry cannot store")
    if is_builtin_field(key):
        raise DsgenError(f"metadata key {key!r} is a builtin query field (or prefix); choose another name")
    if len(key) > MAX_LENGTH:
        raise DsgenError(f"metadata key is longer than {MAX_LENGTH} characters")
    return key


def parse_value(text: str) -> int | float | str:
    """A command-line value: JSON numbers become int/float, everything else (true, 007) stays text."""
    if _JSON_NUMBER.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return int(text) if re.fullmatch(r"-?\d+", text) else number
    return text


def encode_value(value: Any) -> tuple[str, float | None, dict[str, Any]]:
    """(value_text, value_num, value) for a metadata value."""
    if value is None:
        raise DsgenError("metadata value is missing; use unset to remove a key")
    if isinstance(value, bool):
        return ("true" if value else "false"), None, {"v": value}
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise DsgenError(f"metadata value {value!r} is not a finite number")
        return json.dumps(value), float(value), {"v": value}
    if isinstance(value, str):
        if value == "":
            raise DsgenError("empty metadata value; use unset to remove a key")
        if "\x00" in value:
            raise DsgenError(f"metadata value {value!r} contains a NUL character, which the registry cannot store")
        # A numeric string still compares numerically (key>3), whatever type the caller used.
        number = float(value) if is_numeric_text(value) else None
        return value, (number if number is not None and math.isfinite(number) else None), {"v": value}
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DsgenError(f"metadata value is not JSON: {exc}") from None
    if limits.has_nul(value):
        raise DsgenError("metadata value contains a NUL character, which the registry cannot store")
    return text, None, {"v": value}


# --------------------------------------------------------------------------- targets


def _targets(
    session: Session,
    project_id: int,
    *,
    asset_ids: Iterable[int] | None,
    query: str | None,
    level: Level,
) -> tuple[list[Select[Any]], list[int] | None]:
    """Selects of the target ids (one per id chunk) and the explicit id list, if one was given."""
    if (asset_ids is None) == (query is None):
        raise DsgenError("give exactly one of an id list or a query")
    if query is not None:
        return [compile_query(query, project_id=project_id, level=level, session=session)], None
    assert asset_ids is not None  # exactly one of the two was given
    ids = sorted({int(i) for i in asset_ids})
    everything = compile_query("", project_id=project_id, level=level)
    column = everything.selected_columns[0]
    chunks = [everything.where(column.in_(ids[i : i + ID_CHUNK])) for i in range(0, len(ids), ID_CHUNK)]
    found: set[int] = set()
    for chunk in chunks:
        found.update(session.scalars(chunk))
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise NotFound(f"{len(missing)} {_ENTITY[level]} id(s) are not in the project (or deleted): {shown}")
    return chunks, ids


def _insert(session: Session, table: type[Base]) -> PgInsert | SqliteInsert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return pg_insert(table)
    if dialect == "sqlite":
        return sqlite_insert(table)
    raise DsgenError(f"tagging supports SQLite and PostgreSQL, not {dialect}")


def _log(
    session: Session,
    project_id: int,
    *,
    action: str,
    entity: str,
    op: str,
    level: Level,
    changed: int,
    ids: list[int] | None,
    query: str | None,
    detail: dict[str, Any],
    actor: str | None,
) -> None:
    # A query's matches are not listed (they can be 100k ids); the query itself is recorded.
    detail = {**detail, "level": level, "changed": changed}
    if query is not None:
        detail["query"] = query
    audit(session, action, project_id=project_id, entity_type=_ENTITY[level], entity_ids=ids, detail=detail, actor=actor)
    if changed:
        single = ids[0] if ids is not None and len(ids) == 1 else None
        record_change(session, project_id=project_id, entity=entity, op=op, entity_id=single, count=changed, detail=detail)


def _time_limited(session: Session, query: str | None) -> AbstractContextManager[None]:
    """A change selected by a query runs under the query time limit (an id list needs none)."""
    return statement_timeout(session) if query is not None else nullcontext()


def _tag_list(tags: Sequence[str] | str) -> list[str]:
    listed = [tags] if isinstance(tags, str) else list(tags)
    if not listed:
        raise DsgenError("no tags given")
    return list(dict.fromkeys(validate_tag(t) for t in listed))


# --------------------------------------------------------------------------- tags


def add_tags(
    session: Session,
    project: Project,
    tags: Sequence[str] | str,
    *,
    asset_ids: Iterable[int] | None = None,
    query: str | None = None,
    level: Level = "image",
    actor: str | None = None,
) -> int:
    """Tag the images (``level="image"``) or objects (``"object"``; ``asset_ids`` are then
    annotation ids) given by ids or by a query. Returns the number of tags newly added."""
    tag_list = _tag_list(tags)
    project_id = project.id
    sources, ids = _targets(session, project_id, asset_ids=asset_ids, query=query, level=level)
    table, fk = _TAGS[level]
    now = literal(utcnow(), DateTime(timezone=True))
    changed = 0
    with _time_limited(session, query):
        for source in sources:
            for tag in tag_list:
                rows = source.add_columns(literal(tag, Text), now)
                stmt = _insert(session, table).from_select([fk, "tag", "created_at"], rows).on_conflict_do_nothing()
                changed += cast(CursorResult[Any], session.execute(stmt, execution_options=_COUNT_INSERTS)).rowcount
    _log(
        session, project_id, action="tag.add", entity=table.__tablename__, op="add", level=level,
        changed=changed, ids=ids, query=query, detail={"tags": tag_list}, actor=actor,
    )
    return changed


def remove_tags(
    session: Session,
    project: Project,
    tags: Sequence[str] | str,
    *,
    asset_ids: Iterable[int] | None = None,
    query: str | None = None,
    level: Level = "image",
    actor: str | None = None,
) -> int:
    """Remove tags from images or objects; returns the number of tags removed."""
    tag_list = _tag_list(tags)
    project_id = project.id
    sources, ids = _targets(session, project_id, asset_ids=asset_ids, query=query, level=level)
    table, fk = _TAGS[level]
    changed = 0
    with _time_limited(session, query):
        for source in sources:
            stmt = delete(table).where(table.tag.in_(tag_list), getattr(table, fk).in_(source))
            changed += cast(CursorResult[Any],
                            session.execute(stmt, execution_options={"synchronize_session": False})).rowcount
    _log(
        session, project_id, action="tag.remove", entity=table.__tablename__, op="remove", level=level,
        changed=changed, ids=ids, query=query, detail={"tags": tag_list}, actor=actor,
    )
    return changed


def get_tags(session: Session, asset_id: int) -> list[str]:
    return list(session.scalars(select(AssetTag.tag).where(AssetTag.asset_id == asset_id).order_by(AssetTag.tag)))


def get_object_tags(session: Session, annotation_id: int) -> list[str]:
    return object_tags(session, [annotation_id]).get(annotation_id, [])


def object_tags(session: Session, annotation_ids: Sequence[int]) -> dict[int, list[str]]:
    """The tags of many objects in one query: ``{object id: [tag, ...]}`` for those that have any."""
    out: dict[int, list[str]] = {}
    if annotation_ids:
        stmt = (select(AnnotationTag.annotation_id, AnnotationTag.tag)
                .where(AnnotationTag.annotation_id.in_(annotation_ids)).order_by(AnnotationTag.tag))
        for oid, tag in session.execute(stmt):
            out.setdefault(oid, []).append(tag)
    return out


# --------------------------------------------------------------------------- metadata


def set_metadata(
    session: Session,
    project: Project,
    key: str,
    value: Any,
    *,
    asset_ids: Iterable[int] | None = None,
    query: str | None = None,
    level: Level = "image",
    actor: str | None = None,
) -> int:
    """Set ``key`` to ``value`` on images or objects; returns how many rows were added or changed
    (a row that already holds the value is not counted)."""
    key = validate_key(key)
    text, number, doc = encode_value(value)
    project_id = project.id
    sources, ids = _targets(session, project_id, asset_ids=asset_ids, query=query, level=level)
    table, fk = _META[level]
    columns = [fk, "key", "value_text", "value_num", "value", "updated_at"]
    values = (
        literal(key, Text),
        literal(text, Text),
        literal(number, Float),
        literal(doc, Json),
        literal(utcnow(), DateTime(timezone=True)),
    )
    changed = 0
    with _time_limited(session, query):
        for source in sources:
            stmt = _insert(session, table).from_select(columns, source.add_columns(*values))
            new = stmt.excluded
            stmt = stmt.on_conflict_do_update(
                index_elements=[fk, "key"],
                set_={"value_text": new.value_text, "value_num": new.value_num, "value": new.value, "updated_at": new.updated_at},
                where=or_(
                    table.value_text.is_distinct_from(new.value_text),
                    table.value_num.is_distinct_from(new.value_num),
                    table.value.is_distinct_from(new.value),
                ),
            )
            changed += cast(CursorResult[Any], session.execute(stmt, execution_options=_COUNT_INSERTS)).rowcount
    _log(
        session, project_id, action="meta.set", entity=table.__tablename__, op="set", level=level,
        changed=changed, ids=ids, query=query, detail={"key": key, "value": doc["v"]}, actor=actor,
    )
    return changed


def unset_metadata(
    session: Session,
    project: Project,
    key: str,
    *,
    asset_ids: Iterable[int] | None = None,
    query: str | None = None,
    level: Level = "image",
    actor: str | None = None,
) -> int:
    """Remove ``key`` from images or objects; returns how many rows were removed."""
    if not key:
        raise DsgenError("empty metadata key")
    project_id = project.id
    sources, ids = _targets(session, project_id, asset_ids=asset_ids, query=query, level=level)
    table, fk = _META[level]
    changed = 0
    with _time_limited(session, query):
        for source in sources:
            stmt = delete(table).where(table.key == key, getattr(table, fk).in_(source))
            changed += cast(CursorResult[Any],
                            session.execute(stmt, execution_options={"synchronize_session": False})).rowcount
    _log(
        session, project_id, action="meta.unset", entity=table.__tablename__, op="unset", level=level,
        changed=changed, ids=ids, query=query, detail={"key": key}, actor=actor,
    )
    return changed


def _decoded(rows: Iterable[tuple[str, str | None, dict[str, Any] | None]]) -> dict[str, Any]:
    return {key: (doc["v"] if isinstance(doc, dict) and "v" in doc else text) for key, text, doc in rows}


def get_metadata(session: Session, asset_id: int) -> dict[str, Any]:
    """The image's metadata as ``{key: original value}``."""
    stmt = (
        select(AssetMetadata.key, AssetMetadata.value_text, AssetMetadata.value)
        .where(AssetMetadata.asset_id == asset_id)
        .order_by(AssetMetadata.key)
    )
    return _decoded(session.execute(stmt))


def get_object_metadata(session: Session, annotation_id: int) -> dict[str, Any]:
    return object_metadata(session, [annotation_id]).get(annotation_id, {})


def object_metadata(session: Session, annotation_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The metadata of many objects in one query: ``{object id: {key: value}}`` for those that have any."""
    rows: dict[int, list[tuple[str, str | None, dict[str, Any] | None]]] = {}
    if annotation_ids:
        stmt = (select(AnnotationMetadata.annotation_id, AnnotationMetadata.key, AnnotationMetadata.value_text,
                       AnnotationMetadata.value)
                .where(AnnotationMetadata.annotation_id.in_(annotation_ids)).order_by(AnnotationMetadata.key))
        for oid, key, text, doc in session.execute(stmt):
            rows.setdefault(oid, []).append((key, text, doc))
    return {oid: _decoded(r) for oid, r in rows.items()}
