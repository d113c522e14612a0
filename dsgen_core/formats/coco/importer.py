"""Import of CVAT "COCO 1.0" exports and plain COCO into the registry.

All-or-nothing: the file is read and validated completely (images hashed and measured) before
the first write, and everything is written in one transaction. With ``skip_invalid`` the valid
records go in and the report lists the rest. Re-importing the same export adds nothing: images
are matched by sha256 (or by file name when no images are given) and annotations of images
already in the registry are matched by content.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from tqdm import tqdm

from dsgen_core.errors import DsgenError
from dsgen_core.formats.coco.reader import CocoFile, read_coco
from dsgen_core.formats.images import ImageInfo, ImageProblem, ImageSource, unpack_zip
from dsgen_core.formats.report import ImportRefused, ValidationReport
from dsgen_core.registry.bulk import insert_rows, lock_for_ids, next_id, now_value, sync_sequence
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.db import Registry
from dsgen_core.registry.models import Annotation, Asset, ImportBatch, LabelClass, Track
from dsgen_core.registry.projects import current_ontology, ensure_project, label_classes
from dsgen_core.storage import LocalStorage, Storage, open_storage
from dsgen_core.storage.masks import MaskStore

ANNOTATION_COLUMNS = (
    "id", "asset_id", "label_class_id", "geometry_type", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "polygon",
    "mask_uri", "keypoints", "num_keypoints", "caption", "area", "iscrowd", "attributes", "extra", "confidence",
    "track_id", "external_id",
)
_MASK_URI, _TRACK_ID = ANNOTATION_COLUMNS.index("mask_uri"), ANNOTATION_COLUMNS.index("track_id")
ASSET_COLUMNS = (
    "id", "project_id", "asset_type", "file_name", "storage_uri", "sha256", "bytes", "width", "height", "mime_type",
    "external_id", "extra", "import_batch_id", "status", "created_at", "updated_at",
)
_FRAME_NO = re.compile(r"(\d+)\D*$")


@dataclass
class ImportResult:
    batch_id: int
    project: str
    kind: str
    counts: dict[str, int]
    report: ValidationReport
    report_path: Path | None = None
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "project": self.project,
            "kind": self.kind,
            **self.counts,
            "errors": len(self.report.errors),
            "warnings": len(self.report.warnings),
            "skipped": dict(self.report.skipped),
            "report": str(self.report_path) if self.report_path else None,
            "seconds": round(self.seconds, 3),
        }


def _dumps(v: Any) -> str | None:
    return None if v is None else orjson.dumps(v).decode()


def _fingerprint(label_class_id: int | None, gtype: str, bbox: Any, polygon: Any, counts: str | None,
                 keypoints: Any, caption: str | None, iscrowd: bool, attributes: Any, confidence: float | None,
                 source: str) -> bytes:
    box = None if bbox is None or bbox[0] is None else [round(float(v), 4) for v in bbox]
    return orjson.dumps(
        [label_class_id, gtype, box, polygon, counts, keypoints, caption, bool(iscrowd), attributes,
         None if confidence is None else round(confidence, 6), source],
        option=orjson.OPT_SORT_KEYS,
    )


def import_coco(
    registry: Registry,
    annotations: Path | str,
    *,
    images: Path | str | None = None,
    project: str = "default",
    skip_invalid: bool = False,
    report_path: Path | str | None = None,
    progress: bool = False,
    create_missing: bool = False,
    panoptic_dir: Path | str | None = None,
) -> ImportResult:
    """Import one COCO file (and its images). Raises :class:`ImportRefused` with the report on bad input."""
    t0 = time.perf_counter()
    path = Path(annotations)
    settings = registry.settings
    storage = open_storage(settings.storage_root)
    coco = read_coco(path, panoptic_dir=Path(panoptic_dir) if panoptic_dir else None)
    report = coco.report
    fname = str(path)

    source: ImageSource | None = None
    if images is not None:
        ipath = Path(images)
        if ipath.is_dir():
            source = ImageSource(ipath)
        elif ipath.is_file():
            # Images are sources, read by path by later steps (thumbnails, training), so a ZIP is
            # unpacked onto local disk even when the platform's own files go to S3.
            staging = storage if isinstance(storage, LocalStorage) else LocalStorage(settings.home / "registry")
            source = unpack_zip(ipath, staging.path(f"sources/images/{uuid.uuid4().hex}"))
        else:
            raise DsgenError(f"{ipath}: image folder or ZIP not found")
    try:
        infos = _probe_images(coco, source, report, fname, progress)
        with registry.session(bulk=True) as session:
            result = _write(registry, session, coco, infos, source, project=project, storage=storage,
                            skip_invalid=skip_invalid, create_missing=create_missing, progress=progress)
    except BaseException:
        if source is not None:
            source.cleanup()
        raise
    if source is not None and source.staged and not result.counts["images_new"]:
        source.cleanup()

    if report_path is not None or (skip_invalid and report.problems):
        rp = Path(report_path) if report_path else settings.home / "reports" / f"import-{result.batch_id}.json"
        result.report_path = report.write(rp)
    result.seconds = time.perf_counter() - t0
    return result


def _probe_images(coco: CocoFile, source: ImageSource | None, report: ValidationReport, fname: str,
                  progress: bool) -> dict[int, ImageInfo]:
    """Hash and measure every image; mismatches with the JSON are errors, and sizes fill gaps."""
    if source is None or not coco.images:
        return {}
    infos: dict[int, ImageInfo] = {}
    with tqdm(total=len(coco.images), desc="hashing images", unit="img", disable=not progress, leave=False) as bar:
        probed = source.probe_all([im.file_name for im in coco.images], bar)
    for im, res in zip(coco.images, probed, strict=True):
        rec = f"images[{im.index}] (id={im.coco_id}, file_name={im.file_name!r})"
        if isinstance(res, ImageProblem):
            report.error(fname, rec, "file_name", str(res))
            coco.invalid_images.add(im.coco_id)
            continue
        if im.width is not None and (im.width, im.height) != (res.width, res.height):
            report.error(fname, rec, "width/height", f"JSON says {im.width}x{im.height}, the file is {res.width}x{res.height}")
            coco.invalid_images.add(im.coco_id)
            continue
        if im.width is None:
            im.width, im.height = res.width, res.height
        infos[im.coco_id] = res
    return infos


def _write(registry: Registry, session, coco: CocoFile, infos: dict[int, ImageInfo], source: ImageSource | None, *,  # noqa: ANN001, C901, PLR0912, PLR0915
           project: str, storage: Storage, skip_invalid: bool, create_missing: bool, progress: bool) -> ImportResult:
    report = coco.report
    fname = str(coco.path)
    proj = ensure_project(session, project, source="cvat-coco")
    onto = current_ontology(session, proj)
    batch = ImportBatch(project_id=proj.id, format=f"coco/{coco.kind}", source_uri=str(coco.path.resolve()),
                        content_sha256=coco.raw_bytes_sha256, status="running", header=coco.header or None)
    session.add(batch)
    session.flush()  # first write: on SQLite the transaction now holds the write lock
    conn = session.connection()
    lock_for_ids(conn, "assets", "annotations", "tracks", "label_classes")

    # -- label classes: matched by name within the project's current ontology version
    classes = {lc.key: lc for lc in label_classes(session, onto.id)}
    cat_to_class: dict[int, int] = {}
    new_classes = 0
    if coco.kind == "results":
        by_ext = {lc.external_id: lc.id for lc in classes.values() if lc.external_id is not None}
        for cid in sorted({a.category_id for a in coco.annotations if a.category_id is not None}):
            if cid in by_ext:
                cat_to_class[cid] = by_ext[cid]
            elif create_missing:
                lc = LabelClass(ontology_version_id=onto.id, key=f"category_{cid}", display_name=f"category_{cid}",
                                external_id=cid, synonyms=[])
                session.add(lc)
                session.flush()
                cat_to_class[cid] = lc.id
                new_classes += 1
    else:
        gtypes = {a.category_id: a.geometry_type for a in coco.annotations}
        for c in coco.categories:
            lc = classes.get(c.name)
            spec = {"keypoints": c.keypoints, "skeleton": c.skeleton} if c.keypoints is not None or c.skeleton is not None else None
            if lc is None:
                lc = LabelClass(ontology_version_id=onto.id, key=c.name, display_name=c.name,
                                supercategory=c.supercategory, synonyms=[], keypoint_spec=spec,
                                shape_type=gtypes.get(c.coco_id), external_id=c.coco_id, extra=c.extra)
                session.add(lc)
                new_classes += 1
            else:
                lc.keypoint_spec = lc.keypoint_spec or spec
                lc.shape_type = lc.shape_type or gtypes.get(c.coco_id)
                if lc.external_id is None:
                    lc.external_id = c.coco_id
            classes[c.name] = lc
        session.flush()
        cat_to_class = {c.coco_id: classes[c.name].id for c in coco.categories}

    # -- assets: by sha256 when the files were read, else by file name (and by COCO id for results)
    rows = conn.execute(
        select(Asset.id, Asset.sha256, Asset.file_name, Asset.external_id).where(Asset.project_id == proj.id)
    ).all()
    by_sha = {r.sha256: r.id for r in rows if r.sha256}
    by_name: dict[str, int] = {}
    by_ext: dict[int, int] = {}
    for r in rows:
        by_name.setdefault(r.file_name, r.id)
        if r.external_id is not None:
            by_ext[r.external_id] = r.id  # the newest import wins for results files
    existing_assets: set[int] = set()
    image_to_asset: dict[int, int] = {}
    asset_rows: list[tuple[Any, ...]] = []
    now = now_value(conn)
    aid = next_id(conn, "assets")
    if coco.kind == "results":
        for image_id in sorted({a.image_id for a in coco.annotations}):
            if image_id in by_ext:
                image_to_asset[image_id] = by_ext[image_id]
                existing_assets.add(by_ext[image_id])
            elif create_missing:
                asset_rows.append((aid, proj.id, "image", str(image_id), None, None, None, None, None, None, image_id,
                                   None, batch.id, "referenced", now, now))
                image_to_asset[image_id] = aid
                aid += 1
        missing = {a.image_id for a in coco.annotations} - image_to_asset.keys()
        for a in coco.annotations:
            if a.image_id in missing:
                report.error(fname, f"annotations[{a.index}] (image_id={a.image_id})", "image_id",
                             f"no image with COCO id {a.image_id} in project {project!r} (import the ground truth first, or pass --create-missing)")
        for a in coco.annotations:
            if a.category_id is not None and a.category_id not in cat_to_class:
                report.error(fname, f"annotations[{a.index}] (category_id={a.category_id})", "category_id",
                             f"no label class with COCO id {a.category_id} in project {project!r}")
    else:
        for im in coco.images:
            if im.coco_id in coco.invalid_images:
                continue
            info = infos.get(im.coco_id)
            existing = by_sha.get(info.sha256) if info else by_name.get(im.file_name)
            if existing is not None:
                image_to_asset[im.coco_id] = existing
                existing_assets.add(existing)
                continue
            uri = str(info.path) if info else None
            asset_rows.append((aid, proj.id, "image", im.file_name, uri, info.sha256 if info else None,
                               info.bytes if info else None, im.width, im.height, info.mime_type if info else None,
                               im.coco_id, _dumps(im.extra), batch.id, "ready" if info else "referenced", now, now))
            if info:
                by_sha[info.sha256] = aid
            else:
                by_name[im.file_name] = aid
            image_to_asset[im.coco_id] = aid
            aid += 1

    if report.errors and not skip_invalid:
        raise ImportRefused(fname, report)

    anns = [a for a in coco.annotations if a.image_id in image_to_asset
            and (a.category_id is None or a.category_id in cat_to_class)]
    skipped_anns = coco.raw_annotation_count - len(anns)
    insert_rows(conn, "assets", ASSET_COLUMNS, asset_rows)

    # -- annotations of images already in the registry are matched by content, so a re-import adds nothing
    masks = MaskStore(storage)
    seen: set[bytes] = set()
    if existing_assets:
        seen = _existing_fingerprints(conn, existing_assets, masks)
    results = coco.kind == "results"
    source_kind = "model" if results else "human"
    annotation_rows: list[tuple[Any, ...]] = []
    track_members: dict[str, list[tuple[int, int, bool | None, str]]] = defaultdict(list)
    track_class: dict[str, int | None] = {}
    mask_writes: list[tuple[int, dict[str, Any]]] = []
    duplicates = 0
    nid = next_id(conn, "annotations")
    names = {im.coco_id: im.file_name for im in coco.images}
    dumps = orjson.dumps
    no_box = (None, None, None, None)
    for a in tqdm(anns, desc="annotations", unit="ann", disable=not progress, leave=False, mininterval=0.5):
        # Unpacked once: attribute access on a million NamedTuples is measurably slower.
        _i, coco_id, image_id, cid, gtype, box, poly, rle, kps, nk, caption, area, crowd, attrs, extra, score = a
        asset_id = image_to_asset[image_id]
        lcid = None if cid is None else cat_to_class.get(cid)
        if existing_assets and asset_id in existing_assets:
            fp = _fingerprint(lcid, gtype, box, poly, rle["counts"] if rle else None, kps, caption, crowd, attrs, score,
                              source_kind)
            if fp in seen:
                duplicates += 1
                continue
            seen.add(fp)
        mask_uri = None
        if rle is not None:
            mask_writes.append((nid, rle))
            mask_uri = f"masks:{nid}"  # replaced by the real URI below, before commit
        bx, by, bw, bh = box or no_box
        annotation_rows.append((
            nid, asset_id, lcid, gtype, bx, by, bw, bh, None if poly is None else dumps(poly).decode(), mask_uri,
            None if kps is None else dumps(kps).decode(), nk, caption, area, crowd,
            None if attrs is None else dumps(attrs).decode(), None if extra is None else dumps(extra).decode(), score,
            None, coco_id,
        ))
        if attrs and attrs.get("track_id") is not None:
            key = str(attrs["track_id"])
            kf = attrs.get("keyframe")
            track_members[key].append((nid, asset_id, bool(kf) if kf is not None else None, names.get(image_id, "")))
            track_class.setdefault(key, lcid)
        nid += 1

    written: list[str] = []
    try:
        uris = masks.put_many(mask_writes, progress=progress)
        written = list(uris.values())
        if uris:
            annotation_rows = [r if r[_MASK_URI] is None else (*r[:_MASK_URI], uris[r[0]], *r[_MASK_URI + 1:])
                               for r in annotation_rows]
        track_ids = _write_tracks(conn, session, proj.id, track_members, track_class, annotation_rows)
        if track_ids:
            annotation_rows = [(*r[:_TRACK_ID], track_ids.get(r[0]), *r[_TRACK_ID + 1:]) for r in annotation_rows]
        insert_rows(conn, "annotations", ANNOTATION_COLUMNS, annotation_rows,
                    constants={"source": source_kind, "is_normalized": False, "is_validated": False,
                               "import_batch_id": batch.id, "created_at": now, "updated_at": now})
        if track_ids:
            insert_rows(conn, "track_members", ("track_id", "annotation_id", "sequence_idx", "keyframe"),
                        _track_member_rows(track_members, track_ids))
        for t in ("assets", "annotations", "tracks"):
            sync_sequence(conn, t)

        counts = {
            "images": len(image_to_asset),
            "images_new": len(asset_rows),
            "images_existing": len(existing_assets),
            "annotations": len(annotation_rows),
            "annotations_duplicate": duplicates,
            "categories": len(coco.categories),
            "categories_new": new_classes,
            "masks": len(mask_writes),
            "tracks": len({k for k in track_members}),
        }
        if skip_invalid:
            report.skipped["annotations"] = skipped_anns
            report.skipped["images"] = coco.raw_image_count - len(coco.images) + len(coco.invalid_images)
        batch.status = "done"
        batch.counts = counts
        batch.report = {"errors": len(report.errors), "warnings": len(report.warnings), "skipped": dict(report.skipped)}
        record_change(session, project_id=proj.id, entity="assets", op="import", entity_id=batch.id,
                      count=len(asset_rows), detail={"batch": batch.id})
        record_change(session, project_id=proj.id, entity="annotations", op="import", entity_id=batch.id,
                      count=len(annotation_rows), detail={"batch": batch.id, "source": source_kind})
        audit(session, "import.coco", project_id=proj.id, entity_type="import_batch", entity_ids=[batch.id],
              detail={"file": str(coco.path), "kind": coco.kind, **counts, "skip_invalid": skip_invalid})
        session.flush()
    except BaseException:
        for uri in written:
            masks.delete(uri)
        raise
    return ImportResult(batch.id, project, coco.kind, counts, report)


def _existing_fingerprints(conn, asset_ids: set[int], masks: MaskStore) -> set[bytes]:  # noqa: ANN001
    out: set[bytes] = set()
    ids = sorted(asset_ids)
    for i in range(0, len(ids), 500):
        stmt = select(
            Annotation.label_class_id, Annotation.geometry_type, Annotation.bbox_x, Annotation.bbox_y,
            Annotation.bbox_w, Annotation.bbox_h, Annotation.polygon, Annotation.mask_uri, Annotation.keypoints,
            Annotation.caption, Annotation.iscrowd, Annotation.attributes, Annotation.confidence, Annotation.source,
        ).where(Annotation.asset_id.in_(ids[i : i + 500]))
        for r in conn.execute(stmt):
            counts = masks.get(r.mask_uri)["counts"] if r.mask_uri else None
            out.add(_fingerprint(r.label_class_id, r.geometry_type, (r.bbox_x, r.bbox_y, r.bbox_w, r.bbox_h),
                                 r.polygon, counts, r.keypoints, r.caption, r.iscrowd, r.attributes, r.confidence,
                                 r.source))
    return out


def _frame_no(name: str) -> int | None:
    m = _FRAME_NO.search(Path(name).stem)
    return int(m.group(1)) if m else None


def _write_tracks(conn, session, project_id: int, members: dict[str, list[tuple[int, int, bool | None, str]]],  # noqa: ANN001
                  track_class: dict[str, int | None], annotation_rows: list[tuple[Any, ...]]) -> dict[int, int]:
    """CVAT ``track_id`` attributes become tracks; returns annotation id -> track id."""
    if not members:
        return {}
    existing = {t.external_id: t for t in session.scalars(select(Track).where(Track.project_id == project_id,
                                                                              Track.external_id.in_(list(members))))}
    out: dict[int, int] = {}
    for key, mem in members.items():
        mem.sort(key=lambda m: (_frame_no(m[3]) if _frame_no(m[3]) is not None else -1, m[3]))
        frames = [f for f in (_frame_no(m[3]) for m in mem) if f is not None]
        track = existing.get(key)
        if track is None:
            track = Track(project_id=project_id, external_id=key, label_class_id=track_class.get(key),
                          object_count=0)
            session.add(track)
        track.object_count = (track.object_count or 0) + len(mem)
        if frames:
            track.start_frame = min(frames + ([track.start_frame] if track.start_frame is not None else []))
            track.end_frame = max(frames + ([track.end_frame] if track.end_frame is not None else []))
        session.flush()
        for m in mem:
            out[m[0]] = track.id
    return out


def _track_member_rows(members: dict[str, list[tuple[int, int, bool | None, str]]], track_ids: dict[int, int]):  # noqa: ANN202
    for mem in members.values():
        for idx, (ann_id, _asset, keyframe, _name) in enumerate(mem):
            yield (track_ids[ann_id], ann_id, idx, keyframe)
