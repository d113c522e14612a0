"""``dsgen init``, ``dsgen stats``."""

from __future__ import annotations

import click

from dsgen_core.cli.common import emit, json_option, open_registry, project_option
from dsgen_core.cli.main import cli
from dsgen_core.registry.projects import ensure_project, get_project
from dsgen_core.registry.stats import registry_stats


@cli.command()
@project_option
def init(project: str) -> None:
    """Create the registry (migrations run automatically) and a project."""
    reg = open_registry()
    with reg.session() as s:
        p = ensure_project(s, project)
        click.echo(f"registry ready at {reg.settings.database_url} (project {p.name!r}, id {p.id})")


@cli.command()
@project_option
@json_option
def stats(project: str, as_json: bool) -> None:
    """Counts of images, objects, categories and tracks."""
    reg = open_registry()
    with reg.session() as s:
        data = registry_stats(s, get_project(s, project))
    human = "\n".join(f"{k:>12}: {v}" for k, v in data.items())
    emit(data, as_json, human)
