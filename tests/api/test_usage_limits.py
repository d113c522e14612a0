"""Usage records, rate limits and plan limits (issue 13, seed 002): per key and per user, with the
counters in the database and in a real Redis server, on SQLite and PostgreSQL.

Limits are made tiny through the environment; the window is an hour so that a test does not
straddle two windows and see its count restart.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api_world import PASSWORD, World
from dsgen_api.app import create_app
from dsgen_api.deps import ProjectCtx, project_ctx, requires
from dsgen_api.limits import flush
from dsgen_core.accounts import fast_state
from dsgen_core.accounts.plans import LimitExceeded, check_storage, check_training, plan_of
from dsgen_core.accounts.ratelimit import Hit, RateLimited, count
from dsgen_core.accounts.usage import record_usage, stored_bytes, usage_summary
from dsgen_core.accounts.users import get_user
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import ApiKey, Asset, ImportBatch, RateCounter, RefreshToken, RevokedAccessToken
from redis_server import RedisServer, RedisUnavailable
from support import import_file

WINDOW = 3600


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer()
    except RedisUnavailable as exc:  # scripts/setup.sh installs redis-server: a failure, not a skip
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(params=["database", "redis"])
def counters(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Where the rate counters live; with Redis, a real server emptied for each test."""
    monkeypatch.setenv("DSGEN_RATE_LIMIT_WINDOW_S", str(WINDOW))
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        monkeypatch.setenv("DSGEN_REDIS_URL", server.url)
        client = fast_state.redis_client()
        assert client is not None
        client.flushall()
    else:
        monkeypatch.delenv("DSGEN_REDIS_URL", raising=False)
    yield request.param


def _redis(monkeypatch: pytest.MonkeyPatch, server: RedisServer) -> Any:
    monkeypatch.setenv("DSGEN_REDIS_URL", server.url)
    client = fast_state.redis_client()
    assert client is not None
    client.flushall()
    return client


def _limited(r: Any, who: str) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert 1 <= int(r.headers["Retry-After"]) <= WINDOW
    body = r.json()
    assert body["title"] == "Too Many Requests" and who in body["detail"], body


def _stored_counters(world: World) -> int:
    """Counters of users and keys in the database (the fixture's logins counted per address there)."""
    with world.registry.session() as s:
        return int(s.scalar(select(func.count()).select_from(RateCounter).where(~RateCounter.bucket.like("ip:%"))) or 0)


