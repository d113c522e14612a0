"""The real API app over the test's registry (SQLite and PostgreSQL), with users of each role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_world import PASSWORD, World
from dsgen_api.app import create_app
from dsgen_core.accounts.access import grant
from dsgen_core.accounts.keys import create_key
from dsgen_core.accounts.users import add_user
from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from support import import_file


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with the smallest cost: the same code path, without 0.4 s per hash on a loaded 2-core machine."""
    from argon2 import PasswordHasher

    monkeypatch.setattr("dsgen_core.accounts.passwords._HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture(autouse=True)
def _own_dagster_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Runs the API starts go to the test's own Dagster instance, on the repository's dagster.yaml."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((Path(__file__).resolve().parents[2] / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name in ("DSGEN_PROJECT", "DSGEN_DAGSTER_PG_URL", "DSGEN_STORAGE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo"), n_images=12, seed=3).root


@pytest.fixture
def world(registry: Registry, demo: Path) -> Iterator[World]:
    """Projects "alpha" (the demo) and "beta" (its first images); users: an admin, alpha's owner, admin,
    editor and viewer, and beta's viewer ("outsider" to alpha)."""
    import_file(registry, demo / "annotations" / "instances_default.json", images=demo / "images", project="alpha")
    import_file(registry, demo / "annotations" / "instances_default.json", images=demo / "images", project="beta")
    roles = {"owner": "owner", "padmin": "admin", "editor": "editor", "viewer": "viewer"}
    keys: dict[str, str] = {}
    with registry.session() as s:
        add_user(s, "root@example.com", "Root", password=PASSWORD, admin=True)
        alpha, beta = get_project(s, "alpha"), get_project(s, "beta")
        users = {}
        for who, role in roles.items():
            users[who] = add_user(s, f"{who}@example.com", who, password=PASSWORD)
            grant(s, alpha, users[who], role)
        outsider = add_user(s, "outsider@example.com", "outsider", password=PASSWORD)
        grant(s, beta, outsider, "owner")
        for scope in ("read", "write"):
            keys[scope] = create_key(s, users["editor"], f"editor-{scope}", scopes=[scope])[1]
    app = create_app(registry)
    with TestClient(app) as client:
        tokens = {}
        for who in ("root", *roles, "outsider"):
            r = client.post("/api/auth/login", json={"email": f"{who}@example.com", "password": PASSWORD})
            assert r.status_code == 200, r.text
            tokens[who] = r.json()["access_token"]
        yield World(client, registry, tokens, keys)
