"""Time ``compute_insights`` on a synthetic project (default 100k images, ~1M objects).

    python benchmarks/bench_insights.py --url sqlite:////tmp/insights_bench.db --images 100000

The database is filled once and reused when it already holds the project. Not collected by
pytest: it takes a minute to fill and its numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from dsgen_core.config import load_settings
from dsgen_core.insights.charts import render_charts
from dsgen_core.insights.compute import INSIGHTS, compute_insights
from dsgen_core.registry.db import Registry
from dsgen_core.registry.ontology import add_classes
from dsgen_core.registry.projects import ensure_project
from dsgen_core.registry.schema import Annotation, Asset, AssetMetadata, AssetTag, LabelClass, Project

SIZES = [(1920, 1080), (1280, 720), (640, 480), (4032, 3024), (1024, 768), (800, 600), (3840, 2160)]
COLORS = ["red", "green", "blue", "black", "white", "silver"]
WEATHER = ["sunny", "cloudy", "rain", "snow", "fog"]


def _attributes(rng: random.Random, asset_id: int) -> dict[str, Any]:
    """CVAT-like: occluded and rotation always, a custom colour, track ids on a third of the objects."""
    attrs: dict[str, Any] = {"occluded": rng.random() < 0.3, "rotation": 0.0 if rng.random() < 0.9 else 90.0, "color": rng.choice(COLORS)}
    if rng.random() < 0.3:
        attrs["track_id"] = asset_id // 30 * 4 + rng.randint(0, 3)
        attrs["keyframe"] = rng.random() < 0.2
    return attrs


def fill(reg: Registry, name: str, images: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    with reg.session() as s:
        existing = s.scalar(select(Project.id).where(Project.name == name))
        if existing is not None:
            return int(existing)
        project = ensure_project(s, name)
        classes = [LabelClass(project_id=project.id, key=f"class_{i:02d}", display_name=f"Class {i}") for i in range(80)]
        s.add_all(classes)
        s.flush()
        add_classes(s, project, classes)
        class_ids = [c.id for c in classes]
        weights = [1 / (i + 1) for i in range(len(class_ids))]
        pid = project.id
    batch = 5000
    for start in range(0, images, batch):
        assets: list[dict[str, Any]] = []
        for i in range(start, min(start + batch, images)):
            w, h = rng.choice(SIZES) if rng.random() < 0.9 else (rng.randint(200, 5000), rng.randint(200, 5000))
            assets.append({"project_id": pid, "source_key": f"img_{i:07d}.jpg", "file_name": f"img_{i:07d}.jpg", "sha256": f"{i:064x}", "width": w, "height": h})
        with reg.engine.begin() as conn:
            ids = [r[0] for r in conn.execute(insert(Asset).returning(Asset.id, sort_by_parameter_order=True), assets)]
            anns: list[dict[str, Any]] = []
            tags: list[dict[str, Any]] = []
            meta: list[dict[str, Any]] = []
            for aid, a in zip(ids, assets):
                for _ in range(min(int(rng.expovariate(0.1)), 120)):
                    bw = rng.uniform(2, a["width"] / 2)
                    bh = max(1.0, bw * rng.lognormvariate(0, 0.7))
                    model = rng.random() < 0.2
                    anns.append({
                        "asset_id": aid, "label_class_id": rng.choices(class_ids, weights)[0], "geometry_type": "bbox",
                        "bbox_x": 0.0, "bbox_y": 0.0, "bbox_w": bw, "bbox_h": bh,
                        "attributes": _attributes(rng, aid),
                        "source": "model" if model else "human", "confidence": rng.random() if model else None,
                    })
                for t in rng.sample(range(30), rng.randint(0, 3)):
                    tags.append({"asset_id": aid, "tag": f"tag_{t}"})
                meta.append({"asset_id": aid, "key": "weather", "value_text": rng.choice(WEATHER), "value_num": None})
                meta.append({"asset_id": aid, "key": "timestamp", "value_text": str(1_700_000_000 + aid), "value_num": float(1_700_000_000 + aid)})
            conn.execute(insert(Annotation), anns)
            if tags:
                conn.execute(insert(AssetTag), tags)
            conn.execute(insert(AssetMetadata), meta)
    return pid


def _timed(label: str, fn: Callable[[], Any]) -> Any:
    """Wall and this process's CPU time; on a shared machine the CPU time is the steadier figure
    for SQLite, which runs in-process (PostgreSQL's work shows in wall time only)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    print(f"  {label:<20} wall {time.perf_counter() - wall:6.2f}s  cpu {time.process_time() - cpu:6.2f}s")
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="sqlite:////tmp/insights_bench.db")
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--query", default="")
    ap.add_argument("--charts", type=Path, default=None, help="Also render the charts into this folder.")
    args = ap.parse_args()
    reg = Registry(load_settings(database_url=args.url))
    t0 = time.perf_counter()
    pid = fill(reg, f"bench{args.images}", args.images)
    print(f"fill: {time.perf_counter() - t0:.1f}s")
    with reg.session() as s:
        out = _timed("all insights", lambda: compute_insights(s, s.get(Project, pid), args.query))
        print(f"  images={out['images']} objects={out['objects']}")
        for name in INSIGHTS:
            _timed(name, lambda name=name: compute_insights(s, s.get(Project, pid), args.query, [name]))
    if args.charts is not None:
        _timed("charts", lambda: render_charts(out, args.charts))


if __name__ == "__main__":
    main()
