"""What the API tests share: the app's client and who is logged in (see tests/api/conftest.py)."""

from __future__ import annotations

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
