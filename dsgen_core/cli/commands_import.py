"""``dsgen import coco|datamaker|yolo|voc|imagenet|video``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NoReturn, cast

import click
import orjson

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry, project_option
from dsgen_core.formats.coco.importer import import_coco, local_sources_dir
from dsgen_core.formats.report import ImportRefused
from dsgen_core.registry.ingest import ON_CONFLICT, OnConflict
from dsgen_core.registry.projects import ensure_project
from dsgen_core.storage import open_storage


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
        _refused(exc, reg.settings.home, as_json, report_path)
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




@import_.command("datamaker")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--images", type=click.Path(path_type=Path), help="Folder of the assets' image files.")
@click.option("--schema", "schema", type=click.Path(path_type=Path),
              help="The project's dm-schema (JSON Schema) every classification must satisfy.")
@project_option
@click.option("--skip-invalid", is_flag=True, help="Import the valid records and report the rest.")
@click.option("--on-conflict", type=click.Choice(ON_CONFLICT), default="error", show_default=True,
              help="An annotation that contradicts what the registry holds for it.")
@json_option
def import_datamaker_cmd(path: Path, images: Path | None, schema: Path | None, project: str, skip_invalid: bool,
                         on_conflict: str, as_json: bool) -> None:
    """Import Datamaker annotatorData: one file, or every *.json under a folder.

    Each asset (image_1, ...) is an image identified by its file and asset id; each annotation an
    object identified by its id. A file with problems (or a classification the dm-schema refuses)
    is refused whole with a report naming file, asset, annotation and rule; nothing is written.
    """
    from dsgen_core.formats.datamaker.importer import import_datamaker

    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    try:
        with reg.session(bulk=True) as s:
            result = import_datamaker(s, ensure_project(s, project, source="datamaker", actor=cli_actor()), path,
                                      images=images, schema=schema, storage=storage, actor=cli_actor(),
                                      skip_invalid=skip_invalid, on_conflict=cast(OnConflict, on_conflict))
    except ImportRefused as exc:
        _refused(exc, reg.settings.home, as_json)
    summary = result.summary()
    human = (f"imported {path} into project {project!r}: {summary['images_new']} new images, "
             f"{summary['annotations']} new annotations ({summary['annotations_merged']} merged, "
             f"{summary['annotations_unchanged']} unchanged), {summary['categories_new']} new classes")
    if result.report.problems:
        human += "\n" + result.report.to_text(20)
    emit(summary, as_json, human)


def _layout_command(fmt: str, path: Path, project: str, skip_invalid: bool, as_json: bool, **kw: str) -> None:
    from dsgen_core.formats.cvat_xml import read_cvat_xml
    from dsgen_core.formats.layout import ingest_layout
    from dsgen_core.formats.report import ValidationReport
    from dsgen_core.formats.voc_imagenet import read_imagenet, read_voc
    from dsgen_core.formats.yolo_import import read_yolo

    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    report = ValidationReport()
    lb = {"yolo": lambda: read_yolo(path, report, **kw), "voc": lambda: read_voc(path, report),
          "imagenet": lambda: read_imagenet(path, report), "cvat": lambda: read_cvat_xml(path, report)}[fmt]()
    try:
        with reg.session(bulk=True) as s:
            result = ingest_layout(s, ensure_project(s, project, source=fmt, actor=cli_actor()), lb, storage=storage,
                                   actor=cli_actor(), skip_invalid=skip_invalid)
    except ImportRefused as exc:
        _refused(exc, reg.settings.home, as_json)
    summary = result.summary()
    human = (f"imported {path} ({fmt}) into project {project!r}: {summary['images_new']} new images, "
             f"{summary['annotations']} new annotations ({summary['annotations_unchanged']} unchanged), "
             f"{summary['categories_new']} new classes")
    if result.report.problems:
        human += "\n" + result.report.to_text(20)
    emit(summary, as_json, human)


def _refused(exc: ImportRefused, home: Path, as_json: bool, report_path: Path | None = None) -> NoReturn:
    """A refused import: the report written, one line (or a JSON error) and exit 2."""
    written = exc.report.write(report_path or home / "reports" / f"import-refused-{time.strftime('%Y%m%d-%H%M%S')}.json")
    if as_json:
        first = exc.report.errors[0] if exc.report.errors else None
        click.echo(orjson.dumps({"error": f"{str(exc).splitlines()[0]} {first}" if first else str(exc).splitlines()[0],
                                 "errors": len(exc.report.errors),
                                 "warnings": len(exc.report.warnings), "report": str(written)}).decode())
    click.echo(f"error: {exc}\nreport: {written}", err=True)
    sys.exit(2)


@import_.command("yolo")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--task", type=click.Choice(["auto", "detect", "segment", "pose", "obb"]), default="auto",
              show_default=True, help="What 8-value lines are: polygons (auto/segment) or oriented boxes (obb).")
@project_option
@click.option("--skip-invalid", is_flag=True, help="Import the valid records and report the rest.")
@json_option
def import_yolo_cmd(path: Path, task: str, project: str, skip_invalid: bool, as_json: bool) -> None:
    """Import an Ultralytics YOLO dataset (data.yaml: detect, segment, pose, obb) or a Darknet one (obj.data).

    The source's splits (train/val/test) become the images' `source_split` metadata."""
    _layout_command("yolo", path, project, skip_invalid, as_json, task=task)


@import_.command("cvat")
@click.argument("path", type=click.Path(path_type=Path))
@project_option
@click.option("--skip-invalid", is_flag=True, help="Import the valid records and report the rest.")
@json_option
def import_cvat_cmd(path: Path, project: str, skip_invalid: bool, as_json: bool) -> None:
    """Import CVAT's XML ("CVAT for images 1.1" or "CVAT for video 1.1"): a file, or an export folder with images/."""
    _layout_command("cvat", path, project, skip_invalid, as_json)


