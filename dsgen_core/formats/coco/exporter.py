"""Export of any selection of the registry as one COCO file.

What an import kept comes back: COCO ids (each one that is unique in the selection), unknown keys of
images, categories and annotations, CVAT attributes (occluded, rotation, track_id, keyframe,
custom), keypoints and skeletons, masks as RLE in the shape the source used, and the file's own
``info``/``licenses``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from dsgen_core.registry.ingest import HINTS
from dsgen_core.registry.ontology import ontology_classes
from dsgen_core.registry.schema import Annotation, Asset, ImportBatch, LabelClass, Project
from dsgen_core.storage.masks import MaskStore, to_uncompressed_rle

DEFAULT_INFO = {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""}
DEFAULT_LICENSES = [{"name": "", "id": 0, "url": ""}]


class CategorySource(Protocol):
    """What a category is written from: a live :class:`LabelClass` or a frozen version's copy of one."""

    @property
    def id(self) -> int: ...
    @property
    def display_name(self) -> str: ...
    @property
    def supercategory(self) -> str | None: ...
    @property
    def keypoint_spec(self) -> dict[str, Any] | None: ...
    @property
    def external_id(self) -> int | None: ...
    @property
    def extra(self) -> dict[str, Any] | None: ...


def source_ids(values: Sequence[int | None]) -> list[int]:
    """Each record's source id where it has one that no earlier record took; fresh ids for the rest.

    Ids stay unique whatever was merged into one export (two exports that both number from 1),
    and every id that is unique is the one the source wrote.
    """
    out: list[int | None] = []
    taken: set[int] = set()
    for v in values:
        if v is not None and v not in taken:
            taken.add(v)
            out.append(v)
        else:
            out.append(None)
    fresh = max(taken, default=0) + 1
    ids: list[int] = []
    for v in out:
        if v is None:
            v, fresh = fresh, fresh + 1
        ids.append(v)
    return ids


def build_coco(
    session: Session,
    project: Project,
    masks: MaskStore,
    *,
    asset_ids: Select | Sequence[int] | None = None,
    include_model: bool = True,
) -> dict[str, Any]:
    """The COCO document for the project's assets (or the given subset), from the live registry."""
    stmt = select(Asset).where(Asset.project_id == project.id, Asset.deleted_at.is_(None)).order_by(Asset.id)
    if asset_ids is not None:
        stmt = stmt.where(Asset.id.in_(asset_ids))
    assets = list(session.scalars(stmt))
    ann_stmt = (
        select(Annotation)
        .join(Asset, Asset.id == Annotation.asset_id)
        .where(Asset.project_id == project.id, Asset.deleted_at.is_(None))
        .order_by(Annotation.id)
    )
    if asset_ids is not None:
        ann_stmt = ann_stmt.where(Annotation.asset_id.in_(asset_ids))
    if not include_model:
        ann_stmt = ann_stmt.where(Annotation.source == "human")
    anns = list(session.scalars(ann_stmt))
    base = ontology_classes(session, project.default_ontology_version_id) if project.default_ontology_version_id else []
    return coco_document(session, assets, anns, base, masks)


def coco_document(
    session: Session,
    assets: Sequence[Asset],
    anns: Sequence[Any],
    base_classes: Sequence[CategorySource],
    masks: MaskStore,
) -> dict[str, Any]:
    """Assemble COCO from assets and annotation rows (live ``Annotation``s or a version's snapshot rows).

    Categories are ``base_classes`` plus any other class the annotations use (read from the live
    registry; a frozen version passes all of its own classes, so none is read).
    """
    classes = {lc.id: lc for lc in base_classes}
    missing = {a.label_class_id for a in anns if a.label_class_id is not None} - classes.keys()
    if missing:
        classes.update({lc.id: lc for lc in session.scalars(select(LabelClass).where(LabelClass.id.in_(missing)))})
    ordered = sorted(classes.values(), key=lambda c: (c.external_id is None, c.external_id or 0, c.id))
    cat_id = dict(zip((c.id for c in ordered), source_ids([c.external_id for c in ordered]), strict=True))
    categories = []
    for c in ordered:
        cat: dict[str, Any] = {"id": cat_id[c.id], "name": c.display_name,
                               "supercategory": c.supercategory if c.supercategory is not None else ""}
        if c.keypoint_spec:
            if c.keypoint_spec.get("keypoints") is not None:
                cat["keypoints"] = c.keypoint_spec["keypoints"]
            if c.keypoint_spec.get("skeleton") is not None:
                cat["skeleton"] = c.keypoint_spec["skeleton"]
        cat.update(c.extra or {})
        categories.append(cat)

    image_id = dict(zip((a.id for a in assets), source_ids([a.external_id for a in assets]), strict=True))
    images = []
    for a in assets:
        im: dict[str, Any] = {"id": image_id[a.id], "width": a.width, "height": a.height, "file_name": a.file_name}
        im.update(a.extra or {})
        images.append(im)

    anns = [a for a in anns if a.asset_id in image_id]
    annotations = []
    for a, ann_id in zip(anns, source_ids([a.external_id for a in anns]), strict=True):
        extra = dict(a.extra or {})
        hints = extra.pop(HINTS, {})
        out: dict[str, Any] = {"id": ann_id, "image_id": image_id[a.asset_id]}
        if a.label_class_id is not None:
            out["category_id"] = cat_id[a.label_class_id]
        elif "category_id" in hints:
            out["category_id"] = hints["category_id"]  # a caption file's placeholder
        if a.mask_uri:
            rle = masks.get(a.mask_uri)
            out["segmentation"] = to_uncompressed_rle(rle) if hints.get("rle") == "list" else rle
        elif a.polygon is not None:
            out["segmentation"] = a.polygon
        elif not hints.get("no_segmentation"):
            out["segmentation"] = hints.get("segmentation", [])
        if not hints.get("no_area"):
            out["area"] = hints.get("area", a.area if a.area is not None else 0.0)
        if a.bbox_w is not None and not hints.get("no_bbox"):
            out["bbox"] = [a.bbox_x, a.bbox_y, a.bbox_w, a.bbox_h]
        if not hints.get("no_iscrowd"):
            out["iscrowd"] = int(a.iscrowd)
        if a.attributes is not None:
            out["attributes"] = a.attributes
        if a.keypoints is not None:
            out["keypoints"] = a.keypoints
            out["num_keypoints"] = a.num_keypoints
        if a.caption is not None:
            out["caption"] = a.caption
        if a.confidence is not None:
            out["score"] = a.confidence
        out.update(extra)
        annotations.append(out)

    header = _header(session, list(assets))
    return {**header, "categories": categories, "images": images, "annotations": annotations}


def _header(session: Session, assets: list[Asset]) -> dict[str, Any]:
    batch_ids = sorted({a.import_batch_id for a in assets if a.import_batch_id is not None})
    header: dict[str, Any] = {}
    if batch_ids:
        batch = session.get(ImportBatch, batch_ids[0])
        assert batch is not None  # a foreign key: the asset's batch exists
        header = dict(batch.header or {})
    header.setdefault("licenses", DEFAULT_LICENSES)
    header.setdefault("info", DEFAULT_INFO)
    return header


def write_coco(doc: dict[str, Any], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))
    return out
