"""Datamaker import speed (issue 12), beside its reference measured in the same run.

    python benchmarks/bench_datamaker.py [--assets 10000] [--per-asset 10]

Generates annotatorData files as the platform writes them (one file per asset, bounding boxes
and polygons with flattened Korean classifications), then:

- **dsgen**: ``import_datamaker`` of the folder into a fresh SQLite registry (no images: sizes
  from ``extra``), with a dm-schema validating every classification;
- **reference**: ``orjson.loads`` of every file plus bare ``sqlite3`` inserts of the same
  annotation rows (id, asset, class, box, attributes as JSON), in one transaction.

Target: dsgen <= 3x the reference, as the COCO importer's.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import jsonschema  # noqa: F401  (loaded before the clock starts, as the reference's modules are)
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dsgen_core.formats.datamaker.importer import import_datamaker  # noqa: E402
from dsgen_core.registry.db import Registry  # noqa: E402
from dsgen_core.registry.projects import ensure_project  # noqa: E402
from dsgen_core.storage import open_storage  # noqa: E402

TARGET = 3.0
CLASSES = ["자동차", "사람", "자전거", "신호등"]
SCHEMA = {"type": "object", "required": ["class"], "properties": {"class": {"enum": CLASSES},
                                                                  "색상": {"enum": ["빨강", "파랑", "흰색"]}}}


def make(root: Path, assets: int, per: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    n = 0
    for i in range(assets):
        anns, datas = [], []
        for k in range(per):
            aid = f"{i:05d}{k:05d}"
            tool = "bounding_box" if k % 4 else "polygon"
            anns.append({"id": aid, "tool": tool, "isLocked": False, "isVisible": True, "isValid": True,
                         "classification": {"class": rng.choice(CLASSES), "색상": rng.choice(["빨강", "파랑", "흰색"])},
                         "label": ["x"]})
            x, y = rng.uniform(0, 600), rng.uniform(0, 400)
            if tool == "bounding_box":
                datas.append({"id": aid, "coordinate": {"x": x, "y": y, "width": 30.5, "height": 20.25}})
            else:
                datas.append({"id": aid, "coordinate": [{"x": x, "y": y, "id": "a"}, {"x": x + 9, "y": y, "id": "b"},
                                                        {"x": x + 9, "y": y + 7, "id": "c"}]})
            n += 1
        doc = {"extra": {"image_1": {"file_name": f"img_{i:05d}.jpg", "width": 640, "height": 480}},
               "annotations": {"image_1": anns}, "annotationsData": {"image_1": datas}, "relations": {},
               "annotationGroups": {}, "assignmentId": i}
        (root / f"task_{i:05d}.json").write_bytes(orjson.dumps(doc))
    return n


def reference(root: Path) -> float:
    t0 = time.perf_counter()
    rows = []
    for f in sorted(root.glob("*.json")):
        doc = orjson.loads(f.read_bytes())
        for aid, anns in doc["annotations"].items():
            data = {d["id"]: d for d in doc["annotationsData"][aid]}
            for a in anns:
                c = data[a["id"]]["coordinate"]
                box = (c["x"], c["y"], c["width"], c["height"]) if isinstance(c, dict) else (c[0]["x"], c[0]["y"], 0, 0)
                rows.append((a["id"], f.name, a["classification"]["class"], *box,
                             orjson.dumps(a["classification"]).decode()))
    d = tempfile.mkdtemp(prefix="bench-dm-ref-")
    try:
        con = sqlite3.connect(os.path.join(d, "r.db"))
        con.execute("CREATE TABLE a (id TEXT, asset TEXT, cls TEXT, x REAL, y REAL, w REAL, h REAL, attrs TEXT)")
        con.executemany("INSERT INTO a VALUES (?,?,?,?,?,?,?,?)", rows)
        con.commit()
        con.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=10_000)
    ap.add_argument("--per-asset", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dm-") as tmp_s:
        tmp = Path(tmp_s)
        n = make(tmp / "tasks", args.assets, args.per_asset)
        print(f"{args.assets} annotatorData files, {n} annotations")
        ref = reference(tmp / "tasks")
        os.environ["DSGEN_HOME"] = str(tmp / "home")
        os.environ.pop("DSGEN_DATABASE_URL", None)
        reg = Registry()
        storage = open_storage(reg.settings.storage_root)
        t0 = time.perf_counter()
        with reg.session(bulk=True) as s:
            r = import_datamaker(s, ensure_project(s, "bench"), tmp / "tasks", schema=SCHEMA, storage=storage)
        ours = time.perf_counter() - t0
        reg.dispose()
        assert r.ingest.objects_new == n, r.summary()
        print(f"{'':32}{'seconds':>10}{'annotations/s':>16}")
        print(f"{'dsgen import datamaker':32}{ours:10.2f}{n / ours:16,.0f}")
        print(f"{'reference: orjson + sqlite3':32}{ref:10.2f}{n / ref:16,.0f}")
        print(f"ratio {ours / ref:.2f}x (target <= {TARGET}x)")


if __name__ == "__main__":
    main()
