"""What the API tests share: the app's client and who is logged in (see tests/api/conftest.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from dsgen_core.registry.db import Registry

PASSWORD = "correct horse battery"


@dataclass
class World:
    client: TestClient
    registry: Registry
    tokens: dict[str, str]  # who -> access token
    keys: dict[str, str]  # scope -> API key of the editor

    def as_(self, who: str | None, **headers: str) -> dict[str, str]:
        if who is None:
            return headers
        cred = self.keys[who.removeprefix("key:")] if who.startswith("key:") else self.tokens[who]
        return {"Authorization": f"Bearer {cred}", **headers}

    def get(self, path: str, who: str | None, **kw: Any) -> Any:
        return self.client.get(path, headers=self.as_(who), **kw)

    @contextmanager
    def served(self) -> Iterator[str]:
        """The same app behind a real uvicorn server on a free port (concurrency the TestClient cannot
        give): its base URL, for as long as the block runs."""
        import uvicorn

        server = uvicorn.Server(uvicorn.Config(self.client.app, host="127.0.0.1", port=0, log_level="warning",
                                               lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.05)
            yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(timeout=20)
