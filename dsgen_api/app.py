"""The FastAPI application: routers, problem+json errors, the registry and the signing key.

    app = create_app()                     # the environment's registry ($DSGEN_HOME, DSGEN_DATABASE_URL)
    uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from dsgen_api import limits, observe, problems, web
from dsgen_api.bodylimit import BodyLimit
from dsgen_api.routes import (
    auth,
    cvat,
    edits,
    health,
    infer,
    insights,
    media,
    models,
    projects,
    runs,
    similar,
    uploads,
    versions,
)
from dsgen_api.runs import RunLauncher
from dsgen_core.accounts.tokens import signing_key
from dsgen_core.registry.db import Registry


def cors(app: FastAPI) -> None:
    """Cross-origin calls only from ``DSGEN_CORS_ORIGINS`` (comma-separated origins; none by default: the
    web app is served from the API's own origin). Credentials are headers, never cookies, so a
    cross-site page cannot act as a logged-in user (no CSRF), and an origin not listed gets no CORS headers."""
    origins = [o.strip().rstrip("/") for o in os.environ.get("DSGEN_CORS_ORIGINS", "").split(",") if o.strip()]
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID", "Last-Event-ID"],
                           expose_headers=["X-Request-ID", "Retry-After", "ETag"], max_age=600)


def create_app(registry: Registry | None = None) -> FastAPI:
    reg = registry or Registry()
    app = FastAPI(title="dsgen", version="0.1.0", docs_url="/api/docs", openapi_url="/api/openapi.json",
                  redoc_url=None)
    app.state.registry = reg
    app.state.signing_key = signing_key(reg.settings.home)
    problems.install(app)
    app.state.metrics = observe.install(app)
    limits.install(app)
    app.state.runs = RunLauncher(reg)
    app.state.metrics.runs_in_flight.set_function(app.state.runs.running)
    app.add_middleware(BodyLimit)
    cors(app)
    for router in (health.router, auth.router, projects.router, edits.router, media.router, insights.router,
                   versions.router, models.router, similar.router, runs.router, uploads.router, cvat.router,
                   infer.router):
        app.include_router(router)
    web.install(app)  # last: it answers every path no route above took
    return app
