"""``dsgen insights``: statistics and charts of a project or query subset, and saved views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry
from dsgen_core.config import load_settings
from dsgen_core.errors import DsgenError
from dsgen_core.insights.charts import render_charts
from dsgen_core.insights.compute import INSIGHTS, TOP_N, compute_insights, fmt_num, parse_which
from dsgen_core.insights.views import delete_view, list_views, render_view, safe_name, save_view, view_to_dict
from dsgen_core.registry.projects import DEFAULT_PROJECT, get_project

WHICH_HELP = f"Comma-separated insights to compute (default all): {', '.join(INSIGHTS)}."
sub_project_option = click.option("--project", default=None, help="Project name (default: the one given to `insights`, else 'default').")
out_option = click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Folder for the PNG charts [default: $DSGEN_HOME/insights/<project>/]."
)


def _project(ctx: click.Context, project: str | None) -> str:
    """A subcommand's --project, else the one given to the group (`insights --project P show X`)."""
    if project:
        return project
    return (ctx.parent.params.get("project") if ctx.parent else None) or DEFAULT_PROJECT


def _out_dir(project: str, *parts: str) -> Path:
    return load_settings().home / "insights" / safe_name(project) / Path(*parts)


@click.group(invoke_without_command=True)
@click.option("--project", default=DEFAULT_PROJECT, show_default=True, help="Project name.")
@click.option("--query", "-q", default="", help="Only the images this query selects, e.g. 'tag:night width>1024'.")
@click.option("--which", default=None, help=WHICH_HELP)
@click.option("--top", type=click.IntRange(1, 1000), default=TOP_N, show_default=True, help="Longest per-category lists (tags, sizes, values).")
@out_option
@click.option("--no-charts", is_flag=True, help="Compute only; draw no PNGs.")
@json_option
@click.pass_context
def insights(ctx: click.Context, project: str, query: str, which: str | None, top: int, out: Path | None, no_charts: bool, as_json: bool) -> None:
    """Class distribution, tags, metadata, resolutions, box sizes and shapes, objects per image,
    attribute co-occurrence, human/model sources and confidence, with PNG charts.

    `dsgen insights` alone describes the whole project; --query restricts it to the images a
    query selects (their objects count). The subcommands keep named views: a query and the
    charts to draw, saved per project and re-rendered on the registry as it is then.
    """
    if ctx.invoked_subcommand is not None:
        return
    names = parse_which(which)
    with open_registry().session() as s:
        data = compute_insights(s, get_project(s, project), query, names, top=top)
    charts = {} if no_charts else render_charts(data, out or _out_dir(project), config={"top": min(top, 30)})
    _print(project, data, charts, as_json)


@insights.command("save")
@click.argument("name")
@sub_project_option
@click.option("--query", "-q", default="", help="The view's query (default: the whole project).")
@click.option("--charts", default=None, help=f"Comma-separated insights the view draws (default all): {', '.join(INSIGHTS)}.")
@click.option("--viz", "visualization", default=None, help='Visualization config as a JSON object, e.g. \'{"top": 15, "title": "Night"}\'.')
@click.option("--by", "saved_by", default=None, help="Who saves the view (kept in the view and the audit log).")
@json_option
@click.pass_context
def save_command(ctx: click.Context, name: str, project: str | None, query: str, charts: str | None, visualization: str | None, saved_by: str | None, as_json: bool) -> None:
    """Save (create or replace) the insight view NAME."""
    config = _json_object(visualization) if visualization is not None else None
    project = _project(ctx, project)
    with open_registry().session() as s:
        view = save_view(
            s,
            get_project(s, project),
            name,
            query=query,
            charts=parse_which(charts) if charts else None,
            visualization=config,
            saved_by=saved_by,
            actor=cli_actor(),
        )
        data = view_to_dict(view)
    emit(data, as_json, f"saved insight view {name!r} in project {project!r} (query: {query or '<whole project>'})")


@insights.command("views")
@sub_project_option
@json_option
@click.pass_context
def views_command(ctx: click.Context, project: str | None, as_json: bool) -> None:
    """List the saved insight views of a project."""
    project = _project(ctx, project)
    with open_registry().session() as s:
        views = [view_to_dict(v) for v in list_views(s, get_project(s, project))]
    if as_json:
        emit(views, True)
        return
    if not views:
        click.echo(f"no insight views in project {project!r}; save one with `dsgen insights save NAME --query ...`")
        return
    width = max(len(v["name"]) for v in views)
    for v in views:
        charts = ",".join(v["charts"]) or "all"
        click.echo(f"{v['name']:<{width}}  query: {v['query'] or '<whole project>'}  charts: {charts}")


@insights.command("show")
@click.argument("name")
@sub_project_option
@out_option
@json_option
@click.pass_context
def show_command(ctx: click.Context, name: str, project: str | None, out: Path | None, as_json: bool) -> None:
    """Compute and draw the saved insight view NAME."""
    project = _project(ctx, project)
    with open_registry().session() as s:
        rendered = render_view(s, get_project(s, project), name, out or _out_dir(project, "views", safe_name(name)))
    if as_json:
        _print(project, {**rendered.insights, "view": rendered.view}, rendered.charts, True)
        return
    click.echo(f"insight view {name!r}")
    _print(project, rendered.insights, rendered.charts, False)