def test_a_key_and_then_its_user_past_their_limits_get_429_with_retry_after(
        world: World, counters: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSGEN_RATE_LIMIT_KEY_PER_MINUTE", "3")
    monkeypatch.setenv("DSGEN_RATE_LIMIT_PER_MINUTE", "6")
    for _ in range(3):
        assert world.get("/api/me", "key:read").status_code == 200
    _limited(world.get("/api/me", "key:read"), "API key")
    # the user's other key has its own count; the user's (4 so far, the refused one too) goes on
    assert world.get("/api/me", "key:write").status_code == 200
    assert world.get("/api/me", "editor").status_code == 200
    _limited(world.get("/api/me", "editor"), "user editor@example.com (free plan)")
    _limited(world.get("/api/me", "key:write"), "user editor@example.com")
    # another user is not affected
    assert world.get("/api/me", "viewer").status_code == 200
    assert (_stored_counters(world) > 0) == (counters == "database")


def test_a_refused_request_writes_nothing(world: World, counters: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with world.registry.session() as s:
        asset = s.scalar(select(Asset.id).where(Asset.project_id == get_project(s, "alpha").id).order_by(Asset.id))
    monkeypatch.setenv("DSGEN_RATE_LIMIT_KEY_PER_MINUTE", "1")
    edit = {"ids": [asset], "tags": ["first"]}
    url = "/api/projects/alpha/tags"
    assert world.client.post(url, json=edit, headers=world.as_("key:write")).status_code == 200
    r = world.client.post(url, json={**edit, "tags": ["second"]}, headers=world.as_("key:write"))
    _limited(r, "API key")
    tags = world.get(f"/api/projects/alpha/assets/{asset}", "editor").json()["tags"]
    assert "first" in str(tags) and "second" not in str(tags)
    with world.registry.session() as s:  # the key counts what it was let do, not what it was refused
        assert s.scalar(select(ApiKey.total_requests).where(ApiKey.name == "editor-write")) == 1


def test_logins_are_limited_per_client_address(world: World, counters: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSGEN_RATE_LIMIT_ANON_PER_MINUTE", "2")
    with world.registry.session() as s:  # the fixture's own logins counted before the limit was set
        s.execute(RateCounter.__table__.delete())
    login = {"email": "viewer@example.com", "password": "not the password"}
    for _ in range(2):
        assert world.client.post("/api/auth/login", json=login).status_code == 401
    r = world.client.post("/api/auth/login", json={**login, "password": PASSWORD})  # right, but too many tries
    _limited(r, "address testclient")


def test_requests_are_recorded_per_user_and_per_key(world: World, counters: str) -> None:
    for who, n in (("key:read", 3), ("key:write", 2), ("editor", 4), ("viewer", 1)):
        for _ in range(n):
            assert world.get("/api/me", who).status_code == 200
    flush(world.registry, world.client.app.state.usage_tally)  # the server does it every few seconds and at exit
    with world.registry.session() as s:
        editor = usage_summary(s, get_user(s, "editor@example.com"))
        by_key = {line.api_key_name: line.amount for line in editor.lines if line.resource_type == "api_request"}
        assert by_key == {"editor-read": 3, "editor-write": 2, None: 4}
        assert editor.total("api_request") == 9
        assert usage_summary(s, get_user(s, "viewer@example.com")).total("api_request") == 1
        totals = dict(s.execute(select(ApiKey.name, ApiKey.total_requests)).tuples().all())
        assert totals == {"editor-read": 3, "editor-write": 2}


def test_the_tally_is_written_when_the_server_stops(registry: Registry, world: World) -> None:
    app = create_app(registry)
    with TestClient(app) as client:
        token = client.post("/api/auth/login", json={"email": "owner@example.com", "password": PASSWORD}).json()
        for _ in range(5):
            assert client.get("/api/me", headers={"Authorization": f"Bearer {token['access_token']}"}).status_code == 200
    with registry.session() as s:
        assert usage_summary(s, get_user(s, "owner@example.com")).total("api_request") == 5


@pytest.mark.parametrize("backend", ["database", "redis"])
def test_counters_are_exact_under_concurrent_requests(registry: Registry, backend: str, request: pytest.FixtureRequest,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if backend == "redis":
        _redis(monkeypatch, request.getfixturevalue("redis_server"))
    else:
        monkeypatch.delenv("DSGEN_REDIS_URL", raising=False)
    admitted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(6):
            try:
                with registry.session() as s:
                    count(s, [Hit("u:1", 20, "user 1")], window_s=WINDOW)
                with lock:
                    admitted.append(1)
            except RateLimited:
                with lock:
                    refused.append(1)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(admitted), len(refused)) == (20, 16)


def test_a_revoked_token_is_refused_by_redis(world: World, redis_server: RedisServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    client = _redis(monkeypatch, redis_server)
    login = world.client.post("/api/auth/login", json={"email": "viewer@example.com", "password": PASSWORD}).json()
    auth = {"Authorization": f"Bearer {login['access_token']}"}
    assert world.client.get("/api/me", headers=auth).status_code == 200
    assert world.client.post("/api/auth/logout", headers=auth, json={}).status_code == 204
    assert any(k.startswith(b"dsgen:revoked:jti:") for k in client.keys("dsgen:revoked:*"))
    # The database forgets the logout: Redis alone refuses the token now.
    with world.registry.session() as s:
        s.execute(RevokedAccessToken.__table__.delete())
        s.execute(RefreshToken.__table__.update().values(revoked_at=None))
    r = world.client.get("/api/me", headers=auth)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    # And with Redis emptied too, nothing knows of it: Redis is what was asked.
    client.flushall()
    assert world.client.get("/api/me", headers=auth).status_code == 200


def test_a_starting_server_copies_the_databases_revocations_into_redis(
        registry: Registry, world: World, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSGEN_REDIS_URL", raising=False)
    login = world.client.post("/api/auth/login", json={"email": "viewer@example.com", "password": PASSWORD}).json()
    auth = {"Authorization": f"Bearer {login['access_token']}"}
    assert world.client.post("/api/auth/logout", headers=auth, json={}).status_code == 204  # no Redis yet
    _redis(monkeypatch, redis_server)
    with TestClient(create_app(registry)) as client:
        assert client.get("/api/me", headers=auth).status_code == 401
        with registry.session() as s:  # refused by what Redis was given at start, not by the database
            s.execute(RevokedAccessToken.__table__.delete())
            s.execute(RefreshToken.__table__.update().values(revoked_at=None))
        assert client.get("/api/me", headers=auth).status_code == 401


def _import_route(world: World, demo: Path) -> None:
    """An upload as the upload route does it: the project owner's storage is checked, then the import runs."""

    @world.client.app.post("/api/projects/{project}/test-import", **requires("editor"))
    def test_import(size: int, ctx: ProjectCtx = project_ctx("editor")) -> dict[str, bool]:
        check_storage(ctx.session, get_user(ctx.session, "owner@example.com"), size)
        import_file(world.registry, demo / "annotations" / "instances_default.json", images=demo / "images",
                    project=ctx.project.name)
        return {"imported": True}


def test_the_storage_limit_refuses_an_import_and_writes_nothing(world: World, demo: Path) -> None:
    _import_route(world, demo)
    with world.registry.session() as s:
        owner = get_user(s, "owner@example.com")
        held = stored_bytes(s, owner.id)
        assert held > 0  # alpha's images are the owner's
        owner.storage_gb_limit = (held + 1000) / 1024**3
        assets = s.scalar(select(func.count()).select_from(Asset))
        batches = s.scalar(select(func.count()).select_from(ImportBatch))
    r = world.client.post("/api/projects/alpha/test-import?size=5000", headers=world.as_("editor"))
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["title"] == "Plan limit reached"
    assert "storage limit reached" in body["detail"] and "free plan" in body["detail"]
    assert "owner@example.com" in body["detail"] and "GB" in body["detail"]
    with world.registry.session() as s:
        assert s.scalar(select(func.count()).select_from(Asset)) == assets
        assert s.scalar(select(func.count()).select_from(ImportBatch)) == batches
    # within the limit it goes through
    assert world.client.post("/api/projects/alpha/test-import?size=500", headers=world.as_("editor")).status_code == 200


def test_the_training_limit(world: World) -> None:
    with world.registry.session() as s:
        user = get_user(s, "editor@example.com")
        assert plan_of(user).training_hours == 10  # the free plan's
        user.gpu_hours_limit = 1.5
        record_usage(s, user.id, "training", 3600, "seconds", project_id=get_project(s, "alpha").id,
                     dagster_run_id="run-1")
        check_training(s, user, expected_seconds=1800)  # exactly the limit
        with pytest.raises(LimitExceeded, match=r"training limit reached: .* 1.00 h of the 1.5 h a month the free plan"):
            check_training(s, user, expected_seconds=1801)
        record_usage(s, user.id, "training", 1800)
        with pytest.raises(LimitExceeded):
            check_training(s, user)  # at the limit: nothing more starts
        user.plan, user.gpu_hours_limit = "enterprise", None
        check_training(s, user, expected_seconds=10**9)  # no limit
        with pytest.raises(Exception, match="counted in seconds"):
            record_usage(s, user.id, "training", 1, "hours")


def test_dsgen_usage_prints_the_summary(world: World, cli: Any) -> None:
    for _ in range(2):
        world.get("/api/me", "key:read")
    flush(world.registry, world.client.app.state.usage_tally)
    with world.registry.session() as s:
        record_usage(s, get_user(s, "editor@example.com").id, "training", 5400)
    r = cli.invoke("usage", "--user", "editor@example.com", "--json")
    assert r.exit_code == 0, r.output
    import json

    [row] = json.loads(r.output)
    assert row["api_requests"] == 2 and row["training_hours"] == 1.5 and row["plan"] == "free"
    assert row["by_key"] == [{"api_key_id": row["by_key"][0]["api_key_id"], "name": "editor-read", "requests": 2}]
    human = cli.invoke("usage", "--since", "all")
    assert "editor@example.com (free): 2 API requests, 1.5 h training" in human.output
    assert cli.invoke("usage", "--since", "yesterday").exit_code == 2


def test_an_unreachable_redis_falls_back_to_the_database(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis down: the database counts and answers revocation lookups; nothing fails, nothing revoked gets in."""
    from redis_server import _free_port

    monkeypatch.setattr(fast_state, "_down_until", 0.0)  # restored after: the other tests' Redis is not paused
    monkeypatch.setattr(fast_state, "_stale", False)
    monkeypatch.setenv("DSGEN_REDIS_URL", f"redis://127.0.0.1:{_free_port()}/0")  # nobody listens there
    monkeypatch.setenv("DSGEN_RATE_LIMIT_KEY_PER_MINUTE", "2")
    monkeypatch.setenv("DSGEN_RATE_LIMIT_WINDOW_S", str(WINDOW))
    for _ in range(2):
        assert world.get("/api/me", "key:read").status_code == 200
    _limited(world.get("/api/me", "key:read"), "API key")
    assert _stored_counters(world) > 0
    auth = {"Authorization": f"Bearer {world.tokens['viewer']}"}
    assert world.client.post("/api/auth/logout", headers=auth, json={}).status_code == 204
    assert world.client.get("/api/me", headers=auth).status_code == 401
    assert fast_state._stale  # the logout missed Redis: it is copied in before Redis is trusted again


def test_a_revocation_that_missed_redis_is_copied_in_when_it_answers_again(
        world: World, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _redis(monkeypatch, redis_server)
    monkeypatch.setattr(fast_state, "_down_until", 0.0)
    monkeypatch.setattr(fast_state, "_stale", False)
    auth = {"Authorization": f"Bearer {world.tokens['viewer']}"}
    assert world.client.get("/api/me", headers=auth).status_code == 200
    fast_state.failed("a test", RuntimeError("down"))  # Redis went away ...
    assert world.client.post("/api/auth/logout", headers=auth, json={}).status_code == 204  # ... for this logout
    assert client.keys("dsgen:revoked:*") == []
    monkeypatch.setattr(fast_state, "_down_until", 0.0)  # ... and is back
    assert world.client.get("/api/me", headers=auth).status_code == 401
    assert client.keys("dsgen:revoked:*") != []
