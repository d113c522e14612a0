"""``dsgen convert``: any supported format to any other, through the registry's model.

The input is imported into a registry of its own (SQLite in a temporary folder, so the user's
registry is not touched), then written in the target format: COCO and Datamaker from the whole
selection, YOLO, Pascal VOC and ImageNet from a version frozen over every image (its splits are
the source's where it named them, ``source_split``, else one ``train`` split). The loss
report counts, before anything is written, what the target cannot hold.

    report = convert("voc", Path("VOC2012"), "yolo", Path("out"))
    report.lost   # {"polygons written as their boxes": 0, "object attributes": 40, ...}
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from dsgen_core.errors import DsgenError
from dsgen_core.formats.report import ValidationReport
from dsgen_core.registry.schema import Annotation, AnnotationGroup, AnnotationRelation

SOURCES = ("coco", "datamaker", "yolo", "voc", "imagenet", "cvat")
TARGETS = ("coco", "datamaker", "yolo", "voc", "imagenet", "cvat")
PROJECT = "convert"


@dataclass
class ConvertReport:
    source: str
    target: str
    images: int
    objects: int
    lost: dict[str, int] = field(default_factory=dict)  # what the target cannot hold -> how many objects
    written: dict[str, Any] = field(default_factory=dict)


def convert(source: str, src: Path, target: str, out: Path, *, images: Path | None = None) -> ConvertReport:
    if source not in SOURCES or target not in TARGETS:
        raise DsgenError(f"convert goes from {', '.join(SOURCES)} to {', '.join(TARGETS)}; not {source} -> {target}")
    from dsgen_core.registry.db import Registry

    with tempfile.TemporaryDirectory(prefix="dsgen-convert-") as home:
        saved = {k: os.environ.get(k) for k in ("DSGEN_HOME", "DSGEN_DATABASE_URL", "DSGEN_STORAGE")}
        os.environ["DSGEN_HOME"] = home
        for k in ("DSGEN_DATABASE_URL", "DSGEN_STORAGE"):
            os.environ.pop(k, None)
        try:
            reg = Registry()
            try:
                return _convert(reg, source, src, target, out, images)
            finally:
                reg.dispose()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _convert(reg: Any, source: str, src: Path, target: str, out: Path, images: Path | None) -> ConvertReport:
    from dsgen_core.formats.coco.importer import import_coco, local_sources_dir
    from dsgen_core.formats.cvat_xml import read_cvat_xml
    from dsgen_core.formats.datamaker.importer import import_datamaker
    from dsgen_core.formats.layout import ingest_layout
    from dsgen_core.formats.voc_imagenet import read_imagenet, read_voc
    from dsgen_core.formats.yolo_import import read_yolo
    from dsgen_core.registry.projects import ensure_project, get_project
    from dsgen_core.storage import open_storage

    storage = open_storage(reg.settings.storage_root)
    with reg.session(bulk=True) as s:
        p = ensure_project(s, PROJECT)
        if source == "coco":
            import_coco(s, p, src, images=images, storage=storage,
                        sources_dir=local_sources_dir(storage, reg.settings.home))
        elif source == "datamaker":
            import_datamaker(s, p, src, images=images, storage=storage)
        else:
            report = ValidationReport()
            reader = {"yolo": read_yolo, "voc": read_voc, "imagenet": read_imagenet, "cvat": read_cvat_xml}[source]
            ingest_layout(s, p, reader(src, report), storage=storage)
    with reg.session() as s:
        p = get_project(s, PROJECT)
        rep = _loss(s, p, source, target)
        rep.written = _write(s, p, target, out, storage)
    return rep


def _loss(session: Any, project: Any, source: str, target: str) -> ConvertReport:
    from dsgen_core.registry.schema import Asset

    a = Annotation
    rows = session.execute(select(a.geometry_type, a.attributes, a.confidence, a.iscrowd, a.polygon)
                           .join(Asset, Asset.id == a.asset_id).where(Asset.project_id == project.id)).all()
    images = session.scalar(select(func.count()).select_from(Asset).where(Asset.project_id == project.id)) or 0
    kinds = Counter(r.geometry_type for r in rows)
    attrs = sum(1 for r in rows if r.attributes)
    scores = sum(1 for r in rows if r.confidence is not None)
    rels = session.scalar(select(func.count()).select_from(AnnotationRelation).join(
        a, a.id == AnnotationRelation.from_annotation_id).join(Asset, Asset.id == a.asset_id)
        .where(Asset.project_id == project.id)) or 0
    groups = session.scalar(select(func.count()).select_from(AnnotationGroup).join(
        Asset, Asset.id == AnnotationGroup.asset_id).where(Asset.project_id == project.id)) or 0
    lost: dict[str, int] = {}
    shape_kinds = ("polygon", "mask", "keypoints", "polyline")
    if target == "voc":
        lost["polygons, masks, keypoints and polylines (written as their boxes)"] = sum(kinds[k] for k in shape_kinds)
        lost["image-level labels and captions"] = kinds["label"] + kinds["caption"]
        lost["model scores"] = scores
    elif target == "yolo":
        lost["object attributes (occluded, rotation, custom)"] = attrs
        lost["image-level labels and captions"] = kinds["label"] + kinds["caption"]
        lost["polygons, masks, keypoints and polylines (written as their boxes; dsgen export yolo --task for others)"] = \
            sum(kinds[k] for k in shape_kinds)
        lost["model scores"] = scores
    elif target == "imagenet":
        lost["object geometry (each image is filed under its objects' classes)"] = sum(
            n for k, n in kinds.items() if k != "label")
        lost["object attributes"] = attrs
    elif target == "datamaker":
        lost["captions"] = kinds["caption"]
        lost["model scores"] = scores
        lost["iscrowd flags"] = sum(1 for r in rows if r.iscrowd)
    elif target == "cvat":
        lost["captions"] = kinds["caption"]
        lost["model scores"] = scores
        lost["polygons of several parts (written as masks)"] = sum(
            1 for r in rows if r.geometry_type == "polygon" and r.polygon and len(r.polygon) > 1)
    elif target == "coco":
        pass
    if target in ("coco", "yolo", "voc", "imagenet", "cvat"):
        lost["relations"] = rels
        lost["groups"] = groups
    return ConvertReport(source, target, images, len(rows), {k: v for k, v in lost.items() if v})


def _write(session: Any, project: Any, target: str, out: Path, storage: Any) -> dict[str, Any]:
    from dsgen_core.formats.coco.exporter import build_coco, write_coco
    from dsgen_core.formats.datamaker.exporter import export_datamaker
    from dsgen_core.formats.layout import SPLIT_KEY
    from dsgen_core.formats.version_export import export_version_yolo
    from dsgen_core.formats.voc_imagenet import export_imagenet, export_voc
    from dsgen_core.registry.schema import AssetMetadata
    from dsgen_core.storage.masks import MaskStore
    from dsgen_core.versions.lifecycle import create_version, freeze_version

    if target == "coco":
        doc = build_coco(session, project, MaskStore(storage))
        out.parent.mkdir(parents=True, exist_ok=True)
        write_coco(doc, out)
        return {"path": str(out), "images": len(doc["images"]), "annotations": len(doc["annotations"])}
    if target == "datamaker":
        r = export_datamaker(session, project, "", out, masks=MaskStore(storage))
        return {"files": len(r.files), "annotations": r.annotations}
    named = session.scalar(select(func.count()).select_from(AssetMetadata).where(AssetMetadata.key == SPLIT_KEY))
    # The source's splits where it named them; otherwise everything is one train split.
    create_version(session, project, "converted", split=None if named else {"train": 1.0}, seed=0,
                   include_model=True, source_splits=True)
    freeze_version(session, project, "converted", storage=storage)
    if target == "yolo":
        y = export_version_yolo(session, project, "converted", out, storage=storage)
        return {"images": y.files, "annotations": y.annotations}
    if target == "voc":
        return export_voc(session, project, "converted", out, masks=MaskStore(storage))
    if target == "cvat":
        from dsgen_core.formats.cvat_xml import export_cvat

        return export_cvat(session, project, "converted", out, masks=MaskStore(storage))
    return export_imagenet(session, project, "converted", out)
