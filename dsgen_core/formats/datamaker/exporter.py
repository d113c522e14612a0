"""Export a selection as Datamaker annotatorData: one file per source file (per image otherwise).

Objects that came from Datamaker are written back as they were written (key order, flags,
``label``, point ids, the compression of a segmentation, coordinates as typed) unless their
geometry changed since, in which case the geometry is written from the registry. Objects from
elsewhere (COCO, CVAT, a model) become annotations of the matching tool, with the class and
attributes as a flattened classification and a ``dsgen_<id>`` id. Output is stable: exporting
the same registry content twice gives the same bytes.

    written = export_datamaker(session, project, "tag:review", Path("out"))
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import orjson
from pycocotools import mask as mask_utils
from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError
from dsgen_core.formats.datamaker.importer import NAMESPACE, TOOLS, pixel_indices
from dsgen_core.query import run_query
from dsgen_core.registry.schema import (
    Annotation,
    AnnotationGroup,
    AnnotationRelation,
    Asset,
    LabelClass,
    Project,
)
from dsgen_core.storage.masks import MaskStore

_TOOL_OF_GEOMETRY = {g: t for t, g in TOOLS.items()}


@dataclass
class DatamakerExport:
    files: list[Path]
    assets: int
    annotations: int
    skipped: dict[str, int]  # what annotatorData cannot hold (captions), by kind


def export_datamaker(session: Session, project: Project, query: str, out_dir: Path, *,
                     masks: MaskStore) -> DatamakerExport:
    ids = run_query(session, project, query)
    if not ids:
        raise DsgenError(f"no images match {query!r} in project {project.name!r}: nothing to export")
    assets: list[Any] = []
    for i in range(0, len(ids), 5_000):
        assets += session.execute(select(Asset.id, Asset.file_name, Asset.width, Asset.height, Asset.extra)
                                  .where(Asset.id.in_(ids[i:i + 5_000]), Asset.asset_type == "image")).all()
    classes = {c.id: c.key for c in session.scalars(select(LabelClass).where(LabelClass.project_id == project.id))}
    docs: dict[str, dict[str, Any]] = {}
    n_ann = 0
    skipped: dict[str, int] = defaultdict(int)
    metas = {a.id: _meta(a) for a in assets}
    names_used = {m["file"] for m in metas.values() if m}  # the files Datamaker wrote keep their names
    owner: dict[str, Any] = {}  # file name -> the work (assignmentId) it holds
    for a in sorted(assets, key=lambda r: r.id):
        meta = metas[a.id]
        if meta:
            fname, asset_key = meta["file"], meta["asset"]
            work = meta.get("assignmentId", meta["file"])
            if owner.setdefault(fname, work) != work:  # two works' files of one name
                fname = f"{Path(fname).stem}_{work}.json"
        else:
            stem = Path(a.file_name).stem or f"asset_{a.id}"
            fname = f"{stem}.json" if f"{stem}.json" not in names_used else f"{stem}_{a.id}.json"
            asset_key = "image_1"
            names_used.add(fname)
        doc = docs.setdefault(fname, {"extra": {}, "annotations": {}, "annotationsData": {}, "relations": {},
                                      "annotationGroups": {}})
        if meta and "assignmentId" in meta:
            doc["assignmentId"] = meta["assignmentId"]
        if meta is None or meta.get("has_extra"):
            doc["extra"][asset_key] = orjson.loads(meta["extra"]) if meta else {
                "file_name": a.file_name, "width": a.width, "height": a.height}
        rows = list(session.execute(select(Annotation).where(Annotation.asset_id == a.id).order_by(Annotation.id))
                    .scalars())
        anns, datas, id_of = [], [], {}
        for r in rows:
            if r.geometry_type == "caption":
                skipped["captions"] += 1
                continue
            if r.confidence is not None:
                skipped["model scores (the annotation is written, its score is not)"] += 1
            if r.iscrowd:
                skipped["iscrowd flags (the annotation is written, the flag is not)"] += 1
            if r.geometry_type == "keypoints" and r.keypoints and len(r.keypoints) > 3:
                skipped["keypoints beyond the first of an object (a keypoint annotation is one point)"] += 1
            if r.geometry_type in ("polygon", "polyline") and r.polygon and len(r.polygon) > 1:
                skipped["polygon parts beyond the first (an annotatorData polygon has one part)"] += 1
            ann, data = _annotation(r, classes, a, masks)
            id_of[r.id] = ann["id"]
            anns.append(ann)
            if data is not None:
                datas.append(data)
        n_ann += len(anns)
        doc["annotations"][asset_key] = anns
        doc["annotationsData"][asset_key] = datas
        rels = _relations(session, list(id_of), id_of)
        if rels:
            doc["relations"][asset_key] = rels
        groups = _groups(session, a.id)
        if groups:
            doc["annotationGroups"][asset_key] = groups
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, doc in sorted(docs.items()):
        target = out_dir / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        os.replace(tmp, target)
        written.append(target)
    return DatamakerExport(written, len(assets), n_ann, dict(skipped))


def _meta(a: Any) -> dict[str, Any] | None:
    """What a Datamaker import kept about the asset, if it has the import's shape and names a file inside
    the export (another format's unknown keys may be called "datamaker" too)."""
    meta = (a.extra or {}).get(NAMESPACE)
    if not (isinstance(meta, dict) and isinstance(meta.get("file"), str) and isinstance(meta.get("asset"), str)
            and isinstance(meta.get("extra"), str)):
        return None
    rel = PurePosixPath(meta["file"])
    if rel.is_absolute() or ".." in rel.parts or "\\" in meta["file"] or not rel.name.endswith(".json"):
        return None
    return meta


def _annotation(r: Annotation, classes: dict[int, str], a: Any, masks: MaskStore,
                ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    keep = (r.extra or {}).get(NAMESPACE) or {}
    ann: dict[str, Any] = orjson.loads(keep["a"]) if "a" in keep else {}
    data: dict[str, Any] | None = orjson.loads(keep["d"]) if "d" in keep else None
    attrs = dict(r.attributes or {})
    if "instanceId" in ann:
        attrs.pop("track_id", None)  # the instance's track, derived from instanceId
    if data is not None and isinstance(data.get("coordinate"), dict) and "rotation" in data["coordinate"]:
        attrs.pop("rotation", None)  # derived (degrees) from the coordinate's radians
    cls: dict[str, Any] | None = None
    if r.label_class_id is not None or attrs:
        cls = {"class": classes.get(r.label_class_id or -1), **attrs}
    if ann:
        written = ann.get("classification")
        if written is None and cls in (None, {"class": None}):
            cls = None
        elif isinstance(written, dict) and cls is not None:
            # The classification as written where it still says the same; the registry's where it changed.
            cls = {k: cls[k] for k in written if k in cls} | {k: v for k, v in cls.items() if k not in written}
        if cls != written and "label" in ann:
            ann["label"] = _label(cls)  # the label lists the class and the chosen values: it follows them
        ann["classification"] = cls
        tool = ann["tool"]
    else:
        tool = _TOOL_OF_GEOMETRY.get(r.geometry_type, "classification")
        ann = {"id": r.source_key.split(":", 1)[1] if r.source_key and r.source_key.startswith(f"{NAMESPACE}:")
               else f"dsgen_{r.id}", "tool": tool, "isLocked": False, "isVisible": True, "classification": cls,
               "label": _label(cls)}
    if tool == "classification" and data is None:
        return ann, None
    data = data if data is not None else {"id": ann["id"]}
    key = "pixel_indices" if tool == "segmentation" else "coordinate"
    value = _geometry(r, data, masks)
    if value is not None:
        data[key] = value
    return ann, data


def _label(cls: dict[str, Any] | None) -> list[str]:
    if not cls:
        return []
    out = [str(cls["class"])] if cls.get("class") else []
    for k, v in cls.items():
        if k != "class":
            out += [str(x) for x in v] if isinstance(v, list) else [str(v)] if isinstance(v, str) else []
    return out


def _geometry(r: Annotation, data: dict[str, Any], masks: MaskStore) -> Any:
    """The geometry as annotatorData writes it: the source's own while the registry's is unchanged."""
    original = data.get("coordinate")
    g = r.geometry_type
    if g == "bbox" and r.bbox_w is not None:
        c: dict[str, Any] = {"x": r.bbox_x, "y": r.bbox_y, "width": r.bbox_w, "height": r.bbox_h}
        rotation = (r.attributes or {}).get("rotation")
        if rotation:
            c["rotation"] = math.radians(float(rotation))
        if isinstance(original, dict) and all(_same(original.get(k), v) for k, v in c.items()):
            return original
        return c
    if g in ("polygon", "polyline") and r.polygon:
        pts = r.polygon[0]
        if isinstance(original, list) and len(original) * 2 == len(pts) and all(
                _same(p.get("x"), pts[2 * i]) and _same(p.get("y"), pts[2 * i + 1]) for i, p in enumerate(original)):
            return original
        return [{"x": pts[i], "y": pts[i + 1]} for i in range(0, len(pts), 2)]
    if g == "keypoints" and r.keypoints:
        c = {"x": r.keypoints[0], "y": r.keypoints[1]}
        if isinstance(original, dict) and all(_same(original.get(k), v) for k, v in c.items()):
            return original
        return c
    if g == "mask" and r.mask_uri:
        idx = np.flatnonzero(mask_utils.decode(masks.get(r.mask_uri)).reshape(-1))  # row-major (height, width)
        compressed = bool(data.get("isCompressed"))
        written = data.get("pixel_indices")
        if written is not None and np.array_equal(np.sort(pixel_indices(data)), idx):
            return written
        if compressed:
            starts = idx[np.r_[True, np.diff(idx) != 1]] if idx.size else idx
            ends = idx[np.r_[np.diff(idx) != 1, True]] if idx.size else idx
            return [int(v) for st, e in zip(starts, ends, strict=True) for v in (st, e - st + 1)]
        return [int(v) for v in idx]
    return original


def _same(a: Any, b: Any) -> bool:
    try:
        return a is not None and abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))
    except (TypeError, ValueError):
        return False


def _relations(session: Session, ann_ids: list[int], id_of: dict[int, str]) -> list[dict[str, Any]]:
    if not ann_ids:
        return []
    out = []
    for r in session.scalars(select(AnnotationRelation).where(AnnotationRelation.from_annotation_id.in_(ann_ids))
                             .order_by(AnnotationRelation.id)):
        kept = (r.classification or {}).get(NAMESPACE)
        if kept is not None:
            out.append(kept)
        elif r.to_annotation_id in id_of:
            out.append({"id": r.external_id or f"{id_of[r.from_annotation_id]}{id_of[r.to_annotation_id]}",
                        "tool": "relation", "isLocked": False, "isVisible": True,
                        "annotationId": id_of[r.from_annotation_id], "targetAnnotationId": id_of[r.to_annotation_id],
                        "classification": (r.classification or {}).get("classification")})
    return out


def _groups(session: Session, asset_id: int) -> list[dict[str, Any]]:
    out = []
    for g in session.scalars(select(AnnotationGroup).where(AnnotationGroup.asset_id == asset_id)
                             .order_by(AnnotationGroup.id)):
        kept = (g.classification or {}).get(NAMESPACE)
        if kept is not None:
            out.append(kept)
    return out
