"""``dsgen init``, ``stats``, ``import coco``, ``export coco``, ``thumbnails``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import cast

import click
import orjson

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry, project_option
from dsgen_core.errors import DsgenError
from dsgen_core.formats.coco.exporter import build_coco, write_coco
from dsgen_core.formats.coco.importer import import_coco, local_sources_dir
from dsgen_core.formats.report import ImportRefused
from dsgen_core.formats.version_export import export_version_coco, export_version_yolo
from dsgen_core.query import compile_query
from dsgen_core.registry.ingest import ON_CONFLICT, OnConflict
from dsgen_core.registry.projects import ensure_project, get_project
from dsgen_core.registry.stats import registry_stats
from dsgen_core.storage import open_storage
from dsgen_core.storage.masks import MaskStore
from dsgen_core.thumbnails import make_thumbnails


@click.command()
@project_option
def init(project: str) -> None:
    """Create the registry (migrations run automatically) and a project."""
    reg = open_registry()
    with reg.session() as s:
        p = ensure_project(s, project)
        click.echo(f"registry ready at {reg.settings.database_url} (project {p.name!r}, id {p.id})")


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


@click.group("import")
def import_() -> None:
    """Import annotations into the registry."""


@import_.command("coco")
@click.argument("annotations", type=click.Path(path_type=Path))
@click.option("--images", type=click.Path(path_type=Path), help="Image folder or ZIP (CVAT export layout works as is).")
@project_option
@click.option("--skip-invalid", is_flag=True, help="Import the valid records and report the rest.")
@click.option("--on-conflict", type=click.Choice(ON_CONFLICT), default="error", show_default=True,
              help="A record that contradicts what the registry holds for the same image or object: refuse the "
                   "import, keep the registry's value, or replace it with the file's. Reported either way.")
@click.option("--report", "report_path", type=click.Path(path_type=Path), help="Write the validation report (JSON) here.")
@click.option("--create-missing", is_flag=True, help="Results files: create images/classes the project lacks.")
@click.option("--panoptic-dir", type=click.Path(path_type=Path), help="Folder of panoptic PNGs (default: next to the JSON).")
@json_option
def import_coco_cmd(annotations: Path, images: Path | None, project: str, skip_invalid: bool, on_conflict: str,
                    report_path: Path | None, create_missing: bool, panoptic_dir: Path | None, as_json: bool) -> None:
    """Import a CVAT "COCO 1.0" export or any COCO file (instances, keypoints, captions, panoptic, results).

    Images are the samples the file names (by path), objects the annotations it names (by id):
    importing instances, keypoints and captions of one split merges them, and importing the same
    file again adds nothing. A file with problems is refused whole with a report; nothing is written.
    """
    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    reports = reg.settings.home / "reports"
    try:
        with reg.session(bulk=True) as s:
            result = import_coco(s, ensure_project(s, project, source="coco", actor=cli_actor()), annotations,
                                 images=images, storage=storage, sources_dir=local_sources_dir(storage, reg.settings.home),
                                 actor=cli_actor(), skip_invalid=skip_invalid,
                                 on_conflict=cast(OnConflict, on_conflict),
                                 create_missing=create_missing, panoptic_dir=panoptic_dir,
                                 progress=sys.stderr.isatty() and not as_json)
    except ImportRefused as exc:
        written = exc.report.write(report_path or reports / f"import-refused-{time.strftime('%Y%m%d-%H%M%S')}.json")
        if as_json:
            first = exc.report.errors[0] if exc.report.errors else None
            click.echo(orjson.dumps({"error": f"{str(exc).splitlines()[0]} {first}" if first else str(exc).splitlines()[0],
                                     "errors": len(exc.report.errors),
                                     "warnings": len(exc.report.warnings), "report": str(written)}).decode())
        click.echo(f"error: {exc}\nreport: {written}", err=True)
        sys.exit(2)
    if report_path is not None or (skip_invalid and result.report.problems):
        result.report_path = result.report.write(report_path or reports / f"import-{result.ingest.batch_id}.json")
    summary = result.summary()
    human = (f"imported {annotations} into project {project!r} in {summary['seconds']} s: "
             f"{summary['images_new']} new images ({summary['images_existing']} already known), "
             f"{summary['annotations']} new annotations ({summary['annotations_merged']} merged into existing ones, "
             f"{summary['annotations_unchanged']} unchanged), "
             f"{summary['categories_new']} new categories, {summary['masks']} masks, {summary['tracks']} tracks")
    if summary["conflicts"]:
        human += f", {summary['conflicts']} conflict(s) resolved ({on_conflict})"
    if result.report.problems:
        human += "\n" + result.report.to_text(20)
    if result.report_path:
        human += f"\nreport: {result.report_path}"
    emit(summary, as_json, human)


@click.command("coco")
@click.argument("out", type=click.Path(path_type=Path))
@project_option
@click.option("--query", "-q", default="", help="Only images matching this query.")
@click.option("--version", "tag", help="Export this frozen version instead: OUT is a folder, one JSON per split.")
@click.option("--human-only", is_flag=True, help="Leave out model annotations.")
@json_option
def export_coco_cmd(out: Path, project: str, query: str, tag: str | None, human_only: bool, as_json: bool) -> None:
    """Write the project (or the images matching --query) as one COCO JSON file, or a frozen version per split."""
    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    with reg.session() as s:
        p = get_project(s, project)
        if tag is not None:
            if query:
                raise DsgenError("--query and --version do not combine: a version already fixes its images")
            result = export_version_coco(s, p, tag, out, storage=storage)
            emit(result.summary(), as_json, f"wrote {out}: {result.files} images, {result.annotations} annotations per split")
            return
        ids = compile_query(query, project_id=p.id) if query.strip() else None
        doc = build_coco(s, p, MaskStore(storage), asset_ids=ids, include_model=not human_only)
    write_coco(doc, out)
    data = {"path": str(out), "images": len(doc["images"]), "annotations": len(doc["annotations"]),
            "categories": len(doc["categories"])}
    emit(data, as_json, f"wrote {out}: {data['images']} images, {data['annotations']} annotations, {data['categories']} categories")


@click.command("yolo")
@click.argument("tag")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--task", type=click.Choice(["detect", "segment", "pose"]), default="detect", show_default=True)
@project_option
@json_option
def export_yolo_cmd(tag: str, out_dir: Path, task: str, project: str, as_json: bool) -> None:
    """Write a frozen version as an Ultralytics YOLO dataset (images hard-linked, data.yaml with the names)."""
    reg = open_registry()
    with reg.session() as s:
        result = export_version_yolo(s, get_project(s, project), tag, out_dir,
                                     storage=open_storage(reg.settings.storage_root), task=task)
    skipped = f", left out {result.skipped}" if result.skipped else ""
    emit(result.summary(), as_json,
         f"wrote {out_dir}: {result.files} images, {result.annotations} objects per split{skipped}; train with "
         f"`yolo train data={out_dir / 'data.yaml'} model=yolov8n.yaml`")


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
