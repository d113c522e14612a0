"""``dsgen policy`` (when the loop cuts the next version) and ``dsgen batches`` (the annotation batches)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry, project_option
from dsgen_core.loop.batches import list_batches
from dsgen_core.loop.policy import decide_next_version, get_policy, set_policy
from dsgen_core.registry.projects import get_project


@click.group()
def policy() -> None:
    """When the continuous loop cuts the next version, and what follows it."""


@policy.command("show")
@project_option
@json_option
def policy_show(project: str, as_json: bool) -> None:
    """The policy, and what it would decide now."""
    reg = open_registry()
    with reg.session() as s:
        p = get_project(s, project)
        pol = get_policy(s, p)
        d = decide_next_version(s, p, pol)
    emit({"policy": asdict(pol), "next": {"cut": d.cut, "tag": d.tag, "reason": d.reason,
                                          "pending": {**asdict(d.pending), "since_at": str(d.pending.since_at)}}},
         as_json, f"policy {pol.describe()}\nnow: {'cut ' + d.tag if d.cut else 'no new version'} ({d.reason})")


def _clearable(value: str | None, kind: type) -> Any:
    if value is None:
        return ...
    if value.lower() in ("none", "off", ""):
        return None
    try:
        return kind(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a {kind.__name__} (or 'none' to clear)") from None


@policy.command("set")
@click.option("--on/--off", "enabled", default=None, help="Switch the policy on or off.")
@click.option("--trigger", type=click.Choice(["sensor", "schedule"]),
              help="Evaluated by the sensor (each tick) or by the nightly policy schedule.")
@click.option("--min-annotations", help="Cut when this many new or changed human annotations arrived ('none' clears).")
@click.option("--min-images", help="... or this many new images.")
@click.option("--min-classes", help="... or this many new classes.")
@click.option("--window-hours", help="... or anything changed and the newest version is this old.")
@click.option("--query", help="The query that selects each version's images ('' for all).")
@click.option("--split", "split_config", help="Split ratios, e.g. train=0.8,val=0.1,test=0.1.")
@click.option("--seed", type=int, help="Split seed of the new images.")
@click.option("--train/--no-train", default=None, help="Train the production model's child on each new version.")
@click.option("--recipe", help="Training recipe of the children (default: the production model's).")
@click.option("--tolerance", type=float, help="mAP50-95 a child may lose against production and still be promoted.")
@project_option
@json_option
def policy_set(enabled: bool | None, trigger: str | None, min_annotations: str | None, min_images: str | None,
               min_classes: str | None, window_hours: str | None, query: str | None, split_config: str | None,
               seed: int | None, train: bool | None, recipe: str | None, tolerance: float | None, project: str,
               as_json: bool) -> None:
    """Change the project's policy; options not given stay as they are."""
    changes = {k: v for k, v in {
        "enabled": enabled, "trigger": trigger, "query": query, "split_config": split_config, "seed": seed,
        "train": train, "recipe": recipe, "tolerance": tolerance}.items() if v is not None}
    for name, raw, kind in (("min_annotations", min_annotations, int), ("min_images", min_images, int),
                            ("min_classes", min_classes, int), ("window_hours", window_hours, float)):
        value = _clearable(raw, kind)
        if value is not ...:
            changes[name] = value
    reg = open_registry()
    with reg.session() as s:
        pol = set_policy(s, get_project(s, project), actor=cli_actor(), **changes)
    emit(asdict(pol), as_json, f"policy {pol.describe()}")


@click.command()
@click.option("--limit", default=20, show_default=True)
@project_option
@json_option
def batches(limit: int, project: str, as_json: bool) -> None:
    """The newest annotation batches: what each changed, and the runs of it that failed."""
    reg = open_registry()
    with reg.session() as s:
        rows = list_batches(s, get_project(s, project), limit=limit)
    emit([{**asdict(b), "created_at": b.created_at.isoformat()} for b in rows], as_json, "\n".join(
        f"#{b.id:<5} {b.created_at:%Y-%m-%d %H:%M} {b.operation:<13} {b.source:<6} +{b.objects_new} ~{b.objects_changed} "
        f"-{b.objects_deleted} objects, +{b.images_new} images, +{b.classes_new} classes  {b.source_uri}"
        + "".join(f"\n        FAILED {f['job']} {f.get('partition') or ''} run {f['run_id'][:8]}: {f['error'][:100]}"
                  for f in b.failures) for b in rows) or f"no annotation batches in project {project!r}")


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def backfill(args: tuple[str, ...]) -> None:
    """A Dagster asset backfill: `embed [COLLECTION...]`, `evaluate --on v2`, `exports [TAG...]` (--help for more).

    It is a real backfill of the Dagster instance ($DAGSTER_HOME), run by its daemon and shown on the
    UI's Backfills page; this command waits and shows its progress (--no-wait returns at once).
    """
    import subprocess
    import sys

    # Dagster lives in dsgen_pipelines; dsgen_core does not import it.
    code = subprocess.call([sys.executable, "-m", "dsgen_pipelines.backfill", *args])
    sys.exit(code)
