"""Inference endpoint throughput through the HTTP API beside ONNX Runtime called directly, in one run.

    python benchmarks/bench_api_inference.py                      # imgsz 160 and 640, 4 clients
    python benchmarks/bench_api_inference.py --imgsz 640 --clients 2 --rounds 3

Model: yolov8n built from ``yolov8n.yaml`` with random weights (seed 0, 80 classes), exported with
``dsgen_core.inference.export_onnx`` (batch 1, square input), as in bench_inference.py. Images:
``--images`` synthetic 640x480 JPEGs (q90) of coloured shapes on a gradient, as a client sends them.

- endpoint: ``dsgen serve`` (uvicorn, one process, its JSON access log on) on 127.0.0.1 with a
  SQLite registry; the model version's ONNX artifact deployed as an endpoint; ``--clients``
  threads, each with its own keep-alive HTTP connection and a login's access token (a user on the
  enterprise plan: rate limits are counted, never reached), POST the JPEG
  bytes to ``/api/infer/<name>`` round-robin. The clients run on the same 2 cores as the server,
  so their own HTTP work is part of the cost.
- ``--redis``: the server gets ``DSGEN_REDIS_URL`` of a throwaway ``redis-server``, so rate
  counters and token revocations are looked up there instead of in the database.
- GET /api/me: the same clients on a route without a model, for the cost every authenticated
  request pays here before any model runs.
- direct: in this process, the same JPEG bytes decoded (``cv2.imdecode``) and run by
  ``OnnxDetector.predict`` on the same ONNX file (ONNX Runtime with the endpoint's settings),
  one thread, and ``--clients`` threads sharing the detector as the server does; the better one is
  the reference.

Each figure is the best of ``--rounds`` interleaved rounds (other jobs share this machine; the
load average is printed). Target: endpoint >= 0.8x direct. Writes benchmarks/out/bench_api_inference.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
WORK = OUT / "api_inference"
TARGET = 0.8
PASSWORD = "benchmark password"

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(OUT / "inference" / "yolo-config"))


def make_images(n: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        y, x = np.mgrid[0:480, 0:640]
        image = np.dstack([(x * 255 // 640), (y * 255 // 480), np.full_like(x, 90)]).astype(np.uint8)
        for _ in range(int(rng.integers(2, 6))):
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            cx, cy, r = int(rng.integers(40, 600)), int(rng.integers(40, 440)), int(rng.integers(15, 90))
            if rng.random() < 0.5:
                cv2.circle(image, (cx, cy), r, colour, -1)
            else:
                cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r // 2), colour, -1)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append(data.tobytes())
    return out


def onnx_model(imgsz: int) -> Path:
    import torch
    from ultralytics import YOLO

    from dsgen_core.inference import export_onnx

    weights = OUT / "inference" / "yolov8n_random.pt"
    weights.parent.mkdir(parents=True, exist_ok=True)
    if not weights.exists():
        torch.manual_seed(0)
        YOLO("yolov8n.yaml").save(weights)
    target = WORK / f"yolov8n_{imgsz}.onnx"
    if not target.exists():
        export_onnx(weights, target, imgsz=imgsz)
    return target


def setup_registry(home: Path, models: dict[int, Path]) -> None:
    """Project ``bench``, an admin, and one model version per size, each deployed as ``yolo-<size>``."""
    os.environ["DSGEN_HOME"] = str(home)
    os.environ.pop("DSGEN_DATABASE_URL", None)
    os.environ.pop("DSGEN_STORAGE", None)
    from dsgen_core.accounts.users import add_user
    from dsgen_core.inference.endpoints import deploy_endpoint
    from dsgen_core.ml.model_versions import ArtifactFile, create_model_version, ensure_model, register_artifacts
    from dsgen_core.ml.onnx_artifacts import ONNX_ROLE
    from dsgen_core.registry.db import Registry
    from dsgen_core.registry.projects import ensure_project
    from dsgen_core.storage import open_storage
    from dsgen_core.versions.lifecycle import create_version

    reg = Registry()
    storage = open_storage(reg.settings.storage_root)
    with reg.session() as s:
        p = ensure_project(s, "bench")
        # The enterprise plan: 12,000 requests a minute, above what 2 cores serve (free: 600 would refuse the load).
        add_user(s, "bench@example.com", "bench", password=PASSWORD, admin=True).plan = "enterprise"
        version = create_version(s, p, "v1")
        for imgsz, path in models.items():
            mv = create_model_version(s, ensure_model(s, p, "yolo", "detect"), version, f"random-{imgsz}",
                                      training_config={})
            mv.status = "succeeded"
            register_artifacts(s, mv, [ArtifactFile(path, f"models/bench/{mv.human_id}.onnx", ONNX_ROLE, "onnx")],
                               storage)
            deploy_endpoint(s, p, f"yolo-{imgsz}", mv.human_id, storage=storage, cache_dir=home / "cache" / "endpoints")
    reg.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    """A throwaway redis-server on a free port, nothing persisted (``--redis``)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("--redis needs redis-server (scripts/setup.sh installs it)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("redis-server did not start")


def start_server(port: int, log: Path) -> subprocess.Popen[bytes]:
    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "dsgen_core.cli.main", "serve", "--port", str(port)], cwd=REPO,
                            env=dict(os.environ), stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"dsgen serve exited: see {log}")
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit("dsgen serve did not answer within 120 s")


