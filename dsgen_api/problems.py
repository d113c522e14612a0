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
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dsgen_core.accounts.access import Forbidden, Unauthenticated
from dsgen_core.accounts.plans import LimitExceeded
from dsgen_core.accounts.ratelimit import RateLimited
from dsgen_core.errors import DsgenError, NotFound, ServiceUnavailable, UploadTooLarge
from dsgen_core.query.parser import QueryError

log = logging.getLogger("dsgen.api")
MEDIA_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="dsgen"'} if status == 401 else None
    return JSONResponse({"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
                        status_code=status, media_type=MEDIA_TYPE, headers=headers)


# A user-facing error's class -> (status, title); Starlette picks the most specific along the MRO.
STATUS: dict[type[DsgenError], tuple[int, str]] = {
    Unauthenticated: (401, "Unauthorized"),
    Forbidden: (403, "Forbidden"),
    LimitExceeded: (403, "Plan limit reached"),
    RateLimited: (429, "Too Many Requests"),
    NotFound: (404, "Not Found"),
    UploadTooLarge: (413, "Content Too Large"),
    ServiceUnavailable: (503, "Service Unavailable"),
    DsgenError: (400, "Bad Request"),
}


def install(app: FastAPI) -> None:
    for cls, (status, title) in STATUS.items():
        def handler(_r: Request, exc: Exception, status: int = status, title: str = title) -> JSONResponse:
            response = problem(status, title, str(exc))
            response.headers.update(getattr(exc, "headers", None) or {})  # a 429's Retry-After
            return response

        app.add_exception_handler(cls, handler)

    @app.exception_handler(QueryError)
    async def _query(_r: Request, exc: QueryError) -> JSONResponse:
        return problem(400, "Bad query", exc.message, column=exc.column, query=exc.query)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return problem(422, "Unprocessable Content", f"{where}: {first['msg']}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail))

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(_r: Request, exc: Exception) -> JSONResponse:
        # An id or number past what the database holds (2**70): the caller's mistake, not the server's.
        return problem(400, "Bad Request", "a number in the request is out of range")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal Server Error", "the server failed; its log has the details")
