"""The REST API under the issue's two workloads, against a real ``dsgen serve`` (uvicorn) on localhost.

    python benchmarks/bench_api.py                    # gallery at 1M annotations, then 50 clients for 60 s
    python benchmarks/bench_api.py --clients 50 --seconds 60 --pages 300

1. Gallery: project ``gallery`` of 100,000 images and ~1,000,000 objects in 80 classes (the
   bench_query.py data, SQLite, made once under benchmarks/out/api_bench and reused). A viewer pages
   through ``category:class_03 width>1000`` 100 images at a time as the web app does (keyset
   ``after``, ``shapes=true``: every object of the page in pixels), ``--pages`` requests in all,
   one after another. Reference beside it, measured in the same run: the same pages computed by
   the library in this process (``run_query`` + ``display_shapes``), and the issue's targets
   (p50 <= 50 ms, p99 <= 200 ms).
2. Load: ``--clients`` threads, each with its own keep-alive connection and login, for
   ``--seconds``, on project ``load`` (300 demo images with thumbnails, a random-weight yolov8n at
   160 px deployed as endpoint ``load-160``): 45 % gallery queries, 30 % thumbnails (signed URLs),
   15 % tagging one image with the client's own tag, 10 % inference. Afterwards every client's tag
   is counted in the registry and compared with the tag requests that were answered 200: a lost
   write shows as a difference. The run stops by itself after ``--seconds``. Rate limits are off
   for the server (DSGEN_RATE_LIMIT_*=0): the load is the point, not the plan.

The clients share the machine's 2 cores with the server; the load average is printed.
Writes benchmarks/out/bench_api.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_api_inference as infer_bench  # noqa: E402  (benchmarks is not a package)
import bench_query  # noqa: E402

OUT = HERE / "out"
WORK = OUT / "api_bench"
PASSWORD = "benchmark password"
EMAIL = "bench@example.com"
GALLERY_QUERY = "category:class_03 width>1000"
LOAD_QUERIES = ("", "category:circle", "category:square width>100", "tag:load-c1", "category:triangle")
TARGET_P50_MS, TARGET_P99_MS = 50.0, 200.0


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


def prepare(home: Path) -> None:
    """The registry, made once: the 1M-object project, the load project with thumbnails, a user, an endpoint."""
    os.environ["DSGEN_HOME"] = str(home)
    for k in ("DSGEN_DATABASE_URL", "DSGEN_STORAGE"):
        os.environ.pop(k, None)
    from sqlalchemy import select

    from dsgen_core.accounts.users import add_user
    from dsgen_core.demo.synth import generate_demo_dataset
    from dsgen_core.formats.coco.importer import import_coco, local_sources_dir
    from dsgen_core.inference.endpoints import deploy_endpoint
    from dsgen_core.ml.model_versions import ArtifactFile, create_model_version, ensure_model, register_artifacts
    from dsgen_core.ml.onnx_artifacts import ONNX_ROLE
    from dsgen_core.registry.db import Registry
    from dsgen_core.registry.projects import ensure_project
    from dsgen_core.registry.schema import User
    from dsgen_core.storage import open_storage
    from dsgen_core.thumbnails import make_thumbnails
    from dsgen_core.versions.lifecycle import create_version

    reg = Registry()
    storage = open_storage(reg.settings.storage_root)
    t = time.perf_counter()
    bench_query.fill(reg, "gallery", 100_000)
    print(f"gallery project ready ({time.perf_counter() - t:.0f} s)")
    with reg.session() as s:
        if s.scalar(select(User.id).where(User.email == EMAIL)) is None:
            add_user(s, EMAIL, "bench", password=PASSWORD, admin=True)
            demo = generate_demo_dataset(home / "demo", n_images=300, seed=5)
            p = ensure_project(s, "load", source="coco")
            import_coco(s, p, demo.annotations_path, images=demo.images_dir, storage=storage,
                        sources_dir=local_sources_dir(storage, reg.settings.home))
            make_thumbnails(s, p, storage=storage)
            mv = create_model_version(s, ensure_model(s, p, "yolo", "detect"), create_version(s, p, "v0"), "random-160",
                                      training_config={})
            mv.status = "succeeded"
            register_artifacts(s, mv, [ArtifactFile(infer_bench.onnx_model(160), f"models/load/{mv.human_id}.onnx",
                                                    ONNX_ROLE, "onnx")], storage)
            deploy_endpoint(s, p, "load-160", mv.human_id, storage=storage, cache_dir=home / "cache" / "endpoints")
    reg.dispose()


def login(http: Any) -> None:
    r = http.post("/api/auth/login", json={"email": EMAIL, "password": PASSWORD})
    r.raise_for_status()
    http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"


def gallery(port: int, pages: int) -> dict[str, Any]:
    import httpx
    from sqlalchemy import select

    from dsgen_core.query import run_query
    from dsgen_core.registry.db import Registry
    from dsgen_core.registry.display import display_shapes
    from dsgen_core.registry.projects import get_project
    from dsgen_core.registry.schema import Asset

    api_ms: list[float] = []
    afters: list[int | None] = []
    objects = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        login(http)
        total = http.get("/api/projects/gallery/assets", params={"q": GALLERY_QUERY, "limit": 1, "count": "true"}).json()["total"]
        after: int | None = None
        for i in range(pages + 5):
            params: dict[str, Any] = {"q": GALLERY_QUERY, "limit": 100, "shapes": "true"}
            if after is not None:
                params["after"] = after
            t = time.perf_counter()
            r = http.get("/api/projects/gallery/assets", params=params)
            ms = (time.perf_counter() - t) * 1000
            r.raise_for_status()
            page = r.json()
            if i >= 5:  # the first pages warm the server's caches
                api_ms.append(ms)
                afters.append(after)
                objects += sum(len(x["shapes"]) for x in page["items"])
            after = page["next_after"]
    reg = Registry()
    lib_ms: list[float] = []
    with reg.session() as s:
        project = get_project(s, "gallery")
        for after in afters:
            t = time.perf_counter()
            ids = run_query(s, project, GALLERY_QUERY, limit=101, after=after)[:100]
            dict(s.execute(select(Asset.id, Asset.file_name).where(Asset.id.in_(ids))).all())
            display_shapes(s, ids, masks=None)
            lib_ms.append((time.perf_counter() - t) * 1000)
    reg.dispose()
    return {"matching_images": total, "pages": len(api_ms), "objects_drawn_per_page": objects / max(len(api_ms), 1),
            "api_ms": {"p50": pct(api_ms, 50), "p99": pct(api_ms, 99), "mean": statistics.fmean(api_ms)},
            "library_ms": {"p50": pct(lib_ms, 50), "p99": pct(lib_ms, 99)}}


def load(port: int, clients: int, seconds: float) -> dict[str, Any]:
    import httpx
    from sqlalchemy import func, select

    from dsgen_core.registry.db import Registry
    from dsgen_core.registry.schema import AssetTag

    image = infer_bench.make_images(1)[0]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        login(http)
        items = http.get("/api/projects/load/assets", params={"limit": 500}).json()["items"]
    ids = [i["id"] for i in items]
    thumbs = [i["thumbnail_url"] for i in items]
    lat: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    tagged: dict[int, set[int]] = defaultdict(set)
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(c: int) -> None:
        rng = random.Random(c)
        mine: dict[str, list[float]] = defaultdict(list)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            login(http)
            while time.monotonic() < stop_at:
                x = rng.random()
                t = time.perf_counter()
                try:
                    if x < 0.45:
                        kind = "query"
                        r = http.get("/api/projects/load/assets",
                                     params={"q": rng.choice(LOAD_QUERIES), "limit": 100, "shapes": "true"})
                    elif x < 0.75:
                        kind = "thumbnail"
                        r = http.get(rng.choice(thumbs))
                    elif x < 0.90:
                        kind = "tag"
                        aid = rng.choice(ids)
                        r = http.post("/api/projects/load/tags", json={"ids": [aid], "tags": [f"load-c{c}"]})
                        if r.status_code == 200:
                            with lock:
                                tagged[c].add(aid)
                    else:
                        kind = "inference"
                        r = http.post("/api/infer/load-160", content=image, headers={"Content-Type": "image/jpeg"})
                    mine[kind].append((time.perf_counter() - t) * 1000)
                    if r.status_code not in (200, 304):
                        with lock:
                            errors.append(f"{kind} {r.status_code} {r.text[:120]}")
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
        with lock:
            for k, v in mine.items():
                lat[k].extend(v)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - t0
    reg = Registry()
    lost: dict[str, int] = {}
    with reg.session() as s:
        for c in range(clients):
            n = int(s.scalar(select(func.count()).select_from(AssetTag).where(AssetTag.tag == f"load-c{c}")) or 0)
            if n != len(tagged[c]):
                lost[f"load-c{c}"] = len(tagged[c]) - n
    reg.dispose()
    every = [x for v in lat.values() for x in v]
    return {"clients": clients, "seconds": round(wall, 1), "requests": len(every), "per_s": len(every) / wall,
            "errors": len(errors), "error_samples": errors[:5], "lost_writes": lost,
            "tags_checked": sum(len(v) for v in tagged.values()),
            "p50_ms": pct(every, 50), "p99_ms": pct(every, 99),
            "by_kind": {k: {"n": len(v), "p50_ms": pct(v, 50), "p99_ms": pct(v, 99)} for k, v in sorted(lat.items())}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--skip-load", action="store_true")
    args = ap.parse_args()
    home = WORK / "home"
    home.mkdir(parents=True, exist_ok=True)
    prepare(home)
    for k in ("DSGEN_RATE_LIMIT_PER_MINUTE", "DSGEN_RATE_LIMIT_KEY_PER_MINUTE", "DSGEN_RATE_LIMIT_ANON_PER_MINUTE"):
        os.environ[k] = "0"
    port = infer_bench.free_port()
    server = infer_bench.start_server(port, WORK / "serve.log")
    results: dict[str, Any] = {"load_average_before": os.getloadavg()[0]}
    try:
        g = results["gallery"] = gallery(port, args.pages)
        print(f"\nGallery page: {GALLERY_QUERY!r}, 100 images + their objects ({g['objects_drawn_per_page']:.0f} "
              f"per page), {g['pages']} pages in keyset order; {g['matching_images']:,} matching images of 100,000 "
              "(~1,000,000 objects)")
        print(f"  {'':<10} {'API (HTTP, uvicorn)':>20} {'library in-process':>20} {'target':>10}")
        for p, target in (("p50", TARGET_P50_MS), ("p99", TARGET_P99_MS)):
            api, lib = g["api_ms"][p], g["library_ms"][p]
            print(f"  {p:<10} {api:>17.1f} ms {lib:>17.1f} ms {target:>7.0f} ms  {'met' if api <= target else 'MISSED'}")
        if not args.skip_load:
            ld = results["load"] = load(port, args.clients, args.seconds)
            print(f"\nLoad: {ld['clients']} clients for {ld['seconds']} s: {ld['requests']:,} requests "
                  f"({ld['per_s']:.0f}/s), errors {ld['errors']}, lost writes {sum(ld['lost_writes'].values())} "
                  f"(of {ld['tags_checked']} tag writes checked), p50 {ld['p50_ms']:.0f} ms, p99 {ld['p99_ms']:.0f} ms")
            for k, v in ld["by_kind"].items():
                print(f"  {k:<10} n={v['n']:>6}  p50 {v['p50_ms']:>7.1f} ms  p99 {v['p99_ms']:>7.1f} ms")
            for e in ld["error_samples"]:
                print(f"  error: {e}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    results["load_average_after"] = os.getloadavg()[0]
    print(f"\nload average before/after: {results['load_average_before']:.2f} / {results['load_average_after']:.2f}")
    (OUT / "bench_api.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
