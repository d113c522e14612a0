"""``dsgen export coco`` and ``dsgen export yolo`` (``export onnx`` is in :mod:`.commands_models`)."""

from __future__ import annotations

from pathlib import Path

import click

from dsgen_core.cli.common import emit, json_option, open_registry, project_option
from dsgen_core.errors import DsgenError
from dsgen_core.formats.coco.exporter import build_coco, write_coco
from dsgen_core.formats.version_export import export_version_coco, export_version_yolo
from dsgen_core.query import compile_query
from dsgen_core.registry.projects import get_project
from dsgen_core.storage import open_storage
from dsgen_core.storage.masks import MaskStore


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
        ids = compile_query(query, project_id=p.id, session=s) if query.strip() else None
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


@click.command("datamaker")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--query", default="", help="The images to export ('' for all).")
@project_option
@json_option
def export_datamaker_cmd(out_dir: Path, query: str, project: str, as_json: bool) -> None:
    """Write the images a query selects as Datamaker annotatorData (one file per source file or image)."""
    from dsgen_core.formats.datamaker.exporter import export_datamaker

    reg = open_registry()
    storage = open_storage(reg.settings.storage_root)
    with reg.session() as s:
        r = export_datamaker(s, get_project(s, project), query, out_dir, masks=MaskStore(storage))
    data = {"out": str(out_dir), "files": len(r.files), "assets": r.assets, "annotations": r.annotations,
            "skipped": r.skipped}
    emit(data, as_json, f"wrote {len(r.files)} annotatorData files ({r.assets} assets, {r.annotations} annotations) "
                        f"to {out_dir}" + (f"; not representable: {r.skipped}" if r.skipped else ""))


def _layout_export(fmt: str, tag: str, out_dir: Path, project: str, as_json: bool) -> None:
    from dsgen_core.formats.cvat_xml import export_cvat
    from dsgen_core.formats.voc_imagenet import export_imagenet, export_voc

    reg = open_registry()
    with reg.session() as s:
        p = get_project(s, project)
        masks = MaskStore(open_storage(reg.settings.storage_root))
        if fmt == "voc":
            r = export_voc(s, p, tag, out_dir, masks=masks)
        elif fmt == "cvat":
            r = export_cvat(s, p, tag, out_dir, masks=masks)
        else:
            r = export_imagenet(s, p, tag, out_dir)
    emit({"out": str(out_dir), **r}, as_json, f"wrote {fmt} to {out_dir}: {r}")


@click.command("voc")
@click.argument("tag")
@click.argument("out_dir", type=click.Path(path_type=Path))
@project_option
@json_option
def export_voc_cmd(tag: str, out_dir: Path, project: str, as_json: bool) -> None:
    """Write a frozen version as Pascal VOC (Annotations XML, JPEGImages, ImageSets/Main per split)."""
    _layout_export("voc", tag, out_dir, project, as_json)


@click.command("cvat")
@click.argument("tag")
@click.argument("out_dir", type=click.Path(path_type=Path))
@project_option
@json_option
def export_cvat_cmd(tag: str, out_dir: Path, project: str, as_json: bool) -> None:
    """Write a frozen version as "CVAT for images 1.1" (annotations.xml with its labels, images/)."""
    _layout_export("cvat", tag, out_dir, project, as_json)


@click.command("imagenet")
@click.argument("tag")
@click.argument("out_dir", type=click.Path(path_type=Path))
@project_option
@json_option
def export_imagenet_cmd(tag: str, out_dir: Path, project: str, as_json: bool) -> None:
    """Write a frozen version as ImageNet folders (<split>/<class>/<image>) for classification."""
    _layout_export("imagenet", tag, out_dir, project, as_json)


@click.command("convert")
@click.option("--from", "source", type=click.Choice(["coco", "datamaker", "yolo", "voc", "imagenet", "cvat"]),
              required=True)
@click.option("--to", "target", type=click.Choice(["coco", "datamaker", "yolo", "voc", "imagenet", "cvat"]),
              required=True)
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--images", type=click.Path(path_type=Path), help="COCO/Datamaker: the images' folder.")
@json_option
def convert_cmd(source: str, target: str, src: Path, out: Path, images: Path | None, as_json: bool) -> None:
    """Convert SRC (a file or folder in --from's format) to OUT in --to's, through the registry's model.

    Your registry is not touched: the conversion uses one of its own in a temporary folder. The loss
    report says what the target format cannot hold."""
    from dsgen_core.formats.convert import convert

    r = convert(source, src, target, out, images=images)
    lines = [f"converted {src} ({source}) to {out} ({target}): {r.images} images, {r.objects} objects"]
    lines += [f"  lost: {what}: {n}" for what, n in r.lost.items()] or ["  nothing lost"]
    emit({"source": source, "target": target, "images": r.images, "objects": r.objects, "loss_report": r.lost,
          "written": r.written}, as_json, "\n".join(lines))