@import_.command("voc")
@click.argument("path", type=click.Path(path_type=Path))
@project_option
@click.option("--skip-invalid", is_flag=True, help="Import the valid records and report the rest.")
@json_option
def import_voc_cmd(path: Path, project: str, skip_invalid: bool, as_json: bool) -> None:
    """Import a Pascal VOC folder (Annotations/*.xml, JPEGImages, ImageSets/Main splits)."""
    _layout_command("voc", path, project, skip_invalid, as_json)


@import_.command("imagenet")
@click.argument("path", type=click.Path(path_type=Path))
@project_option
@click.option("--skip-invalid", is_flag=True, help="Import the valid records and report the rest.")
@json_option
def import_imagenet_cmd(path: Path, project: str, skip_invalid: bool, as_json: bool) -> None:
    """Import an ImageNet layout (a folder per label, or <split>.txt + synsets.txt) as image-level labels."""
    _layout_command("imagenet", path, project, skip_invalid, as_json)


@import_.command("video")
@click.argument("file", type=click.Path(path_type=Path))
@project_option
@click.option("--every", type=int, help="Keep every N-th frame (0, N, 2N, ...); default: every frame.")
@click.option("--fps", type=float, help="Keep F frames per second of video time instead.")
@click.option("--max-frames", type=int, help="Stop after M kept frames.")
@json_option
def import_video_cmd(file: Path, project: str, every: int | None, fps: float | None, max_frames: int | None,
                     as_json: bool) -> None:
    """Import a video: the video itself, its sampled frames, and one image per frame (JPEG).

    The video is identified by its path, a frame by the video and its index: importing the same
    video again adds nothing, another sampling of it adds only the new frames. Frame images are
    named like a CVAT video task's (clip/frame_000042.jpg) and are images like any other.
    """
    from dsgen_core.formats.video import check_sampling, import_video

    check_sampling(every, fps, max_frames)  # before the registry is opened
    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    with reg.session(bulk=True) as s:
        result = import_video(s, ensure_project(s, project, source="video", actor=cli_actor()), file, storage=storage,
                              sources_dir=local_sources_dir(storage, reg.settings.home), every=every, fps=fps,
                              max_frames=max_frames, actor=cli_actor(), progress=sys.stderr.isatty() and not as_json)
    summary = result.summary()
    rate = f" at {result.fps:g} fps" if result.fps else ""
    human = (f"imported {file} into project {project!r} in {summary['seconds']} s: {result.codec} "
             f"{result.width}x{result.height}, {result.frame_count or '?'} frames{rate}; "
             f"{result.frames_sampled} sampled, {summary['frames_new']} new frames, {summary['images_new']} new images")
    emit(summary, as_json, human)
