"""Errors as RFC 9457 problem details (``application/problem+json``), one place for every route.

A user's mistake is a 4xx with a ``detail`` that says what to fix; a query error carries the
``column`` it was found at, as the CLI draws its caret. Nothing internal (a traceback, SQL) leaks.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dsgen_core.accounts.access import Forbidden, Unauthenticated
from dsgen_core.errors import DsgenError, NotFound, ServiceUnavailable
from dsgen_core.query.parser import QueryError

log = logging.getLogger("dsgen.api")
MEDIA_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="dsgen"'} if status == 401 else None
    return JSONResponse({"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
                        status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(_r: Request, exc: Unauthenticated) -> JSONResponse:
        return problem(401, "Unauthorized", str(exc))

    @app.exception_handler(Forbidden)
    async def _forbidden(_r: Request, exc: Forbidden) -> JSONResponse:
        return problem(403, "Forbidden", str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(_r: Request, exc: NotFound) -> JSONResponse:
        return problem(404, "Not Found", str(exc))

    @app.exception_handler(QueryError)
    async def _query(_r: Request, exc: QueryError) -> JSONResponse:
        return problem(400, "Bad query", exc.message, column=exc.column, query=exc.query)

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(_r: Request, exc: ServiceUnavailable) -> JSONResponse:
        return problem(503, "Service Unavailable", str(exc))

    @app.exception_handler(DsgenError)
    async def _user_error(_r: Request, exc: DsgenError) -> JSONResponse:
        return problem(400, "Bad Request", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return problem(422, "Unprocessable Content", f"{where}: {first['msg']}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal Server Error", "the server failed; its log has the details")
