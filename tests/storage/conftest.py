"""A real S3-compatible HTTP server for the storage tests: moto's server in its own process.

- ``s3_server`` (in tests/conftest.py): one moto server per test process, bucket ``dsgen-test`` made.
- ``s3_env``: the AWS/dsgen environment pointing at it (monkeypatched; ``~/.aws`` is hidden).
- ``s3_root``: ``s3://dsgen-test/<unique prefix>`` for this test, also set as ``DSGEN_STORAGE``.
- ``s3_registry``: the shared ``registry`` fixture (SQLite and PostgreSQL) with ``storage_root = s3_root``.
- ``s3``: a plain boto3 client on the server, to look at what the code under test wrote.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dsgen_core.registry.db import Registry
from support import BUCKET, CREDENTIALS, MotoServer


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
