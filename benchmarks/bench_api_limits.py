"""What rate limiting and usage counting cost an API request: p50/p95 of a gallery page
(``GET /api/projects/demo/assets?limit=50``) and of ``GET /api/me``, by login token and by API key,
with the limits off, counted in the database, and counted in Redis.

    python benchmarks/bench_api_limits.py [--requests 300] [--backend sqlite|postgresql|both]

Runs in-process (FastAPI's TestClient), so the figures are the server's work without a network.
Starts its own PostgreSQL and redis-server (the tests' helpers). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

PASSWORD = "correct horse battery"


def _setup(url: str, home: Path) -> tuple[Any, dict[str, str]]:
    from argon2 import PasswordHasher

    import dsgen_core.accounts.passwords as passwords
    from dsgen_core.accounts.access import grant
    from dsgen_core.accounts.keys import create_key
    from dsgen_core.accounts.users import add_user
    from dsgen_core.config import load_settings
    from dsgen_core.demo.synth import generate_demo_dataset
    from dsgen_core.registry.db import Registry
    from dsgen_core.registry.projects import get_project
    from support import import_file

    passwords._HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    reg = Registry(load_settings(home=home, database_url=url))
    demo = generate_demo_dataset(home / "demo-src", n_images=60, seed=1).root
    import_file(reg, demo / "annotations" / "instances_default.json", images=demo / "images", project="demo")
    with reg.session() as s:
        user = add_user(s, "bench@example.com", "bench", password=PASSWORD)
        grant(s, get_project(s, "demo"), user, "viewer")
        key = create_key(s, user, "bench", scopes=["read"])[1]
    return reg, {"key": key}


def run(backend: str, n: int, redis_url: str, pg: Any) -> None:
    """The modes take turns, 20 requests at a time, so that a busy machine weighs on each alike."""
    from fastapi.testclient import TestClient

    from dsgen_api.app import create_app

    home = Path(tempfile.mkdtemp(prefix="bench-limits-"))
    url = f"sqlite:///{home / 'registry.db'}" if backend == "sqlite" else pg.url(pg.create_database())
    reg, creds = _setup(url, home)
    high = {"DSGEN_RATE_LIMIT_PER_MINUTE": "1000000", "DSGEN_RATE_LIMIT_KEY_PER_MINUTE": "1000000"}
    modes = {"off": {"DSGEN_RATE_LIMIT_PER_MINUTE": "0", "DSGEN_RATE_LIMIT_KEY_PER_MINUTE": "0"},
             "database": high, "redis": {**high, "DSGEN_REDIS_URL": redis_url}}
    samples: dict[tuple[str, str, str], list[float]] = {}
    os.environ["DSGEN_REDIS_URL"] = redis_url  # the app copies revocations in at start; the modes switch per batch
    with TestClient(create_app(reg)) as client:
        token = client.post("/api/auth/login", json={"email": "bench@example.com", "password": PASSWORD}).json()
        who = {"token": {"Authorization": f"Bearer {token['access_token']}"},
               "key": {"Authorization": f"Bearer {creds['key']}"}}
        paths = ("/api/projects/demo/assets?limit=50", "/api/me")
        for rnd in range(n // 20 + 1):
            for mode, env in modes.items():
                os.environ.pop("DSGEN_REDIS_URL", None)
                os.environ.update(env)
                for path in paths:
                    for w, headers in who.items():
                        for _ in range(20):
                            t0 = time.perf_counter()
                            r = client.get(path, headers=headers)
                            if rnd:  # the first round warms up
                                samples.setdefault((mode, w, path), []).append((time.perf_counter() - t0) * 1000)
                            assert r.status_code == 200, r.text
    for (mode, w, path), ms in samples.items():
        ms.sort()
        print(f"{backend:10} {mode:8} {w:5} {path:38} p50 {statistics.median(ms):6.2f} ms  "
              f"p95 {ms[int(len(ms) * 0.95) - 1]:6.2f} ms", flush=True)
    reg.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = ap.parse_args()
    from redis_server import RedisServer
    from support import PostgresServer

    redis = RedisServer().start()
    pg = PostgresServer().start() if args.backend != "sqlite" else None
    try:
        for backend in (["sqlite", "postgresql"] if args.backend == "both" else [args.backend]):
            run(backend, args.requests, redis.url, pg)
    finally:
        redis.stop()
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
