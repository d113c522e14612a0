"""Request ids, structured JSON logs and Prometheus metrics for every request.

Each request gets an id (the caller's ``X-Request-ID`` when it sends a sane one, else a new one),
echoed in the response and in one JSON log line (method, route, status, ms, who). ``/metrics``
serves request counts by route and status, a latency histogram by route, and requests in flight.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger("dsgen.api.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Labels come from a closed set: a client's invented method or URL must not make new series.
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname, "logger": record.name,
               "message": record.getMessage(), **getattr(record, "fields", {})}
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dsgen_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("dsgen_http_request_seconds", "HTTP request latency", ["method", "route"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10),
                                 registry=self.registry)
        self.in_flight = Gauge("dsgen_http_requests_in_flight", "Requests being served (the queue depth)",
                               registry=self.registry)
        self.runs_in_flight = Gauge("dsgen_runs_in_flight", "Runs started from the API whose process is still running",
                                    registry=self.registry)


def install(app: FastAPI) -> Metrics:
    metrics = Metrics()

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        sent = request.headers.get("x-request-id", "")
        rid = sent if _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        request.state.request_id = rid
        t0 = time.perf_counter()
        metrics.in_flight.inc()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
        finally:
            metrics.in_flight.dec()
            route = request.scope.get("route")
            # The route's template, not the URL: /api/projects/{project}/assets, whatever the project.
            name = getattr(route, "path", None) or "unmatched"
            seconds = time.perf_counter() - t0
            method = request.method if request.method in _METHODS else "OTHER"
            metrics.requests.labels(method, name, str(status)).inc()
            metrics.latency.labels(method, name).observe(seconds)
            who = getattr(getattr(request.state, "principal", None), "actor", None)
            log.info("request", extra={"fields": {"request_id": rid, "method": request.method, "route": name,
                                                  "status": status, "ms": round(seconds * 1000, 2), "who": who}})
        response.headers["X-Request-ID"] = rid
        return response

    @app.get("/metrics", include_in_schema=True, openapi_extra={"x-dsgen-access": "public"}, tags=["health"])
    def prometheus() -> Response:
        """Prometheus metrics (scrape it from inside your network; it names routes, not data)."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
