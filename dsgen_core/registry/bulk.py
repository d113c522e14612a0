"""Bulk reads and writes: DBAPI ``executemany`` on SQLite, ``COPY`` on PostgreSQL, raw cursor reads.

The ORM costs tens of microseconds a row; a million annotations must go in within seconds, so
imports hand rows (tuples in column order, JSON already serialised) straight to the driver.
Ids are allocated by the caller under a table lock so masks and track members can refer to
them before the rows exist.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence, Sized
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Select, text
from sqlalchemy.orm import Session

REBUILD_INDEXES_MIN_ROWS = 50_000


def now_value(conn: Connection) -> Any:
    """A timestamp as the dialect stores it (SQLAlchemy keeps SQLite datetimes as ISO text)."""
    now = datetime.now(UTC)
    if conn.dialect.name == "sqlite":
        return now.strftime("%Y-%m-%d %H:%M:%S.%f")
    return now


def lock_for_ids(conn: Connection, *tables: str) -> None:
    """Serialise id allocation with concurrent writers."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"LOCK TABLE {', '.join(tables)} IN SHARE ROW EXCLUSIVE MODE")
    # SQLite: the caller has already written in this transaction, so it holds the write lock.


def next_id(conn: Connection, table: str, column: str = "id") -> int:
    return int(conn.exec_driver_sql(f"SELECT COALESCE(MAX({column}), 0) FROM {table}").scalar_one()) + 1


def sync_sequence(conn: Connection, table: str, column: str = "id") -> None:
    """After explicit ids, move PostgreSQL's sequence past them so ORM inserts keep working."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"GREATEST((SELECT COALESCE(MAX({column}), 0) FROM {table}), 1))"
            )
        )


def _sql_literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def insert_rows(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    constants: dict[str, Any] | None = None,
    chunk: int = 50_000,
) -> int:
    """Insert rows; ``constants`` are columns with one value for every row, bound once rather than per row."""
    constants = constants or {}
    n = 0
    if conn.dialect.name == "postgresql":
        cols = ", ".join([*columns, *constants])
        tail = tuple(constants.values())
        raw = conn.connection.driver_connection
        assert raw is not None  # only a closed connection has none
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((*row, *tail) if tail else row)
                n += 1
        return n
    cols = ", ".join([*columns, *constants])
    values = ", ".join(["?"] * len(columns) + [_sql_literal(v) for v in constants.values()])
    sql = f"INSERT INTO {table} ({cols}) VALUES ({values})"
    rebuild = _suspend_indexes(conn, table, len(rows)) if isinstance(rows, Sized) else []
    # The rows come from our own code, whose values are within the CHECK constraints by
    # construction; evaluating them per row costs a tenth of a bulk insert.
    conn.exec_driver_sql("PRAGMA ignore_check_constraints=ON")
    try:
        it = iter(rows)
        while batch := list(islice(it, chunk)):
            conn.exec_driver_sql(sql, batch)
            n += len(batch)
    finally:
        conn.exec_driver_sql("PRAGMA ignore_check_constraints=OFF")
    for create in rebuild:
        conn.exec_driver_sql(create)
    return n


def _suspend_indexes(conn: Connection, table: str, incoming: int) -> list[str]:
    """SQLite: drop ``table``'s indexes before an insert that at least doubles it; returns their DDL.

    Building an index once from sorted keys costs a fraction of updating it for each of a million
    rows in random order. The DDL runs again after the insert, in the same transaction, so readers
    never see the table without them and a duplicate still fails a unique index (and rolls the
    whole import back).
    """
    if incoming < REBUILD_INDEXES_MIN_ROWS:
        return []
    existing = conn.exec_driver_sql(f"SELECT COALESCE(MAX(rowid), 0) FROM {table}").scalar_one()
    if incoming < existing:
        return []
    indexes = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,)
    ).all()
    for name, _sql in indexes:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return [sql for _name, sql in indexes]


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a bulk read or write.

    Parsing a large file allocates millions of dicts and lists, each allocation burst triggering a
    collection that walks every object alive: half of parsing a 1M-annotation COCO file. Those
    objects hold no cycles, so reference counting frees them all the same.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def iter_rows(session: Session, stmt: Select[*tuple[Any, ...]], batch: int = 50_000) -> Iterator[tuple[Any, ...]]:
    """Plain DBAPI tuples in large batches: SQLAlchemy rows cost microseconds each, and there may be millions."""
    assert session.bind is not None  # Registry sessions are bound to its engine
    compiled = stmt.compile(dialect=session.bind.dialect)
    params = compiled.construct_params()
    args = tuple(params[k] for k in compiled.positiontup or ()) if compiled.positional else params
    raw = session.connection().connection.driver_connection
    assert raw is not None  # only a closed connection has none
    cursor = raw.cursor()
    try:
        cursor.execute(compiled.string, args)
        while rows := cursor.fetchmany(batch):
            yield from rows
    finally:
        cursor.close()
