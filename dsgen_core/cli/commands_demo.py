"""``dsgen demo``: the whole registry flow on generated data, with nothing to download."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from dsgen_core.cli.common import emit, json_option, open_registry
from dsgen_core.cli.main import cli
from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.formats.coco.importer import import_coco
from dsgen_core.insights.charts import render_charts
from dsgen_core.insights.compute import compute_insights
from dsgen_core.query import count_query
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.stats import registry_stats
from dsgen_core.registry.tagging import add_tags, set_metadata
from dsgen_core.thumbnails import make_thumbnails


def _step(msg: str, quiet: bool) -> None:
    if not quiet:
        click.echo(f"[demo] {msg}", err=True)


@cli.command()
@click.option("--project", default="demo", show_default=True, help="Project the demo data goes into.")
@click.option("--images", "n_images", default=300, show_default=True, help="How many synthetic images.")
@click.option("--seed", default=0, show_default=True)
@json_option
def demo(project: str, n_images: int, seed: int, as_json: bool) -> None:
    """Generate a CVAT-style COCO export of synthetic shapes, import it, tag it, query it and chart it.

    Safe to run again: the import is idempotent.
    """
    t0 = time.perf_counter()
    reg = open_registry()
    quiet = as_json
    src = reg.settings.home / "demo" / f"shapes-{n_images}-{seed}"
    if not (src / "annotations" / "instances_default.json").exists():
        _step(f"generating {n_images} synthetic images into {src}", quiet)
        generate_demo_dataset(src, n_images=n_images, seed=seed)
    _step("importing the CVAT COCO 1.0 export", quiet)
    imported = import_coco(reg, src / "annotations" / "instances_default.json", images=src / "images",
                           project=project, progress=sys.stderr.isatty() and not quiet)
    with reg.session() as s:
        pid = get_project(s, project).id
    _step("making thumbnails", quiet)
    thumbs = make_thumbnails(reg, pid, progress=sys.stderr.isatty() and not quiet)
    with reg.session() as s:
        tagged = add_tags(s, pid, ["has-occlusion"], query="attr.occluded:true")
        add_tags(s, pid, ["video"], query="has:track")
        set_metadata(s, pid, "origin", "synthetic", query="")
        queries: dict[str, Any] = {
            q: count_query(s, q, project_id=pid)
            for q in ("category:circle", "tag:has-occlusion", "has:mask", "has:track -tag:has-occlusion", "width>=160")
        }
    _step("computing insights and drawing charts", quiet)
    out_dir = reg.settings.home / "insights" / project
    with reg.session() as s:
        insights = compute_insights(s, pid)
        stats = registry_stats(s, get_project(s, project))
    charts = render_charts(insights, out_dir)
    overview = charts.get("overview") or next(iter(charts.values()), None)
    summary = {
        "project": project,
        "database": reg.settings.database_url,
        "source": str(src),
        "import": imported.summary(),
        "stats": stats,
        "thumbnails": thumbs,
        "tagged_has_occlusion": tagged,
        "queries": queries,
        "classes": {c["key"]: c["objects"] for c in insights["class_distribution"]["classes"]},
        "charts": {k: str(v) for k, v in charts.items()},
        "overview_chart": str(overview) if overview else None,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    human = "\n".join([
        f"demo project {project!r} in {reg.settings.database_url}",
        f"  images {stats['images']}, objects {stats['objects']}, categories {stats['categories']}, tracks {stats['tracks']}",
        *(f"  query {q!r}: {n} images" for q, n in queries.items()),
        f"  insights chart: {overview}",
        f"  done in {summary['seconds']} s",
    ])
    emit(summary, as_json, human)
