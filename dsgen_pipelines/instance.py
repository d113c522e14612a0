"""Dagster's own storage (runs, event log, schedules), chosen by the environment.

``dagster.yaml`` names :class:`DsgenInstanceStorage` as its storage: with ``DSGEN_DAGSTER_PG_URL``
set (``postgresql://user:password@host:5432/dagster``) it is dagster-postgres' storage in that
database; unset, it is Dagster's usual SQLite files under ``$DAGSTER_HOME``. Each Dagster process
(webserver, daemon, code server, run worker) decides for itself, so they must share the variable.
"""

import os
from typing import Any

import dagster as dg
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData

PG_URL_ENV = "DSGEN_DAGSTER_PG_URL"


class DsgenInstanceStorage(DagsterStorage, ConfigurableClass):
    """Never instantiated: building it from config returns the PostgreSQL or the SQLite storage."""

    @classmethod
    def config_type(cls) -> dict[str, dg.Field]:
        return {
            "postgres_url_env": dg.Field(str, default_value=PG_URL_ENV,
                                         description="Environment variable holding the PostgreSQL URL."),
            "base_dir": dg.Field(dg.StringSource, is_required=False,
                                 description="SQLite: folder of the storage files (default $DAGSTER_HOME)."),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: dict[str, Any]) -> DagsterStorage:  # type: ignore[override]
        url = os.environ.get(config_value.get("postgres_url_env") or PG_URL_ENV)
        if url:
            from dagster_postgres import DagsterPostgresStorage  # noqa: PLC0415 - only when configured

            # dagster-postgres is written for psycopg2 (its NOTIFY takes a bound parameter, which psycopg 3
            # refuses), and SQLAlchemy 2.1 gives plain postgresql:// URLs to psycopg 3: name the driver.
            url = "postgresql+psycopg2://" + url.split("://", 1)[1]
            return DagsterPostgresStorage(url, inst_data=inst_data)
        base_dir = config_value.get("base_dir") or os.environ.get("DAGSTER_HOME")
        if not base_dir:
            raise dg.DagsterInvariantViolationError("set DAGSTER_HOME (or storage.custom.config.base_dir in dagster.yaml)")
        return DagsterSqliteStorage.from_local(base_dir, inst_data=inst_data)
