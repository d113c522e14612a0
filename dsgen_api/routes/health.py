"""``/api/health``: is each service dsgen needs there (database, storage, Chroma, Dagster)?"""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from dsgen_api.deps import CommitFirst, registry, requires

router = APIRouter(tags=["health"], route_class=CommitFirst)


def _check(fn: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        detail = fn()
        return {"ok": True, "ms": round((time.perf_counter() - t0) * 1000, 1), **({"detail": detail} if detail else {})}
    except Exception as exc:  # noqa: BLE001 - a health check reports what failed, it does not fail
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}


@router.get("/api/health", **requires("public"))
def health(request: Request) -> JSONResponse:
    """200 when the database and storage answer (503 when not), each check's ok only: where they
    are and what failed is for administrators (``/api/health/details``)."""
    status, checks, optional = _checks(request)
    return JSONResponse({"status": "ok" if status == 200 else "failing",
                         "checks": {k: {"ok": v["ok"]} for k, v in checks.items()}, "not_configured": optional},
                        status_code=status)


@router.get("/api/health/details", **requires("site-admin"))
def health_details(request: Request) -> JSONResponse:
    """The checks with their targets (database URL, password masked; storage root) and errors.
    Chroma and Dagster are checked when configured (``DSGEN_CHROMA_URL``, ``DAGSTER_HOME``)."""
    status, checks, optional = _checks(request)
    return JSONResponse({"status": "ok" if status == 200 else "failing", "checks": checks,
                         "not_configured": optional}, status_code=status)


def _checks(request: Request) -> tuple[int, dict[str, Any], list[str]]:
    reg = registry(request)

    def database() -> str:
        with reg.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return reg.settings.database_shown

    def storage() -> str:
        from dsgen_core.storage import open_storage

        st = open_storage(reg.settings.storage_root)
        st.list("health-probe/")
        return reg.settings.storage_root

    checks = {"database": _check(database), "storage": _check(storage)}
    optional = []
    if os.environ.get("DSGEN_CHROMA_URL"):
        def chroma() -> str:
            import chromadb

            url = os.environ["DSGEN_CHROMA_URL"]
            host, _, port = url.split("://")[-1].partition(":")
            chromadb.HttpClient(host=host, port=int(port or 8000)).heartbeat()
            return url

        checks["chroma"] = _check(chroma)
    else:
        optional.append("chroma")
    if os.environ.get("DAGSTER_HOME"):
        def dagster() -> str:
            home = os.environ["DAGSTER_HOME"]
            if not os.path.isdir(home):
                raise FileNotFoundError(f"DAGSTER_HOME {home} is not a folder")
            return home

        checks["dagster"] = _check(dagster)
    else:
        optional.append("dagster")
    ok = all(c["ok"] for c in checks.values())
    return (200 if ok else 503), checks, optional
