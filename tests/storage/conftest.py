"""A real S3-compatible HTTP server for the storage tests: moto's server in its own process.

- ``s3_server``: one moto server per test process (per xdist worker), bucket ``dsgen-test`` made.
- ``s3_env``: the AWS/dsgen environment pointing at it (monkeypatched; ``~/.aws`` is hidden).
- ``s3_root``: ``s3://dsgen-test/<unique prefix>`` for this test, also set as ``DSGEN_STORAGE``.
- ``s3_registry``: the shared ``registry`` fixture (SQLite and PostgreSQL) with ``storage_root = s3_root``.
- ``s3``: a plain boto3 client on the server, to look at what the code under test wrote.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from support import _free_port

from dsgen_core.registry.db import Registry

BUCKET = "dsgen-test"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1 and a free port; ``auth=True`` checks access keys."""

    def __init__(self, *, auth: bool = False) -> None:
        self.auth = auth
        self.log = Path(tempfile.mkstemp(prefix="dsgen-moto-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> MotoServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if self.auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        # A port picked free can be taken by another xdist worker before moto binds it: retry.
        for _ in range(5):
            port = _free_port()
            with self.log.open("wb") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                )
            if self._wait_ready(f"http://127.0.0.1:{port}"):
                self.url = f"http://127.0.0.1:{port}"
                return self
            self.stop()
        raise RuntimeError(f"moto server did not start:\n{self.log.read_text(errors='replace')[-4000:]}")

    def _wait_ready(self, url: str, timeout: float = 30) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self, **credentials: str) -> Any:  # noqa: ANN401 - a boto3 S3 client
        creds = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        return boto3.session.Session().client("s3", endpoint_url=self.url, region_name="us-east-1", **creds)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)


@pytest.fixture
def s3_env(s3_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    # A developer's ~/.aws (profiles, SSO, a default endpoint) must not leak into the tests.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("DSGEN_S3_ENDPOINT_URL", s3_server.url)
    return {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "DSGEN_S3_"))}


@pytest.fixture
def s3_root(s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    root = f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("DSGEN_STORAGE", root)
    return root


@pytest.fixture
def s3_registry(registry: Registry, s3_root: str) -> Iterator[Registry]:
    reg = Registry(dataclasses.replace(registry.settings, storage_root=s3_root))
    try:
        yield reg
    finally:
        reg.dispose()


@pytest.fixture
def s3(s3_server: MotoServer) -> Any:  # noqa: ANN401 - a boto3 S3 client
    return s3_server.client()
