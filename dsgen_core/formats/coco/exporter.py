"""Export of any selection of the registry as one COCO file.

What an import kept comes back: COCO ids (when still unique in the selection), unknown keys of
images, categories and annotations, CVAT attributes (occluded, rotation, track_id, keyframe,
custom), keypoints and skeletons, masks as RLE in the shape the source used, and the file's own
``info``/``licenses``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from dsgen_core.formats.coco.reader import HINTS
from dsgen_core.registry.models import Annotation, Asset, ImportBatch, LabelClass, Project
from dsgen_core.registry.projects import label_classes
from dsgen_core.storage.masks import MaskStore, to_uncompressed_rle

DEFAULT_INFO = {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""}
DEFAULT_LICENSES = [{"name": "", "id": 0, "url": ""}]


def _unique_or_none(values: Sequence[int | None]) -> bool:
    present = [v for v in values if v is not None]
    return len(present) == len(values) and len(set(present)) == len(present)


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
    base = label_classes(session, project.default_ontology_version_id) if project.default_ontology_version_id else []
    return coco_document(session, assets, anns, base, masks)


def coco_document(
    session: Session,
    assets: Sequence[Asset],
    anns: Sequence[Any],
    base_classes: Sequence[LabelClass],
    masks: MaskStore,
) -> dict[str, Any]:
    """Assemble COCO from assets and annotation rows (live ``Annotation``s or a version's snapshot rows).

    Categories are ``base_classes`` plus any older class still used, merged by key.
    """
    classes = {lc.key: lc for lc in base_classes}
    used = {a.label_class_id for a in anns if a.label_class_id is not None}
    class_by_id = {lc.id: lc for lc in classes.values()}
    missing = used - class_by_id.keys()
    if missing:
        for lc in session.scalars(select(LabelClass).where(LabelClass.id.in_(missing))):
            classes.setdefault(lc.key, lc)
            class_by_id[lc.id] = classes[lc.key]
    ordered = sorted(classes.values(), key=lambda c: (c.external_id is None, c.external_id or 0, c.id))
    keep_ids = _unique_or_none([c.external_id for c in ordered])
    cat_id = {c.key: (c.external_id if keep_ids else i) for i, c in enumerate(ordered, 1)}
    categories = []
    for c in ordered:
        cat: dict[str, Any] = {"id": cat_id[c.key], "name": c.display_name, "supercategory": c.supercategory if c.supercategory is not None else ""}
        if c.keypoint_spec:
            if c.keypoint_spec.get("keypoints") is not None:
                cat["keypoints"] = c.keypoint_spec["keypoints"]
            if c.keypoint_spec.get("skeleton") is not None:
                cat["skeleton"] = c.keypoint_spec["skeleton"]
        cat.update(c.extra or {})
        categories.append(cat)

    keep_image_ids = _unique_or_none([a.external_id for a in assets])
    image_id = {a.id: (a.external_id if keep_image_ids else i) for i, a in enumerate(assets, 1)}
    images = []
    for a in assets:
        im: dict[str, Any] = {"id": image_id[a.id], "width": a.width, "height": a.height, "file_name": a.file_name}
        im.update(a.extra or {})
        images.append(im)

    anns = [a for a in anns if a.asset_id in image_id]
    keep_ann_ids = _unique_or_none([a.external_id for a in anns])
    annotations = []
    for i, a in enumerate(anns, 1):
        extra = dict(a.extra or {})
        hints = extra.pop(HINTS, {})
        out: dict[str, Any] = {"id": a.external_id if keep_ann_ids else i, "image_id": image_id[a.asset_id]}
        if a.label_class_id is not None:
            out["category_id"] = cat_id[class_by_id[a.label_class_id].key]
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
        header = dict(session.get(ImportBatch, batch_ids[0]).header or {})
    header.setdefault("licenses", DEFAULT_LICENSES)
    header.setdefault("info", DEFAULT_INFO)
    return header


def write_coco(doc: dict[str, Any], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))
    return out
