"""``dsgen init``, ``stats``, ``thumbnails``, ``gc``."""

from __future__ import annotations

import sys

import click

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry, project_option
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


@click.command()
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option("--min-age", default=3600.0, show_default=True, type=click.FloatRange(min=0),
              help="Keep files younger than this many seconds (an import running now has not committed their rows yet).")
@json_option
def gc(dry_run: bool, min_age: float, as_json: bool) -> None:
    """Remove files no registry row refers to: masks, thumbnails, unpacked ZIPs of failed imports."""
    from dsgen_core.formats.coco.importer import local_sources_dir
    from dsgen_core.registry.gc import collect_garbage

    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    with reg.session() as s:
        r = collect_garbage(s, storage=storage, sources_dir=local_sources_dir(storage, reg.settings.home),
                            min_age=min_age, dry_run=dry_run, actor=cli_actor())
    verb = "would remove" if dry_run else "removed"
    human = (f"{verb} {r.masks} mask files, {r.thumbnails} thumbnails, {r.source_files} unpacked source files and "
             f"{r.staging_folders} folders of failed imports ({r.bytes_freed / 1e6:.1f} MB); kept {r.kept_young} "
             f"unreferenced files younger than {min_age:g} s")
    emit(r.to_dict(), as_json, human)
