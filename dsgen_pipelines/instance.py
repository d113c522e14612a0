"""Dagster's own storage (runs, event log, schedules), chosen by the environment.

``dagster.yaml`` names :class:`DsgenInstanceStorage` as its storage: with ``DSGEN_DAGSTER_PG_URL``
set (``postgresql://user:password@host:5432/dagster``) it is dagster-postgres' storage in that
database; unset, it is Dagster's usual SQLite files under ``$DAGSTER_HOME``. Each Dagster process
(webserver, daemon, code server, run worker) decides for itself, so they must share the variable.

The SQLite storage differs from Dagster's default in two ways that make a short run cheap (a
5,000-image freeze went from about 1.9x to 1.4x the bare core call): the event log is one
database file instead of one new database per run (whose schema Dagster creates and stamps before
the run's first event), and the run and event-log databases keep one pooled engine per process
with WAL and ``synchronous=NORMAL`` instead of a new engine and an fsync for every event. After a
power loss the last events may be missing; the files stay consistent. Dagster calls its one-file
event log "intended for test cases": many runs writing at once share one SQLite write lock (with
a 15 s busy timeout). For many concurrent runs use PostgreSQL, or set ``event_log: per_run`` in
``dagster.yaml`` to go back to Dagster's one file per run.
"""

import enum
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage, SqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClass, ConfigurableClassData

PG_URL_ENV = "DSGEN_DAGSTER_PG_URL"


class EventLogLayout(enum.Enum):
    single_file = "single_file"
    per_run = "per_run"


class DsgenInstanceStorage(DagsterStorage, ConfigurableClass):
    """Never instantiated: building it from config returns the PostgreSQL or the SQLite storage."""

    @classmethod
    def config_type(cls) -> dict[str, dg.Field]:
        return {
            "postgres_url_env": dg.Field(str, default_value=PG_URL_ENV,
                                         description="Environment variable holding the PostgreSQL URL."),
            "base_dir": dg.Field(dg.StringSource, is_required=False,
                                 description="SQLite: folder of the storage files (default $DAGSTER_HOME)."),
            "event_log": dg.Field(dg.Enum.from_python_enum_direct_values(EventLogLayout), default_value="single_file",
                                  description="SQLite: one event-log file for all runs, or Dagster's file per run."),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: dict[str, Any]) -> DagsterStorage:  # type: ignore[override]
        url = os.environ.get(config_value.get("postgres_url_env") or PG_URL_ENV)
        if url:
            from dagster_postgres import DagsterPostgresStorage

            # dagster-postgres is written for psycopg2 (its NOTIFY takes a bound parameter, which psycopg 3
            # refuses), and SQLAlchemy 2.1 gives plain postgresql:// URLs to psycopg 3: name the driver.
            url = "postgresql+psycopg2://" + url.split("://", 1)[1]
            return DagsterPostgresStorage(url, inst_data=inst_data)
        base_dir = config_value.get("base_dir") or os.environ.get("DAGSTER_HOME")
        if not base_dir:
            raise dg.DagsterInvariantViolationError("set DAGSTER_HOME (or storage.custom.config.base_dir in dagster.yaml)")
        return PooledSqliteStorage(base_dir, inst_data=inst_data,
                                   single_event_log=config_value.get("event_log", "single_file") == "single_file")


def _pooled_engine(conn_string: str) -> sa.Engine:
    engine = sa.create_engine(conn_string, connect_args={"timeout": 15})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    return engine


class _PooledEngine:
    """One engine per storage object, made on first use, instead of Dagster's engine per transaction."""

    _conn_string: str
    _engine: sa.Engine | None = None

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        if self._engine is None:
            self._engine = _pooled_engine(self._conn_string)
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        if self._engine is not None:
            self._engine.dispose()


class PooledEventLogStorage(_PooledEngine, ConsolidatedSqliteEventLogStorage):
    """Dagster's one-file SQLite event log, on a pooled engine."""

    def _connect(self) -> Any:
        return self._transaction()


class PooledRunStorage(_PooledEngine, SqliteRunStorage):
    """Dagster's SQLite run storage, on a pooled engine."""

    def connect(self) -> Any:
        return self._transaction()


class PooledSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite files under ``$DAGSTER_HOME``: runs, one event-log file, schedules."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None, *,
                 single_event_log: bool = True) -> None:
        os.makedirs(base_dir, exist_ok=True)
        self.base_dir = base_dir
        self._run_storage = PooledRunStorage.from_local(_runs_directory(base_dir))
        # Dagster's attribute is typed by its own default class; it only needs an EventLogStorage (see
        # DagsterSqliteStorage.event_log_storage), and the one-file event log is a sibling of that class.
        event_log_cls = PooledEventLogStorage if single_event_log else SqliteEventLogStorage
        self._event_log_storage = event_log_cls(_event_logs_directory(base_dir))  # type: ignore[assignment]
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()  # skips DagsterSqliteStorage's, which would make its own storages
