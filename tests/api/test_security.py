"""Cross-origin calls, cookies, malformed bodies and the runs' queue depth (issue 13's bad input and security)."""

from __future__ import annotations

from pathlib import Path

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


def test_bodies_past_the_cap_are_413_declared_or_streamed(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSGEN_MAX_BODY_BYTES", "2000")
    h = world.as_("editor", **{"Content-Type": "application/json"})
    body = b'{"tags": ["a"], "query": "' + b" " * 5000 + b'"}'
    r = world.client.post("/api/projects/alpha/tags", headers=h, content=body)
    assert r.status_code == 413 and r.json()["title"] == "Content Too Large"

    def chunks():  # type: ignore[no-untyped-def]
        yield body[:1500]
        yield body[1500:]

    assert world.client.post("/api/projects/alpha/tags", headers=h, content=chunks()).status_code == 413
    r = world.client.post("/api/auth/login", content=b'{"email": "' + b"x" * 5000 + b'"}',
                          headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    small = world.client.post("/api/projects/alpha/tags", headers=h, content=b'{"tags": ["a"], "ids": []}')
    assert small.status_code == 200


def test_names_that_would_escape_their_folders_or_urls_are_refused(world: World) -> None:
    post = world.client.post
    for tag in ("..", ".", "a/b", "../../x", "-x", "--help", 'a"b', "a b", "x" * 51):
        r = post("/api/projects/alpha/versions", headers=world.as_("editor"), json={"tag": tag})
        assert r.status_code in (400, 422) and "tag" in r.json()["detail"], tag
    assert post("/api/projects/alpha/versions", headers=world.as_("editor"), json={"tag": "v1.2_rc-3"}).status_code == 201
    r = post("/api/projects/alpha/insights/views", headers=world.as_("editor"), json={"name": "a/b"})
    assert r.status_code == 400
    from dsgen_core.errors import DsgenError
    from dsgen_core.registry.projects import ensure_project

    with world.registry.session() as s:
        for name in ("..", "a/b", "x\\y", ""):
            with pytest.raises(DsgenError):
                ensure_project(s, name)
    assert world.registry.settings.export_dir("alpha", "v1", "coco").parts[-3:] == ("alpha", "v1", "coco")
    with pytest.raises(DsgenError):
        world.registry.settings.export_dir("alpha", "..", "coco")


def test_cursors_and_numbers_out_of_their_range_are_400_not_500(world: World) -> None:
    import base64
    import json

    def cur(doc: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    first = world.get("/api/projects/alpha/assets", "viewer", params={"sort": "width", "limit": 2}).json()
    assert first["next_cursor"]
    bad = [("width", cur(["width", "abc", 1])), ("file_name", cur(["file_name", 5, 1])),
           ("created_at", cur(["created_at", 5, 1])), ("created_at", cur(["created_at", "notadate", 1])),
           ("width", cur(["width", None, True])), ("width", cur(["width", 2**70, 1])), ("id", cur(["id", 1, 2**70])),
           ("file_name", first["next_cursor"]), ("width", "!!!"), ("width", cur({"a": 1}))]
    for sort, c in bad:
        r = world.get("/api/projects/alpha/assets", "viewer", params={"sort": sort, "cursor": c})
        assert r.status_code == 400, (sort, c, r.text)
    for path in ("/api/projects/alpha/assets/99999999999999999999", "/api/projects/alpha/export-jobs/99999999999999999999"):
        assert world.get(path, "viewer").status_code in (400, 404, 422), path
    assert world.get("/api/projects/alpha/assets", "viewer", params={"after": 2**70}).status_code in (400, 422)
    r = world.client.post("/api/projects/alpha/tags", headers=world.as_("editor"), json={"ids": [2**70], "tags": ["x"]})
    assert r.status_code in (400, 404, 422)


def test_signed_urls_work_for_project_names_that_need_quoting(world: World, demo: Path) -> None:
    from dsgen_core.accounts.access import grant
    from dsgen_core.registry.projects import ensure_project, get_project
    from dsgen_core.registry.schema import User
    from support import import_file

    with world.registry.session() as s:
        ensure_project(s, "my proj #1")
    import_file(world.registry, demo / "annotations" / "instances_default.json", images=demo / "images",
                project="my proj #1")
    with world.registry.session() as s:
        viewer = s.scalar(select(User).where(User.email == "viewer@example.com"))
        assert viewer is not None
        grant(s, get_project(s, "my proj #1"), viewer, "viewer")
    items = world.get("/api/projects/my%20proj%20%231/assets", "viewer", params={"limit": 1}).json()["items"]
    assert world.client.get(items[0]["thumbnail_url"]).status_code == 200


def test_many_concurrent_writers_do_not_stall_on_sqlite(world: World) -> None:
    """More writers at once than the server has worker threads: each commits in its own worker, so none
    waits for the 30 s busy timeout (they did when the commit waited for response validation)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from dsgen_core.registry.projects import get_project
    from dsgen_core.registry.schema import Asset

    with world.registry.session() as s:
        ids = list(s.scalars(select(Asset.id).where(Asset.project_id == get_project(s, "alpha").id)))
    with world.served() as base:
        headers = world.as_("editor")

        def tag(i: int) -> tuple[int, float]:
            t = time.perf_counter()
            r = httpx.post(f"{base}/api/projects/alpha/tags", headers=headers, timeout=60,
                           json={"ids": [ids[i % len(ids)]], "tags": [f"w{i}"]})
            return r.status_code, time.perf_counter() - t

        with ThreadPoolExecutor(60) as pool:
            results = list(pool.map(tag, range(120)))
    assert [code for code, _s in results] == [200] * 120
    assert max(s for _c, s in results) < 20, sorted(s for _c, s in results)[-5:]
    with world.registry.session() as s:
        assert int(s.scalar(select(func.count()).select_from(AssetTag).where(AssetTag.tag.like("w%"))) or 0) == 120
