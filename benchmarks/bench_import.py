"""COCO import speed, side by side with its references.

    python benchmarks/bench_import.py            # small + large on SQLite, large on PostgreSQL
    python benchmarks/bench_import.py --only small

small: 5,000 images on disk (sha256 + header check) and 35,000 boxes; reference FiftyOne ≈20 s.
large: 100,000 referenced images and 1,000,000 boxes; reference measured in this run:
``orjson.loads`` of the file + bare sqlite3 inserts of the same rows (target ≤ 3× that, ≤ 12 s).
Each import runs in a child process so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

import datagen  # noqa: E402

FIFTYONE_SMALL_S = 20.0  # FiftyOne, 5,000 images / 35,000 boxes, this machine

CHILD = r"""
import json, resource, sys, time
from dsgen_core.config import load_settings
from dsgen_core.registry.db import Registry
from dsgen_core.formats.coco.importer import import_coco
home, url, ann, images = sys.argv[1:5]
reg = Registry(load_settings(home=home, database_url=url or None))
t = time.perf_counter()
r = import_file(reg, ann, images=images or None, project="bench")
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "counts": r.counts, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_import(ann: Path, images: Path | None, url: str = "") -> dict:
    home = Path(tempfile.mkdtemp(prefix="dsgen-bench-"))
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(home), url, str(ann), str(images or "")],
                             check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(home, ignore_errors=True)


def baseline(ann: Path) -> tuple[float, float]:
    """orjson.loads of the file, and bare sqlite3 inserts of the same annotation rows."""
    t = time.perf_counter()
    doc = orjson.loads(ann.read_bytes())
    t_parse = time.perf_counter() - t
    rows = [(a["id"], a["image_id"], a["category_id"], *a["bbox"], a["area"], a["iscrowd"], orjson.dumps(a["attributes"]).decode())
            for a in doc["annotations"]]
    del doc
    d = tempfile.mkdtemp(prefix="dsgen-bench-")
    try:
        con = sqlite3.connect(os.path.join(d, "b.db"))
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE annotations (id INTEGER PRIMARY KEY, image_id INT, category_id INT, x REAL, y REAL, "
                    "w REAL, h REAL, area REAL, iscrowd INT, attributes TEXT)")
        t = time.perf_counter()
        con.executemany("INSERT INTO annotations VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        con.commit()
        t_insert = time.perf_counter() - t
        con.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return t_parse, t_insert


def pg_url() -> tuple[object, str]:
    from support import PostgresServer  # the tests' throwaway server

    server = PostgresServer().start()
    return server, server.url(server.create_database())


def row(name: str, ours: str, ref: str, verdict: str) -> None:
    print(f"  {name:<46} {ours:>16}   {ref:>30}   {verdict}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["small", "large"])
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    results: dict[str, object] = {}
    print(f"{'':2}{'measure':<46} {'dsgen':>16}   {'reference':>30}   result")
    if args.only in (None, "small"):
        root = OUT / "small"
        if not (root / "annotations").exists():
            datagen.generate_small(root, progress=False)
        r = run_import(root / "annotations" / "instances_default.json", root / "images")
        n = r["counts"]["images"]
        row("small: 5,000 images + 35,000 boxes (SQLite)", f"{r['seconds']:.2f} s", f"FiftyOne {FIFTYONE_SMALL_S:.1f} s",
            f"{FIFTYONE_SMALL_S / r['seconds']:.1f}x faster, {n / r['seconds']:.0f} img/s (target <= 2 s, >= 10x)")
        results["small"] = r
    if args.only in (None, "large"):
        root = OUT / "large"
        if not (root / "annotations").exists():
            datagen.generate_large(root, progress=False)
        ann = root / "annotations" / "instances_default.json"
        t_parse, t_insert = baseline(ann)
        ref = t_parse + t_insert
        r = run_import(ann, None)
        row("large: 1,000,000 boxes (SQLite)", f"{r['seconds']:.2f} s",
            f"orjson {t_parse:.2f} + sqlite3 {t_insert:.2f} = {ref:.2f} s",
            f"{r['seconds'] / ref:.2f}x the baseline (target <= 3x, <= 12 s)")
        row("large: peak memory (SQLite)", f"{r['peak_rss_mb']:.0f} MB", "target 3,000 MB", "")
        results["large_sqlite"] = {**r, "baseline_parse_s": t_parse, "baseline_insert_s": t_insert}
        if not args.no_postgres:
            server, url = pg_url()
            try:
                r = run_import(ann, None, url)
            finally:
                server.stop()
            row("large: 1,000,000 boxes (PostgreSQL)", f"{r['seconds']:.2f} s", f"same baseline {ref:.2f} s",
                f"{r['seconds'] / ref:.2f}x")
            row("large: peak memory (PostgreSQL)", f"{r['peak_rss_mb']:.0f} MB", "target 3,000 MB", "")
            results["large_postgresql"] = r
    (OUT / "bench_import.json").write_text(json.dumps(results, indent=2))
    print(f"\nraw figures: {OUT / 'bench_import.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
