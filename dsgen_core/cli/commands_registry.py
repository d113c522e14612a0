"""``dsgen init``, ``stats``, ``thumbnails``."""

from __future__ import annotations

import sys

import click

from dsgen_core.cli.common import emit, json_option, open_registry, project_option
from dsgen_core.registry.projects import ensure_project, get_project
from dsgen_core.registry.stats import registry_stats
from dsgen_core.storage import open_storage
from dsgen_core.thumbnails import make_thumbnails


@click.command()
@project_option
def init(project: str) -> None:
    """Create the registry (migrations run automatically) and a project."""
    reg = open_registry()
    with reg.session() as s:
        p = ensure_project(s, project)
        click.echo(f"registry ready at {reg.settings.database_shown} (project {p.name!r}, id {p.id})")


@click.command()
@project_option
@json_option
def stats(project: str, as_json: bool) -> None:
    """Counts of images, objects, categories and tracks."""
    reg = open_registry()
    with reg.session() as s:
        data = registry_stats(s, get_project(s, project))
    human = "\n".join(f"{k:>12}: {v}" for k, v in data.items())
    emit(data, as_json, human)


@click.command()
@project_option
@click.option("--size", default=512, show_default=True, help="Longest side in pixels.")
@json_option
def thumbnails(project: str, size: int, as_json: bool) -> None:
    """Make thumbnails for every image that has none yet."""
    reg = open_registry()
    with reg.session() as s:
        counts = make_thumbnails(s, get_project(s, project), storage=open_storage(reg.settings.storage_root), size=size,
                                 progress=sys.stderr.isatty() and not as_json)
    emit(counts.to_dict(), as_json, f"{counts.created} thumbnails created, {counts.failed} failed")
