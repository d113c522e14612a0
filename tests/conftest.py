"""Shared fixtures: every registry test runs on SQLite and on a throwaway PostgreSQL server.

- ``database_url``: a fresh, empty database per test, parametrized ``[sqlite]`` / ``[postgresql]``.
  To run a test on one backend only: ``@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)``.
- ``registry``: a migrated :class:`Registry` on that database, home in ``tmp_path``.
- ``env``: the environment (also monkeypatched into ``os.environ``) pointing DSGEN_HOME and
  DSGEN_DATABASE_URL at that registry, for CLI subprocesses.
- ``cli``: ``cli("stats", "--json", check=True)`` runs the ``dsgen`` console script in a
  subprocess with ``env``; ``cli.invoke(...)`` runs it in-process through click's CliRunner.
- ``corpus``: the shared corpus of real annotation files (``$DSGEN_CORPUS`` or ``../shared/corpus``).
- ``pg_server``: one PostgreSQL cluster per test process (per xdist worker), started on first use.
- ``cvat``: the schema-checked stand-in CVAT server (``tests/cvat_server.py``), with CVAT_URL and a
  token set for the test; it fails the test if any request or response strayed from CVAT's API.
- Ultralytics runs offline (``YOLO_OFFLINE``) with its settings in a temp folder, in every test.

Every test gets DSGEN_HOME set to its ``tmp_path`` and DSGEN_DATABASE_URL / DSGEN_STORAGE
unset, so nothing a test does can touch a developer's ./data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dsgen_core.config import load_settings
from dsgen_core.registry.db import Registry
from support import BUCKET, REPO_ROOT, MotoServer, PostgresServer, PostgresUnavailable, find_pg_bin, run_cli

BACKENDS = ["sqlite", "postgresql"]


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"postgresql: initdb={find_pg_bin('initdb')} pg_ctl={find_pg_bin('pg_ctl')}"]


@pytest.fixture(scope="session", autouse=True)
def _ultralytics_offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Ultralytics, wherever a test meets it, runs offline with its settings in a temp folder
    (both are read when it is first imported, lazily, inside the tests)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLO_OFFLINE", "1")
        mp.setenv("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("yolo-config")))
        yield


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DSGEN_HOME", str(tmp_path))
    monkeypatch.delenv("DSGEN_DATABASE_URL", raising=False)
    monkeypatch.delenv("DSGEN_STORAGE", raising=False)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        missing = str(exc)
    else:
        missing = None
    if missing:
        pytest.fail(missing, pytrace=False)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry' / 'registry.db'}"
        return
    if request.param != "postgresql":
        raise ValueError(f"unknown backend {request.param!r}; expected one of {BACKENDS}")
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def registry(database_url: str, tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(load_settings(home=tmp_path, database_url=database_url))
    try:
        yield reg
    finally:
        reg.dispose()


@pytest.fixture
def env(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("DSGEN_HOME", str(registry.settings.home))
    monkeypatch.setenv("DSGEN_DATABASE_URL", registry.settings.database_url)
    return dict(os.environ)


class Cli:
    """Runs ``dsgen`` against the test's registry (see :func:`support.run_cli`)."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def __call__(self, *args: Any, check: bool = False, **kw: Any):
        kw.setdefault("cwd", self.cwd)
        kw.setdefault("env", self.env)
        return run_cli(*map(str, args), check=check, **kw)

    def invoke(self, *args: Any, **kw: Any):
        """In-process, through click's CliRunner (faster; shares the test's interpreter)."""
        from click.testing import CliRunner

        from dsgen_core.cli.main import cli

        kw.setdefault("catch_exceptions", False)
        return CliRunner().invoke(cli, [str(a) for a in args], **kw)


@pytest.fixture
def cli(env: dict[str, str], tmp_path: Path) -> Cli:
    return Cli(env, tmp_path)


@pytest.fixture(scope="session")
def corpus() -> Path:
    configured = os.environ.get("DSGEN_CORPUS")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared" / "corpus"
    if not path.is_dir():
        pytest.fail(
            f"test corpus not found at {path}: it lives in shared/corpus beside the repository "
            "(<parent>/shared/corpus); set DSGEN_CORPUS to its path otherwise",
            pytrace=False,
        )
    return path.resolve()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """A real S3-compatible HTTP server (moto's, in its own process) with the test bucket made."""
    server = MotoServer().start()
    try:
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)


@pytest.fixture
def cvat(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from cvat_server import TOKEN, StandIn

    with StandIn.start(corpus) as server:
        monkeypatch.setenv("CVAT_URL", server.url)
        monkeypatch.setenv("CVAT_ACCESS_TOKEN", TOKEN)
        yield server
        assert server.violations == []
