"""Request ids, JSON access logs and Prometheus metrics (issue 13)."""

from __future__ import annotations

import json
import logging

import pytest

from api_world import World
from dsgen_api.observe import JsonFormatter


def test_request_ids_logs_and_metrics(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dsgen.api.access")
    r = world.client.get("/api/projects/alpha/assets", headers=world.as_("viewer", **{"X-Request-ID": "abc-123"}))
    assert r.headers["x-request-id"] == "abc-123"
    odd = world.client.get("/api/health", headers={"X-Request-ID": "bad id\nwith newline"})
    assert odd.headers["x-request-id"] != "bad id\nwith newline" and len(odd.headers["x-request-id"]) == 32
    world.get("/api/projects/alpha/assets", "viewer", params={"q": "width>>1"})
    line = next(rec for rec in caplog.records if getattr(rec, "fields", {}).get("request_id") == "abc-123")
    doc = json.loads(JsonFormatter().format(line))
    assert doc["route"] == "/api/projects/{project}/assets" and doc["status"] == 200 and doc["who"] == "viewer@example.com"
    metrics = world.client.get("/metrics").text
    assert 'dsgen_http_requests_total{method="GET",route="/api/projects/{project}/assets",status="200"}' in metrics
    assert 'status="400"' in metrics and "dsgen_http_request_seconds_bucket" in metrics
    assert "dsgen_http_requests_in_flight" in metrics and "alpha" not in metrics  # routes, not data
    world.client.request("FOO1", "/api/health")
    world.client.request("FOO2", "/api/nowhere")
    after = world.client.get("/metrics").text
    assert "FOO" not in after and 'method="OTHER"' in after  # invented methods make no new series
