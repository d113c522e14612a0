"""Cross-origin calls, cookies, malformed bodies and the runs' queue depth (issue 13's bad input and security)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api_world import World
from dsgen_api.app import create_app
from dsgen_core.registry.schema import AssetTag


def _tags(world: World) -> int:
    with world.registry.session() as s:
        return int(s.scalar(select(func.count()).select_from(AssetTag)) or 0)


def test_cors_answers_only_configured_origins(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # by default no origin is allowed: the web app is served from the API's own origin
    r = world.client.get("/api/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    monkeypatch.setenv("DSGEN_CORS_ORIGINS", "https://app.example.com, http://localhost:5173/")
    with TestClient(create_app(world.registry)) as client:
        pre = client.options("/api/projects", headers={"Origin": "https://app.example.com",
                                                       "Access-Control-Request-Method": "GET",
                                                       "Access-Control-Request-Headers": "authorization"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "access-control-allow-credentials" not in pre.headers
        bad = client.options("/api/projects", headers={"Origin": "https://evil.example",
                                                       "Access-Control-Request-Method": "POST"})
        assert bad.status_code == 400 and "access-control-allow-origin" not in bad.headers
        got = client.get("/api/health", headers={"Origin": "http://localhost:5173"})
        assert got.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert "access-control-allow-origin" not in client.get("/api/health", headers={"Origin": "https://evil.example"}).headers


def test_no_cookies_so_no_csrf(world: World) -> None:
    """Credentials travel in headers only: a cross-site form post carries none and is refused."""
    login = world.client.post("/api/auth/login", json={"email": "editor@example.com", "password": "correct horse battery"})
    assert login.status_code == 200 and "set-cookie" not in login.headers
    world.client.cookies.clear()
    before = _tags(world)
    forged = world.client.post("/api/projects/alpha/tags", data={"query": "", "tags": "x"},
                               headers={"Origin": "https://evil.example"})
    assert forged.status_code == 401 and _tags(world) == before


def test_malformed_bodies_are_problems_and_write_nothing(world: World) -> None:
    before = _tags(world)
    h = world.as_("editor", **{"Content-Type": "application/json"})
    for body in (b"{", b"[1,2", b'{"tags": ["a"], "query": ', b"\xff\xfe", b'{"tags": "not-a-list", "query": ""}',
                 b'{"tags": ["a"]}', b'{"tags": ["a"], "ids": [1], "query": ""}', b'{"tags": ["a"], "ids": ["x"]}'):
        r = world.client.post("/api/projects/alpha/tags", headers=h, content=body)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), body
        assert r.json()["detail"], body
    huge = b'{"tags": ["' + b"a" * 10_000 + b'"], "query": ""}'
    assert world.client.post("/api/projects/alpha/tags", headers=h, content=huge).status_code in (400, 422)
    assert _tags(world) == before


def test_metrics_show_the_runs_queue(world: World) -> None:
    text = world.client.get("/metrics").text
    assert "dsgen_runs_in_flight 0.0" in text and "dsgen_http_requests_in_flight" in text
