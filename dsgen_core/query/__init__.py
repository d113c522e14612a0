"""The query language: ``tag:car color:red width>1024`` compiled to SQL with bound parameters.

Syntax
    Terms separated by whitespace are ANDed (an explicit ``AND`` is allowed); ``OR`` (upper
    case) binds looser than AND; parentheses group; ``-term`` or ``-( ... )`` negates.
    A term is ``key OP value`` with OP one of ``: = != > >= < <=`` (``:`` is ``=``).
    Values are bare (up to whitespace or a parenthesis) or quoted ``"with spaces"`` / ``'x'``
    with backslash escapes (``\\"``, ``\\\\``). The empty query matches everything in the
    project (assets not soft-deleted).

Fields (keys are case-insensitive; ``class``/``label`` = ``category``, ``filename`` = ``file``)
    ``tag:T``                      asset tag; object level: the object's tag or its image's tag
    ``category:C``                 label class key, display name or synonym (case-insensitive),
                                   any ontology version of the project
    ``width height bytes aspect``  image size, file size, width/height; numeric comparisons
    ``area confidence``            object area (bbox w*h when area is missing), detection score
    ``id:N``                       asset id (image level) or annotation id (object level)
    ``file:S``                     substring of the file name, case-insensitive, literal % and _
    ``source:model|human``  ``iscrowd:true|false|1|0``  ``validated:true|false``
    ``has:mask|polygon|keypoints|bbox|caption|track|tag|metadata``
    ``has:duplicate``              another image has exactly these bytes
    ``has:near_duplicate``         in a near-duplicate group of the last ``dsgen duplicates``
    ``attr.K:V`` ``attr.K>N``      annotation ``attributes`` JSON; true/false/1/0 match booleans
                                   and their spellings; ``>``/``<`` apply to JSON numbers
    ``track:X``                    CVAT track (Track.external_id)
    ``model:m3``  ``annotator:A``  model version human id, annotator name
    ``version:v3``                 asset is in dataset version v3 of the project
    ``split:train``                asset is in the train split of ANY dataset version; together
                                   with ``version:v3`` in the same AND: the train split of v3
    ``KEY:V`` ``KEY>N`` ``KEY:*``  any other key is metadata: text equality (numbers also
                                   compare numerically), numeric comparisons, "has the key";
                                   ``meta.KEY`` reaches a metadata key named like a builtin.
                                   Object level: the object's own metadata, falling back to
                                   its image's when the object lacks the key.

Levels
    ``level="image"`` returns asset ids; an object predicate means "has an object such that".
    Consecutive positive object predicates of one AND must hold for the same object:
    ``category:car confidence<0.5`` is one low-confidence car, while a second ``category``
    starts another object (``category:car category:person``: a car and a person). A negated
    object predicate is the complement (``-category:car``: no car at all).
    ``level="object"`` returns annotation ids; image predicates filter by the object's image.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError
from dsgen_core.query.compiler import Level, compile_query
from dsgen_core.registry.schema import Asset

if TYPE_CHECKING:
    from dsgen_core.registry.schema import Project

from dsgen_core.query.parser import ALIASES, BUILTIN_FIELDS, NUMBER_RE, And, Node, Not, Or, Predicate, QueryError, parse

__all__ = [
    "SORTS",
    "And",
    "Level",
    "Node",
    "Not",
    "Or",
    "Predicate",
    "QueryError",
    "QueryTimeout",
    "SortedPage",
    "compile_query",
    "count_query",
    "is_builtin_field",
    "is_numeric_text",
    "parse",
    "run_query",
    "run_query_page",
    "statement_timeout",
]


def is_builtin_field(key: str) -> bool:
    """``key`` means something to the query language itself (a field, an alias, an ``attr.``/``meta.``
    prefix), so metadata stored under it could not be queried as ``key:value``."""
    lowered = key.lower()
    return lowered in BUILTIN_FIELDS or lowered in ALIASES or lowered.startswith(("attr.", "meta."))


def is_numeric_text(text: str) -> bool:
    """The query language reads ``text`` as a number (so ``key>3`` compares it numerically)."""
    return NUMBER_RE.fullmatch(text) is not None


QUERY_TIMEOUT_ENV = "DSGEN_QUERY_TIMEOUT"
DEFAULT_QUERY_TIMEOUT_S = 60.0


class QueryTimeout(DsgenError):
    """A query ran past its time limit and was stopped; nothing it was part of was written."""


def query_timeout_s() -> float:
    try:
        return float(os.environ.get(QUERY_TIMEOUT_ENV) or DEFAULT_QUERY_TIMEOUT_S)
    except ValueError:
        raise DsgenError(f"{QUERY_TIMEOUT_ENV} must be a number of seconds") from None


def _timed_out(limit: float) -> QueryTimeout:
    return QueryTimeout(f"the query ran longer than {limit:g} s and was stopped; narrow it ({QUERY_TIMEOUT_ENV} sets the limit)")


@contextmanager
def statement_timeout(session: Session, seconds: float | None = None) -> Iterator[None]:
    """Statements run inside are stopped after ``seconds`` (default ``$DSGEN_QUERY_TIMEOUT``, 60 s).

    PostgreSQL cancels them (``statement_timeout``, for this transaction only); SQLite interrupts
    them from its progress handler. Either way the caller gets a :class:`QueryTimeout`.
    """
    limit = seconds if seconds is not None else query_timeout_s()
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(limit * 1000))}")
        try:
            yield
        except OperationalError as exc:
            if "statement timeout" in str(exc.orig):
                raise _timed_out(limit) from None
            raise
        conn.exec_driver_sql("SET LOCAL statement_timeout = DEFAULT")
        return
    raw = conn.connection.driver_connection
    assert raw is not None  # only a closed connection has none
    deadline = time.monotonic() + limit
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        yield
    except OperationalError as exc:
        if "interrupted" in str(exc.orig):
            raise _timed_out(limit) from None
        raise
    finally:
        raw.set_progress_handler(None, 0)


def run_query(
    session: Session,
    project: Project,
    text: str,
    *,
    level: Level = "image",
    limit: int | None = None,
    offset: int = 0,
    after: int | None = None,
) -> list[int]:
    """Matching ids of ``project`` in ascending order, ``limit``/``offset`` applied; ``after``: only ids
    above it (keyset pagination: the next page starts after the last id of this one, at index speed)."""
    stmt: Select[Any] = compile_query(text, project_id=project.id, level=level, session=session)
    if after is not None:
        stmt = stmt.where(stmt.selected_columns[0] > after)
    stmt = stmt.order_by(stmt.selected_columns[0]).offset(offset).limit(limit)
    with statement_timeout(session):
        return list(session.scalars(stmt))


# Image fields a page can be sorted by, NULLs read as the value that sorts them first.
SORTS: dict[str, tuple[Any, Any]] = {
    "id": (Asset.id, None), "file_name": (Asset.file_name, ""), "width": (Asset.width, -1),
    "height": (Asset.height, -1), "created_at": (Asset.created_at, None),
}


@dataclass(frozen=True)
class SortedPage:
    ids: list[int]
    next_cursor: str | None  # give it back as ``cursor`` for the next page; None: this was the last


def run_query_page(session: Session, project: Project, text: str, *, sort: str = "id", limit: int = 100,
                   cursor: str | None = None) -> SortedPage:
    """One page of matching image ids sorted by ``sort`` (a field of :data:`SORTS`, ``-`` for descending),
    ties broken by id. The cursor carries the last row's (value, id): a keyset, so page 1,000 costs
    what page 1 does, and rows inserted meanwhile neither repeat nor skip others."""
    desc = sort.startswith("-")
    field = sort.lstrip("-")
    if field not in SORTS:
        raise DsgenError(f"sort by one of {', '.join(SORTS)} (prefix - for descending), not {sort!r}")
    col, null_as = SORTS[field]
    key = func.coalesce(col, null_as) if null_as is not None else col
    stmt: Select[Any] = compile_query(text, project_id=project.id, level="image", session=session)
    if cursor is not None:
        value, last = _read_cursor(cursor, field)
        if field == "id":  # one column: a plain range the primary key answers
            after = Asset.id < last if desc else Asset.id > last
        else:
            after = (key < value) | ((key == value) & (Asset.id < last)) if desc else \
                (key > value) | ((key == value) & (Asset.id > last))
        stmt = stmt.where(after)
    order: list[Any] = [key.desc(), Asset.id.desc()] if desc else [key, Asset.id]
    if field == "id":
        order = order[:1]
    stmt = stmt.add_columns(key).order_by(*order).limit(limit + 1)
    with statement_timeout(session):
        rows = session.execute(stmt).all()
    more, rows = len(rows) > limit, rows[:limit]
    nxt = None
    if more and rows:
        v = rows[-1][1]
        nxt = _write_cursor(field, v.isoformat() if isinstance(v, datetime) else v, rows[-1][0])
    return SortedPage([r[0] for r in rows], nxt)


def _write_cursor(field: str, value: Any, last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([field, value, last_id]).encode()).decode().rstrip("=")


_INT64 = 2**63


def _read_cursor(cursor: str, field: str) -> tuple[Any, int]:
    """The (value, id) a cursor of this sort carries; a 400 for anything this server did not write."""
    bad = DsgenError("cursor is not one this server gave out for this sort; start again without it")
    try:
        got = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, UnicodeDecodeError):
        raise bad from None
    if not (isinstance(got, list) and len(got) == 3 and got[0] == field):
        raise bad
    _, value, last = got
    if type(last) is not int or not -_INT64 <= last < _INT64:
        raise bad
    if field in ("id", "width", "height"):
        if type(value) is not int or not -_INT64 <= value < _INT64:
            raise bad
    elif field == "file_name":
        if not isinstance(value, str):
            raise bad
    else:  # created_at
        try:
            value = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise bad from None
    return value, last


def count_query(session: Session, project: Project, text: str, *, level: Level = "image") -> int:
    """How many images (or objects) of ``project`` match ``text``."""
    stmt = compile_query(text, project_id=project.id, level=level, session=session)
    # Each asset/annotation appears once, so count(*) over the same FROM needs no subquery.
    with statement_timeout(session):
        return session.scalar(stmt.with_only_columns(func.count(), maintain_column_froms=True)) or 0
