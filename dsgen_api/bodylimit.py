"""A cap on request bodies (``DSGEN_MAX_BODY_BYTES``, 10 MiB), so a JSON body cannot fill the server's
memory: a route reads its whole JSON body before validating it. Uploads and inference stream their
bodies under limits of their own and are left alone.

A body declared too large is refused before it is read; one that grows past the cap while arriving
(chunked, no Content-Length) is refused with the same 413 before the route sees any of it.
"""

from __future__ import annotations

import os
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dsgen_api.problems import problem

ENV, DEFAULT = "DSGEN_MAX_BODY_BYTES", 10 << 20
EXEMPT = re.compile(r"^/api/(projects/[^/]+/uploads|infer/[^/]+)$")


class BodyLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or EXEMPT.match(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        limit = int(os.environ.get(ENV) or DEFAULT)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        # Read the body first (routes read it whole anyway), so one too large is refused before the app
        # sees any of it, declared or not.
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await self._refuse(scope, receive, send, limit)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response: Any = problem(413, "Content Too Large", f"the request body is over {limit} bytes ({ENV})")
        await response(scope, receive, send)
