"""``dsgen version create|freeze|list|show|diff|verify``."""

from __future__ import annotations

import click

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry, project_option
from dsgen_core.errors import VersionTampered
from dsgen_core.registry.projects import get_project
from dsgen_core.storage import open_storage
from dsgen_core.versions.content_hash import verify_version
from dsgen_core.versions.lifecycle import (
    create_version,
    diff_versions,
    freeze_version,
    get_version,
    list_versions,
    request_freeze,
    version_summary,
)


@click.group()
def version() -> None:
    """Frozen, reproducible dataset versions with train/val/test splits."""


@version.command("create")
@click.argument("tag")
@click.option("--query", "-q", default="", help="Which images the version holds (default: all).")
@click.option("--split", default="train=0.8,val=0.1,test=0.1", show_default=True, help="Split ratios.")
@click.option("--seed", default=0, show_default=True, help="Seed of the deterministic split.")
@click.option("--include-model", is_flag=True, help="Also snapshot model annotations (default: human only).")
@click.option("--fresh-splits", is_flag=True,
              help="Split every image anew (default: images keep the split earlier versions gave them).")
@click.option("--source-splits", is_flag=True,
              help="New images take the split their source named (YOLO/VOC/ImageNet imports: source_split).")
@project_option
@json_option
def create_cmd(tag: str, query: str, split: str, seed: int, include_model: bool, fresh_splits: bool,
               source_splits: bool, project: str, as_json: bool) -> None:
    """Define a draft version; it selects nothing until it is frozen."""
    reg = open_registry()
    with reg.session() as s:
        v = create_version(s, get_project(s, project), tag, query=query, split=split, seed=seed,
                           include_model=include_model, fresh_splits=fresh_splits, source_splits=source_splits,
                           actor=cli_actor())
        data = version_summary(s, v)
    emit(data.to_dict(), as_json, f"created draft version {tag!r} (query {query!r}, split {data.split_config}, seed {seed})")


@version.command("freeze")
@click.argument("tag")
@click.option("--request", "request_only", is_flag=True,
              help="Only request the freeze; the Dagster sensor picks it up and materializes the version.")
@project_option
@json_option
def freeze_cmd(tag: str, request_only: bool, project: str, as_json: bool) -> None:
    """Freeze a draft: split, snapshot and hash it. A frozen version never changes."""
    reg = open_registry()
    with reg.session() as s:
        proj = get_project(s, project)
        if request_only:
            v = request_freeze(s, proj, tag, actor=cli_actor())
            emit(version_summary(s, v).to_dict(), as_json, f"freeze of {tag!r} requested")
            return
        r = freeze_version(s, proj, tag, storage=open_storage(reg.settings.storage_root), actor=cli_actor())
        data = version_summary(s, get_version(s, proj, tag))
    word = "was already frozen" if r.already_frozen else "frozen"
    emit(data.to_dict(), as_json, f"version {tag!r} {word}: {data.splits} images, content hash {r.content_hash}")


@version.command("list")
@project_option
@json_option
def list_cmd(project: str, as_json: bool) -> None:
    """All versions of the project."""
    reg = open_registry()
    with reg.session() as s:
        rows = [version_summary(s, v) for v in list_versions(s, get_project(s, project))]
    human = "\n".join(
        f"{r.tag:<12} {'frozen' if r.frozen else 'draft ':<7} {sum(r.splits.values()):>8} images  "
        f"{(r.content_hash or '')[:12]}  {r.query!r}" for r in rows
    ) or "no versions yet (dsgen version create v1)"
    emit([r.to_dict() for r in rows], as_json, human)


@version.command("show")
@click.argument("tag")
@project_option
@json_option
def show_cmd(tag: str, project: str, as_json: bool) -> None:
    """A version's definition, split sizes, class counts and content hash."""
    reg = open_registry()
    with reg.session() as s:
        data = version_summary(s, get_version(s, get_project(s, project), tag))
    lines = [f"{data.tag}: {'frozen' if data.frozen else 'draft'}  query {data.query!r}  seed {data.seed}",
             f"  content hash {data.content_hash}", f"  images per split {data.splits}",
             f"  annotations per split {data.annotations}"]
    lines += [f"  {k:<20} {v}" for k, v in sorted(data.classes.items())]
    emit(data.to_dict(), as_json, "\n".join(lines))


@version.command("diff")
@click.argument("a")
@click.argument("b")
@project_option
@json_option
def diff_cmd(a: str, b: str, project: str, as_json: bool) -> None:
    """What was added, removed, moved between splits and relabelled from A to B."""
    reg = open_registry()
    with reg.session() as s:
        d = diff_versions(s, get_project(s, project), a, b)
    human = (f"{a} -> {b}: +{len(d.images_added)} / -{len(d.images_removed)} images, "
             f"{len(d.images_moved)} moved between splits; +{d.annotations_added} / -{d.annotations_removed} "
             f"annotations, {len(d.relabelled)} relabelled")
    emit(d.to_dict(), as_json, human)


@version.command("verify")
@click.argument("tag")
@project_option
@json_option
def verify_cmd(tag: str, project: str, as_json: bool) -> None:
    """Recompute a frozen version's content hash from what is stored (rows and mask files) and compare.

    Exit code 0 when it matches, 4 when the stored content was changed.
    """
    reg = open_registry()
    with reg.session() as s:
        r = verify_version(s, get_version(s, get_project(s, project), tag), open_storage(reg.settings.storage_root))
    human = (f"version {tag!r} verifies: {r.images} images, {r.annotations} annotations, content hash {r.computed} "
             f"({r.seconds:.2f} s)")
    if r.ok:
        emit(r.to_dict(), as_json, human)
        return
    if as_json:
        emit(r.to_dict(), as_json)
    raise VersionTampered(f"version {tag!r} does not match its content hash: recorded {r.content_hash}, the stored "
                          f"rows and mask files give {r.computed}; they were changed outside dsgen")
