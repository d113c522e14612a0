"""The built web app (``web/dist``) from the API's own process: one origin, so no CORS and no proxy.

Every path outside ``/api`` is the app's: a file of the build if there is one (hashed ``assets/``
are immutable, so they are cached for a year), else ``index.html``, which lets the browser's
client-side routes (``/p/demo/gallery``) survive a reload. An unknown ``/api`` path stays a
problem+json 404. Without a build (``scripts/setup.sh`` not run, or run without npm) the API still
serves and ``/`` says how to get the app.

The route is registered last, after every router, because it matches any path.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

from dsgen_core.errors import NotFound

IMMUTABLE = "public, max-age=31536000, immutable"
# index.html names the current hashed assets: always revalidated, so a rebuild is seen at once.
REVALIDATE = "no-cache"

MISSING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dsgen</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>dsgen</h1>
<p>The API is running (<a href="/api/docs">/api/docs</a>), but the web app is not built.</p>
<p>Run <code>bash scripts/setup.sh</code> (it runs <code>npm ci &amp;&amp; npm run build</code> in
<code>web/</code>), then reload this page.</p>
</body></html>
"""


def default_dist() -> Path:
    """``$DSGEN_WEB_DIST``, else ``web/dist`` of the checkout this package runs from."""
    env = os.environ.get("DSGEN_WEB_DIST")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "web" / "dist"


def install(app: FastAPI, dist: Path | None = None) -> None:
    root = (dist or default_dist()).resolve()

    # Public, declared as requires("public") declares it, but without its per-address rate limit:
    # the build's files cost nothing to serve and every page load takes three of them, so counting
    # them would spend a visitor's login budget (60 a minute) on reloads.
    @app.get("/{path:path}", openapi_extra={"x-dsgen-access": "public"}, tags=["web app"], response_class=HTMLResponse,
             summary="The web app: a file of its build, else index.html (client-side routes)")
    def web_app(path: str) -> Response:
        if path == "api" or path.startswith("api/"):
            raise NotFound(f"no API route /{path}")
        index = root / "index.html"
        if not index.is_file():
            return HTMLResponse(MISSING, headers={"Cache-Control": REVALIDATE})
        if path:
            # resolve() follows "..": whatever the path says, only files inside the build are served
            target = (root / path).resolve()
            if target.is_relative_to(root) and target.is_file() and target != index:
                hashed = target.parent == root / "assets"
                return FileResponse(target, headers={"Cache-Control": IMMUTABLE if hashed else REVALIDATE})
            if path.startswith("assets/"):  # an old build's asset: a 404, not HTML parsed as a script
                raise NotFound(f"no file /{path} in the web app's build")
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": REVALIDATE})