def endpoint_run(port: int, name: str, images: list[bytes], clients: int, per_client: int) -> Callable[[], int]:
    import httpx

    token = httpx.post(f"http://127.0.0.1:{port}/api/auth/login",
                       json={"email": "bench@example.com", "password": PASSWORD}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}
    sessions = [httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120) for _ in range(clients)]
    pool = ThreadPoolExecutor(clients)

    def client(i: int) -> int:
        http = sessions[i]
        for k in range(per_client):
            r = http.post(f"/api/infer/{name}", content=images[(i * per_client + k) % len(images)])
            if r.status_code != 200:
                raise SystemExit(f"endpoint answered {r.status_code}: {r.text}")
        return per_client

    return lambda: sum(pool.map(client, range(clients)))


def floor_run(port: int, clients: int, per_client: int) -> Callable[[], int]:
    """``GET /api/me`` by the same clients: what any authenticated request costs here (credentials
    checked, rate limits counted, usage tallied, the access log written), with no model behind it."""
    import httpx

    token = httpx.post(f"http://127.0.0.1:{port}/api/auth/login",
                       json={"email": "bench@example.com", "password": PASSWORD}).json()["access_token"]
    sessions = [httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                             timeout=120) for _ in range(clients)]
    pool = ThreadPoolExecutor(clients)

    def client(i: int) -> int:
        for _ in range(per_client):
            if sessions[i].get("/api/me").status_code != 200:
                raise SystemExit("GET /api/me failed")
        return per_client

    return lambda: sum(pool.map(client, range(clients)))


def direct_run(onnx: Path, images: list[bytes], threads: int, per_thread: int) -> Callable[[], int]:
    from dsgen_core.inference.detector import OnnxDetector
    from dsgen_core.inference.endpoints import decode_image, serving_threads

    det = OnnxDetector(onnx, threads=serving_threads())
    pool = ThreadPoolExecutor(threads)

    def worker(i: int) -> int:
        for k in range(per_thread):
            det.predict([decode_image(images[(i * per_thread + k) % len(images)])])
        return per_thread

    return lambda: sum(pool.map(worker, range(threads)))


def best_rates(runs: dict[str, Callable[[], int]], rounds: int) -> dict[str, float]:
    best = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for name, fn in runs.items():
            t = time.perf_counter()
            n = fn()
            best[name] = max(best[name], n / (time.perf_counter() - t))
    return best


def row(name: str, ours: str, ref: str, verdict: str) -> None:
    print(f"  {name:<36} {ours:>14}   {ref:>44}   {verdict}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--imgsz", type=int, nargs="+", default=[160, 640])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0, help="rough length of one round")
    ap.add_argument("--redis", action="store_true",
                    help="serve with DSGEN_REDIS_URL (a throwaway redis-server): rate counters and revocations there")
    args = ap.parse_args()
    redis = None
    if args.redis:
        redis, os.environ["DSGEN_REDIS_URL"] = start_redis()
    home = WORK / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    images = make_images(args.images)
    models = {s: onnx_model(s) for s in args.imgsz}
    setup_registry(home, models)
    port = free_port()
    server = start_server(port, WORK / "serve.log")
    from dsgen_core.inference.endpoints import serving_threads

    load = os.getloadavg()[0]
    print(f"{'Redis' if redis else 'no Redis (the database counts)'}; "
          f"yolov8n, random weights; {args.images} JPEGs 640x480 (mean {np.mean([len(b) for b in images]) / 1024:.0f} KiB); "
          f"{args.clients} clients; ONNX Runtime {serving_threads()} intra-op threads per run; best of {args.rounds} "
          f"rounds; onnxruntime {__import__('onnxruntime').__version__}; load average {load:.2f}\n")
    row("measure", "endpoint", "direct (decode + OnnxDetector.predict)", "result")
    results: dict[str, object] = {"clients": args.clients, "images": args.images, "rounds": args.rounds,
                                  "redis": bool(redis),
                                  "load_average_before": load}
    try:
        for imgsz, onnx in models.items():
            probe = direct_run(onnx, images, 1, 4)
            probe()
            t = time.perf_counter()
            probe()
            per = max(2, int(args.seconds / max((time.perf_counter() - t) / 4, 1e-3) / args.clients))
            runs = {"endpoint": endpoint_run(port, f"yolo-{imgsz}", images, args.clients, per),
                    "direct_1_thread": direct_run(onnx, images, 1, per * args.clients),
                    f"direct_{args.clients}_threads": direct_run(onnx, images, args.clients, per)}
            for fn in runs.values():
                fn()  # warm-up: the server loads its model on the first request
            rates = best_rates(runs, args.rounds)
            direct = max(v for k, v in rates.items() if k.startswith("direct"))
            ratio = rates["endpoint"] / direct
            row(f"imgsz {imgsz}: images/s", f"{rates['endpoint']:.1f} img/s",
                f"1 thread {rates['direct_1_thread']:.1f}, {args.clients} threads "
                f"{rates[f'direct_{args.clients}_threads']:.1f} img/s",
                f"{ratio:.2f}x (target >= {TARGET}x)")
            results[f"imgsz_{imgsz}"] = {"images_per_s": rates, "endpoint_over_direct": ratio, "target": TARGET,
                                         "met": ratio >= TARGET}
        floor = best_rates({"me": floor_run(port, args.clients, 50)}, args.rounds)["me"]
        row("GET /api/me (no model): requests/s", f"{floor:.1f} req/s", "", "the ceiling of any authenticated route")
        results["get_me_requests_per_s"] = floor
    finally:
        server.terminate()
        server.wait(timeout=30)
        if redis is not None:
            redis.terminate()
    results["load_average_after"] = os.getloadavg()[0]
    print(f"\nload average after: {results['load_average_after']:.2f}")
    (OUT / "bench_api_inference.json").write_text(json.dumps(results, indent=2))
    print(f"raw figures: {OUT / 'bench_api_inference.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