@insights.command("delete")
@click.argument("name")
@sub_project_option
@click.pass_context
def delete_command(ctx: click.Context, name: str, project: str | None) -> None:
    """Delete the saved insight view NAME."""
    project = _project(ctx, project)
    with open_registry().session() as s:
        delete_view(s, get_project(s, project), name, actor=cli_actor())
    click.echo(f"deleted insight view {name!r} of project {project!r}")


# --------------------------------------------------------------------------- output


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise DsgenError(f"--viz is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DsgenError("--viz must be a JSON object, e.g. '{\"top\": 15}'")
    return value


def _print(project: str, data: dict[str, Any], charts: dict[str, Path], as_json: bool) -> None:
    if as_json:
        emit({**data, "charts": {k: str(v) for k, v in charts.items()}}, True)
        return
    click.echo("\n".join(summary_lines(project, data)))
    if charts:
        click.echo("\ncharts:")
        width = max(len(k) for k in charts)
        for name in sorted(charts, key=lambda k: (k != "overview", k)):
            click.echo(f"  {name:<{width}}  {charts[name]}")


def _pairs(counts: dict[str, int], n: int = 8) -> str:
    items = list(counts.items())
    text = ", ".join(f"{k} ({v})" for k, v in items[:n])
    return text + (f", … ({len(items) - n} more)" if len(items) > n else "")


def summary_lines(project: str, data: dict[str, Any]) -> list[str]:
    """A few readable lines per insight computed."""
    scope = f"query {data['query']!r}" if data.get("query") else "whole project"
    lines = [f"project {project!r}, {scope}: {data['images']} images, {data['objects']} objects"]
    if "class_distribution" in data:
        classes = data["class_distribution"]["classes"]
        lines.append(f"\nclasses ({len(classes)}; objects / images):")
        width = max((len(c["key"]) for c in classes[:15]), default=0)
        lines += [f"  {c['key']:<{width}}  {c['objects']:>8}  {c['images']:>8}" for c in classes[:15]]
        if len(classes) > 15:
            rest = classes[15:]
            lines.append(f"  … {len(rest)} more classes, {sum(c['objects'] for c in rest)} objects")
    if "tag_counts" in data:
        t = data["tag_counts"]
        lines.append(f"\ntags ({t['distinct']} distinct, {t['untagged_images']} images untagged): {_pairs(t['tags']) or '-'}")
        if t["object_tags"]:
            lines.append(f"object tags ({t['object_tags_distinct']} distinct): {_pairs(t['object_tags'])}")
    if "metadata_values" in data:
        keys = data["metadata_values"]["keys"]
        lines.append("\nmetadata:" + ("" if keys else " -"))
        for key, entry in list(keys.items())[:10]:
            lines.append(f"  {key} ({entry['images']} images, {entry['distinct']} values): {_pairs(entry['values'], 5)}")
    if "resolution" in data:
        r = data["resolution"]
        sizes = ", ".join(f"{s['width']}×{s['height']} ({s['images']})" for s in r["top_sizes"][:5])
        unknown = f"; {r['unknown_size']} of unknown size" if r["unknown_size"] else ""
        lines.append(f"\nresolution: {r['distinct_sizes']} distinct sizes; most common {sizes or '-'}{unknown}")
    if "bbox_size" in data:
        b = data["bbox_size"]
        coco = b["coco"]
        lines.append(
            f"boxes: {b['boxes']} (COCO small {coco['small']}, medium {coco['medium']}, large {coco['large']}); "
            f"{b['degenerate']} degenerate, {b['no_box']} without a box"
        )
    if "bbox_aspect" in data:
        ratio = data["bbox_aspect"]["ratio"]
        if any(ratio["counts"]):
            peak = max(range(len(ratio["counts"])), key=lambda i: ratio["counts"][i])
            lines.append(f"box aspect w/h: most boxes in {ratio['labels'][peak]}")
    if "objects_per_image" in data:
        o = data["objects_per_image"]
        lines.append(f"objects per image: mean {o['mean']:.2f}, median {fmt_num(o['median'])}, max {o['max']}; {o['images_without_objects']} images without objects")
    if "sources" in data:
        src = data["sources"]
        lines.append(f"sources: {src['human']} human, {src['model']} model")
    if "confidence" in data and data["confidence"]["mean"] is not None:
        c = data["confidence"]
        lines.append(f"model confidence: mean {c['mean']:.3f} over {c['model_objects'] - c['without_confidence']} scored objects")
    if "attributes" in data:
        keys = data["attributes"]["keys"]
        lines.append("attributes:" + ("" if keys else " -"))
        for key, entry in keys.items():
            if entry["categorical"]:
                lines.append(f"  {key} ({entry['objects']} objects): {_pairs(entry['values'], 6)}")
            elif entry["min"] is not None:
                lines.append(f"  {key} ({entry['objects']} objects): {fmt_num(entry['min'])} … {fmt_num(entry['max'])}, mean {fmt_num(round(entry['mean'], 3))}")
            else:
                lines.append(f"  {key} ({entry['objects']} objects, {entry['distinct'] or 'many'} values)")
    if "duplicates" in data:
        d = data["duplicates"]
        lines.append(f"identical images: {d['images_with_duplicates']} images in {d['groups']} groups of equal bytes "
                     f"(find them with `has:duplicate`)" if d["groups"] else "identical images: none")
        if d.get("near_groups"):
            lines.append(f"near duplicates: {d['images_with_near_duplicates']} images in {d['near_groups']} groups "
                         "(from `dsgen duplicates`; find them with `has:near_duplicate`)")
    return lines
