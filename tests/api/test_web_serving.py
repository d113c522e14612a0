"""``dsgen serve`` serves the web app's build beside the API (issue 13): client-side routes get
index.html, hashed assets are cached for good, nothing outside the build is reachable, unknown API
paths stay problem+json, and without a build the API still answers while ``/`` says what to run."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dsgen_api.app import create_app
from dsgen_core.registry.db import Registry


def _client(registry: Registry, dist: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("DSGEN_WEB_DIST", str(dist))
    return TestClient(create_app(registry))


def test_the_build_is_served_and_nothing_beside_it(registry: Registry, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<div id="root"></div>')
    (dist / "assets" / "index-abc123.js").write_text("console.log(1)")
    (dist / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("not for you")
    client = _client(registry, dist, monkeypatch)

    for path in ("/", "/login", "/p/demo/gallery", "/p/demo/assets/12"):
        r = client.get(path)
        assert r.status_code == 200 and r.text == '<div id="root"></div>', path
        assert r.headers["cache-control"] == "no-cache"
    r = client.get("/assets/index-abc123.js")
    assert r.text == "console.log(1)" and "immutable" in r.headers["cache-control"]
    assert client.get("/favicon.svg").headers["cache-control"] == "no-cache"
    assert client.get("/assets/index-old999.js").status_code == 404  # an old build's asset is not HTML
    for sneaky in ("/..%2fsecret.txt", "/assets/..%2f..%2fsecret.txt", "/%2e%2e/secret.txt"):
        assert "not for you" not in client.get(sneaky).text, sneaky
    r = client.get("/api/no-such-route")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert client.get("/api/health").status_code == 200


def test_without_a_build_the_api_serves_and_the_page_says_to_run_setup(registry: Registry, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(registry, tmp_path / "not-built", monkeypatch)
    r = client.get("/")
    assert r.status_code == 200 and "scripts/setup.sh" in r.text and "text/html" in r.headers["content-type"]
    assert client.get("/p/demo/gallery").text == r.text
    assert client.get("/api/health").status_code == 200
