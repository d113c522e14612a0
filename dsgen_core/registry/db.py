"""Engines, sessions and automatic migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, MetaData, create_engine, event, inspect
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.schema import CreateIndex, CreateTable

from dsgen_core.config import Settings, load_settings

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HEAD_REVISION = "0010"  # the newest migration in migrations/versions
_migrated: set[str] = set()
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout_s() * 1000)}")
    cur.execute("PRAGMA cache_size=-262144")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def sqlite_busy_timeout_s() -> float:
    """How long a SQLite writer waits for another's lock before giving up (``$DSGEN_SQLITE_BUSY_TIMEOUT``)."""
    try:
        return float(os.environ.get("DSGEN_SQLITE_BUSY_TIMEOUT") or 30)
    except ValueError:
        return 30.0


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": sqlite_busy_timeout_s()})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration; cheap when it already is.

    The check reads the stored revision and compares it with :data:`HEAD_REVISION` without
    importing Alembic (a tenth of a second every CLI command would pay); a test keeps the constant
    equal to the migration chain's head. An empty database gets the current schema directly
    (:func:`_create`), as replaying every migration would build it; older ones are upgraded.
    """
    key = engine.url.render_as_string(hide_password=False)
    with _lock:
        if key in _migrated:
            return
        current = _current_revision(engine)
        if current is None and not inspect(engine).get_table_names():
            _create(engine)
        elif current != HEAD_REVISION:
            _upgrade(engine, alembic_config(key))
        _migrated.add(key)


def _create(engine: Engine) -> None:
    """A new registry: the tables of the models, the database's own invariants, stamped at the head.

    The same schema the migration chain builds (a test compares the two on both databases), in a
    fraction of the time: every test and every first import starts from an empty database.
    """
    from dsgen_core.registry.invariants import invariant_ddl
    from dsgen_core.registry.schema import Base

    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            # Every foreign key inline, the two cyclic (use_alter) ones included: SQLite cannot add a
            # constraint to an existing table, and create_all's cycle handling would leave them out.
            # On a copy of the tables: a create_all for PostgreSQL in this process marks the cyclic
            # constraints as added by ALTER, which CREATE TABLE then omits.
            copy = MetaData(naming_convention=Base.metadata.naming_convention)
            for table in Base.metadata.sorted_tables:
                table.to_metadata(copy)
            for table in copy.sorted_tables:
                conn.execute(CreateTable(table, include_foreign_key_constraints=list(table.foreign_key_constraints)))
                for index in table.indexes:
                    conn.execute(CreateIndex(index))
        else:
            Base.metadata.create_all(conn)
        for ddl in invariant_ddl(engine.dialect.name, list(Base.metadata.tables)):
            conn.exec_driver_sql(ddl)
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                             "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))")
        conn.exec_driver_sql(f"INSERT INTO alembic_version (version_num) VALUES ('{HEAD_REVISION}')")


def _upgrade(engine: Engine, cfg: AlembicConfig) -> None:
    """Run the migrations in one transaction.

    On SQLite a migration that rebuilds a table (batch mode: copy, drop, rename) must not fire the
    foreign keys of the table it drops, so they are off for the upgrade and checked as a whole
    before it commits. The pragma only takes effect outside a transaction.
    """
    from alembic import command

    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left dangling foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


class Registry:
    """A handle on one registry database: engine, sessions and the settings it came from."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self.engine = make_engine(self.settings.database_url)
        migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def steps(self) -> Iterator[Session]:
        """A session that may commit along the way (each commit ends one step and the next begins on
        use): committed at the end, rolled back on any error. An API request is one: its rate count
        is committed before its route runs, on the same connection."""
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    @contextmanager
    def session(self, *, bulk: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error.

        ``bulk``: for importers that allocate every id themselves under a lock in this same
        transaction, so no row can point at a missing parent. SQLite then skips its per-row foreign
        key lookups (a third of a million-row insert); the setting is restored before the connection
        goes back to the pool. PostgreSQL is unaffected.
        """
        if not (bulk and self.dialect == "sqlite"):
            with self._sessions() as s, s.begin():
                yield s
            return
        with self._sessions() as s:
            # Before any write: SQLite ignores this pragma inside a transaction (pysqlite opens
            # one only at the first INSERT/UPDATE/DELETE).
            s.connection().exec_driver_sql("PRAGMA foreign_keys=OFF")
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise
            finally:
                s.connection().exec_driver_sql("PRAGMA foreign_keys=ON")
                s.commit()

    def table_names(self) -> list[str]:
        return inspect(self.engine).get_table_names()

    def dispose(self) -> None:
        self.engine.dispose()
