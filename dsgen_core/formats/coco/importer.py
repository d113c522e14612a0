"""Import of CVAT "COCO 1.0" exports and plain COCO into the registry, through the ingest.

This module translates: it reads and validates the file (:mod:`.reader`), hashes and measures the
images, and hands the ingest (:mod:`dsgen_core.registry.ingest`) images keyed by their path,
classes keyed by name and objects keyed by their COCO id (``coco:<id>``; panoptic segments
``coco-panoptic:<id>``). The ingest does identity, merging, conflicts and every write, in the
caller's transaction; all-or-nothing unless ``skip_invalid``.

    with registry.session(bulk=True) as s:
        result = import_coco(s, ensure_project(s, "p"), "instances.json", images="images/",
                             storage=storage, sources_dir=home / "registry", actor="cli")
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from dsgen_core.errors import DsgenError
from dsgen_core.formats.coco.reader import CocoFile, read_coco
from dsgen_core.formats.images import ImageProblem, ImageSource, staging_root, sweep_staging, unpack_zip
from dsgen_core.formats.report import ValidationReport
from dsgen_core.registry.bulk import gc_paused
from dsgen_core.registry.ingest import ClassRecord, ImageRecord, IngestBatch, IngestResult, OnConflict, ingest
from dsgen_core.registry.schema import Asset, LabelClass, Project
from dsgen_core.storage import LocalStorage, Storage


@dataclass
class ImportResult:
    """What an import did: the ingest's counts, the validation report and where it was written."""

    project: str
    kind: str  # dataset | results | panoptic | sa1b
    categories: int
    ingest: IngestResult
    report: ValidationReport
    report_path: Path | None = None
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        r = self.ingest
        return {
            "batch_id": r.batch_id, "project": self.project, "kind": self.kind,
            "images": r.images, "images_new": r.images_new, "images_existing": r.images_existing,
            "images_updated": r.images_updated,
            "annotations": r.objects_new, "annotations_merged": r.objects_merged,
            "annotations_unchanged": r.objects_unchanged, "annotations_deleted": r.objects_deleted,
            "conflicts": r.conflicts, "categories": self.categories, "categories_new": r.classes_new,
            "masks": r.masks, "tracks": r.tracks, "change_seq": r.change_seq,
            "errors": len(self.report.errors), "warnings": len(self.report.warnings),
            "skipped": dict(self.report.skipped),
            "report": str(self.report_path) if self.report_path else None,
            "seconds": round(self.seconds, 3),
        }


def import_coco(
    session: Session,
    project: Project,
    annotations: Path | str,
    *,
    storage: Storage,
    sources_dir: Path,
    images: Path | str | None = None,
    actor: str | None = None,
    skip_invalid: bool = False,
    on_conflict: OnConflict = "error",
    create_missing: bool = False,
    panoptic_dir: Path | str | None = None,
    progress: bool = False,
) -> ImportResult:
    """Import one COCO file (and its images) into ``project``.

    ``sources_dir`` is the local folder a ZIP of images is unpacked into (images are read by path
    later: thumbnails, training). Raises :class:`~dsgen_core.formats.report.ImportRefused` with the
    report on bad input; nothing is written then, and an unpacked ZIP is removed again.
    """
    t0 = time.perf_counter()
    path = Path(annotations)
    with gc_paused():
        coco = read_coco(path, panoptic_dir=Path(panoptic_dir) if panoptic_dir else None)
    source = _image_source(images, sources_dir)
    try:
        with gc_paused():
            batch = _translate(session, project, coco, source, create_missing=create_missing, progress=progress)
            result = ingest(session, project, batch, storage=storage, actor=actor, on_conflict=on_conflict,
                            skip_invalid=skip_invalid, progress=progress)
    except BaseException:
        if source is not None:
            source.cleanup()
        raise
    if source is not None and source.staged:
        if result.images_new or result.images_updated:
            source.keep()
        else:
            source.cleanup()
    return ImportResult(project.name, coco.kind, len(coco.categories), result, coco.report,
                        seconds=time.perf_counter() - t0)


def _image_source(images: Path | str | None, sources_dir: Path) -> ImageSource | None:
    if images is None:
        return None
    ipath = Path(images)
    if ipath.is_dir():
        return ImageSource(ipath)
    if ipath.is_file():
        unpacked = staging_root(sources_dir)
        sweep_staging(unpacked)
        return unpack_zip(ipath, unpacked / uuid.uuid4().hex)
    raise DsgenError(f"{ipath}: image folder or ZIP not found")


def local_sources_dir(storage: Storage, home: Path) -> Path:
    """Where ZIPs of images are unpacked: the storage folder, or ``$DSGEN_HOME/registry`` when storage is S3."""
    return storage.root if isinstance(storage, LocalStorage) else home / "registry"


