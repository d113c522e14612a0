"""COCO import speed, side by side with its references, measured in the same run.

    python benchmarks/bench_import.py                      # small + large, SQLite and PostgreSQL
    python benchmarks/bench_import.py --before 26cb58f     # ... and the same measures on that commit
    python benchmarks/bench_import.py --only small --no-postgres

small: 5,000 images on disk (sha256 + header check) and 35,000 boxes, as a user times it: the whole
``dsgen import coco`` process (interpreter start, imports, registry, import); reference FiftyOne
≈20 s on this machine (target ≤ 2 s). large: 100,000 referenced images and 1,000,000 boxes, the
import call alone; reference measured in this run: ``orjson.loads`` of the file + bare sqlite3
inserts of the same rows (target ≤ 3× that). ``--before REF`` checks REF out into a git worktree
and runs every measure on it too, interleaved with this tree's, so "before/after" share the
machine's state. Each import runs in a child process so its peak memory is its own.
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
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

import datagen  # noqa: E402

FIFTYONE_SMALL_S = 20.0  # FiftyOne, 5,000 images / 35,000 boxes, this machine

# Runs in the child, against whichever tree is first on its PYTHONPATH. It speaks both the
# session/project convention and the older registry/project-name one, so a baseline commit from
# before the convention can be measured by the same script.
CHILD = r"""
import inspect, json, resource, sys, time
from dsgen_core.config import load_settings
from dsgen_core.registry.db import Registry
from dsgen_core.formats.coco import importer
home, url, ann, images = sys.argv[1:5]
reg = Registry(load_settings(home=home, database_url=url or None))
t = time.perf_counter()
if "session" in inspect.signature(importer.import_coco).parameters:
    from dsgen_core.registry.projects import ensure_project
    from dsgen_core.storage import open_storage
    storage = open_storage(reg.settings.storage_root)
    with reg.session(bulk=True) as s:
        r = importer.import_coco(s, ensure_project(s, "bench"), ann, images=images or None, storage=storage,
                                 sources_dir=importer.local_sources_dir(storage, reg.settings.home))
    n = r.summary()["annotations"]
else:
    r = importer.import_coco(reg, ann, images=images or None, project="bench")
    n = r.counts["annotations"]
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "annotations": n, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


class Tree:
    """A source tree to measure: this checkout, or a commit checked out beside it."""

    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path = name, path

    def env(self, home: Path) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.path), "DSGEN_HOME": str(home)}


def run_import(tree: Tree, ann: Path, images: Path | None, url: str = "") -> dict:
    home = Path(tempfile.mkdtemp(prefix="dsgen-bench-"))
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(home), url, str(ann), str(images or "")],
                             check=True, capture_output=True, text=True, env=tree.env(home), cwd=home)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_cli_import(tree: Tree, ann: Path, images: Path) -> float:
    """Wall time of the whole ``dsgen import coco`` process, as a user times it."""
    home = Path(tempfile.mkdtemp(prefix="dsgen-bench-"))
    try:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dsgen_core.cli", "import", "coco", str(ann), "--images", str(images),
                        "--project", "bench", "--json"], check=True, capture_output=True, env=tree.env(home), cwd=home)
        return time.perf_counter() - t
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


def pg_server() -> Any:
    from support import PostgresServer  # the tests' throwaway server

    return PostgresServer().start()


def checkout(ref: str) -> Tree:
    sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"dsgen-before-{sha}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True, capture_output=True)
    return Tree(f"before ({sha})", path)


def row(name: str, ours: str, ref: str, verdict: str) -> None:
    print(f"  {name:<48} {ours:>14}   {ref:>34}   {verdict}", flush=True)


def median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["small", "large"])
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--before", metavar="REF", help="also measure this commit (a git worktree), interleaved")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the small import (median reported)")
    ap.add_argument("--large-rounds", type=int, default=3, help="rounds of each large import (median reported)")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    trees = [Tree("dsgen", ROOT)] + ([checkout(args.before)] if args.before else [])
    results: dict[str, object] = {}
    print(f"{'':2}{'measure':<48} {'result':>14}   {'reference':>34}   verdict")
    if args.only in (None, "small"):
        root = OUT / "small"
        if not (root / "annotations").exists():
            datagen.generate_small(root, progress=False)
        ann, images = root / "annotations" / "instances_default.json", root / "images"
        times: dict[str, list[float]] = {t.name: [] for t in trees}
        for _ in range(args.rounds):
            for t in trees:
                times[t.name].append(run_cli_import(t, ann, images))
        for t in trees:
            s = median(times[t.name])
            row(f"small, whole process: {t.name}", f"{s:.2f} s", f"FiftyOne {FIFTYONE_SMALL_S:.1f} s",
                f"{FIFTYONE_SMALL_S / s:.1f}x faster (target <= 2 s, >= 10x)")
        results["small_process_s"] = times
    if args.only in (None, "large"):
        root = OUT / "large"
        if not (root / "annotations").exists():
            datagen.generate_large(root, progress=False)
        ann = root / "annotations" / "instances_default.json"
        t_parse, t_insert = baseline(ann)
        floor = t_parse + t_insert
        results["floor"] = {"parse_s": t_parse, "insert_s": t_insert}
        runs: dict[str, list[dict]] = {t.name: [] for t in trees}
        for _ in range(args.large_rounds):
            for t in trees:
                runs[t.name].append(run_import(t, ann, None))
        for t in trees:
            s = median([r["seconds"] for r in runs[t.name]])
            row(f"large, 1M boxes, SQLite: {t.name}", f"{s:.2f} s",
                f"orjson {t_parse:.2f} + sqlite3 {t_insert:.2f} = {floor:.2f} s",
                f"{s / floor:.2f}x the floor (target <= 3x)")
            row(f"large, peak memory: {t.name}", f"{max(r['peak_rss_mb'] for r in runs[t.name]):.0f} MB",
                "target 3,000 MB", "")
            results[f"large_sqlite {t.name}"] = runs[t.name]
        if not args.no_postgres:
            server = pg_server()
            pg: dict[str, list[float]] = {t.name: [] for t in trees}
            try:
                for _ in range(args.large_rounds):
                    for t in trees:
                        db = server.create_database()
                        pg[t.name].append(run_import(t, ann, None, server.url(db))["seconds"])
                        server.drop_database(db)
            finally:
                server.stop()
            for t in trees:
                s = median(pg[t.name])
                row(f"large, 1M boxes, PostgreSQL: {t.name}", f"{s:.2f} s", f"same floor {floor:.2f} s", f"{s / floor:.2f}x")
            results["large_postgresql"] = pg
    (OUT / "bench_import.json").write_text(json.dumps(results, indent=2))
    print(f"\nraw figures: {OUT / 'bench_import.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