def _translate(session: Session, project: Project, coco: CocoFile, source: ImageSource | None, *,
               create_missing: bool, progress: bool) -> IngestBatch:
    report, fname = coco.report, str(coco.path)
    results = coco.kind == "results"
    if results:
        images, classes = _results_targets(session, project, coco, create_missing)
    else:
        images = _probed_images(coco, source, progress)
        shapes: dict[Any, str] = {}  # a class's shape is the geometry of its first object
        for a in coco.annotations:
            shapes.setdefault(a.class_ref, a.geometry_type)
        classes = [ClassRecord(c.coco_id, c.name, c.name, c.supercategory,
                               {"keypoints": c.keypoints, "skeleton": c.skeleton}
                               if c.keypoints is not None or c.skeleton is not None else None,
                               shapes.get(c.coco_id), c.coco_id, c.extra, f"categories (id={c.coco_id})")
                   for c in coco.categories]
    report.skipped["annotations"] += coco.raw_annotation_count - len(coco.annotations)
    report.skipped["images"] += coco.raw_image_count - len(images) if not results else 0
    return IngestBatch(
        operation="import", audit_action="import.coco", format=f"coco/{coco.kind}",
        source_uri=str(coco.path.resolve()), content_sha256=coco.raw_bytes_sha256,
        # Results carry a detector's own numbering (if any), never the ground truth's object ids.
        namespace={"panoptic": "coco-panoptic", "results": "coco-results"}.get(coco.kind, "coco"),
        images=images, classes=classes, objects=coco.annotations, report=report, file=fname,
        header=coco.header or None, source="model" if results else "human",
        detail={"kind": coco.kind},
    )


def _probed_images(coco: CocoFile, source: ImageSource | None, progress: bool) -> list[ImageRecord]:
    """Every valid image record; with a folder, hashed and measured, and mismatches with the JSON are errors."""
    report, fname = coco.report, str(coco.path)
    out = [ImageRecord(im.coco_id, im.source_key, im.file_name, im.width, im.height, im.coco_id, im.extra,
                       record=im.record) for im in coco.images]
    if source is None or not out:
        return out
    with tqdm(total=len(out), desc="hashing images", unit="img", disable=not progress, leave=False) as bar:
        probed = source.probe_all([im.file_name for im in out], bar)
    kept = []
    for im, res in zip(out, probed, strict=True):
        if isinstance(res, ImageProblem):
            report.error(fname, im.record, "file_name", str(res))
            continue
        if im.width is not None and (im.width, im.height) != (res.width, res.height):
            report.error(fname, im.record, "width/height",
                         f"JSON says {im.width}x{im.height}, the file is {res.width}x{res.height}")
            continue
        if im.width is None:
            im.width, im.height = res.width, res.height
        im.file = res
        kept.append(im)
    return kept


def _results_targets(session: Session, project: Project, coco: CocoFile,
                     create_missing: bool) -> tuple[list[ImageRecord], list[ClassRecord]]:
    """A results list names images and classes by their COCO ids in the ground truth already imported."""
    report, fname = coco.report, str(coco.path)
    # The reader refuses results whose image_id or category_id is not an integer.
    image_ids = sorted(cast(set[int], {a.image_ref for a in coco.annotations}))
    by_ext: dict[int | None, list[tuple[int, str]]] = {}
    for aid, ext, name in session.execute(select(Asset.id, Asset.external_id, Asset.file_name).where(
            Asset.project_id == project.id, Asset.external_id.in_(image_ids))):
        by_ext.setdefault(ext, []).append((aid, name))
    images: list[ImageRecord] = []
    unknown: dict[Any, str] = {}  # image id -> why it names no image of the project
    for iid in image_ids:
        found = by_ext.get(iid, [])
        if len(found) == 1:
            images.append(ImageRecord(iid, "", "", asset_id=found[0][0]))
        elif len(found) > 1:
            names = ", ".join(repr(n) for _, n in found[:3])
            unknown[iid] = (f"{len(found)} images of project {project.name!r} have COCO id {iid} ({names}); "
                            "import the results into the project of their ground truth alone")
        elif create_missing:
            images.append(ImageRecord(iid, f"coco-image:{iid}", str(iid), external_id=iid))
        else:
            unknown[iid] = (f"no image with COCO id {iid} in project {project.name!r} (import the ground truth "
                            "first, or pass --create-missing)")
    class_ids = sorted(cast(set[int], {a.class_ref for a in coco.annotations if a.class_ref is not None}))
    by_class = dict(session.execute(select(LabelClass.external_id, LabelClass.key).where(
        LabelClass.project_id == project.id, LabelClass.external_id.in_(class_ids))).all())
    classes: list[ClassRecord] = []
    for cid in class_ids:
        if cid in by_class:
            classes.append(ClassRecord(cid, by_class[cid]))
        elif create_missing:
            classes.append(ClassRecord(cid, f"category_{cid}", f"category_{cid}", external_id=cid))
    known_classes = {c.ref for c in classes}
    for a in coco.annotations:
        if a.image_ref in unknown:
            report.error(fname, f"annotations[{a.position}] (image_id={a.image_ref})", "image_id", unknown[a.image_ref])
        if a.class_ref is not None and a.class_ref not in known_classes:
            report.error(fname, f"annotations[{a.position}] (category_id={a.class_ref})", "category_id",
                         f"no label class with COCO id {a.class_ref} in project {project.name!r}")
    return images, classes
