"""The one write path of images and annotations into the registry.

Every writer (COCO import, auto-annotation, and the Datamaker, CVAT, REST and embedding writers)
translates its input into an :class:`IngestBatch` and calls :func:`ingest`, which in one
transaction

- applies the identity rules: an image is the sample its source names (project + the source's
  path or id, :attr:`ImageRecord.source_key`), never its bytes; an object is the annotation its
  source names (image + the source's annotation id, namespaced: ``coco:17``). A record that
  names something already in the registry merges into it: fields the registry lacks are added,
  equal ones are left alone, and different ones are conflicts, refused or resolved as the caller
  asked (``on_conflict``) and reported either way;
- keeps classes one row each across ontology versions (a new class forks a frozen ontology);
- allocates ids and writes rows in bulk (``executemany`` on SQLite, ``COPY`` on PostgreSQL),
  masks to the mask store, tracks and their members, and a video's frames (a frame is its video's
  asset + frame index; its decoded image is an image asset like any other, so queries, tags,
  versions and training see frames as images);
- writes the audit row (with the actor), the change events (only when something changed) and
  the embedding outbox rows of the project's active embedding versions.

Nothing is written until the whole batch is checked: a refused batch raises
:class:`~dsgen_core.formats.report.ImportRefused` with the report, before the first write.

    batch = IngestBatch(format="coco/dataset", source_uri="a.json", content_sha256=sha, namespace="coco",
                        images=[...], classes=[...], objects=[...], report=report, file="a.json")
    result = ingest(session, project, batch, storage=storage, actor="cli")
    result.objects_new, result.conflicts
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

import orjson
from sqlalchemy import Connection, Table, bindparam, delete, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from dsgen_core.errors import DsgenError
from dsgen_core.formats.images import ImageInfo
from dsgen_core.formats.limits import JSON_MAX_BYTES
from dsgen_core.formats.report import ImportRefused, ValidationReport
from dsgen_core.registry.bulk import insert_rows, lock_for_ids, next_id, now_value, sync_sequence
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.ontology import add_classes
from dsgen_core.registry.schema import (
    Annotation,
    Asset,
    EmbeddingVersion,
    Frame,
    ImportBatch,
    LabelClass,
    Project,
    Track,
    utcnow,
)
from dsgen_core.storage.base import Storage
from dsgen_core.storage.masks import MaskStore, mask_key

OnConflict = Literal["error", "keep", "replace"]
ON_CONFLICT: tuple[OnConflict, ...] = ("error", "keep", "replace")
HINTS = "_dsgen"  # reserved key in ``extra``: how the source wrote what the registry normalises

_ANNOTATION_COLUMNS = (
    "id", "asset_id", "label_class_id", "geometry_type", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "polygon",
    "mask_uri", "keypoints", "num_keypoints", "caption", "area", "iscrowd", "attributes", "extra", "confidence",
    "track_id", "external_id", "source_key",
)
_MASK_URI, _TRACK_ID = _ANNOTATION_COLUMNS.index("mask_uri"), _ANNOTATION_COLUMNS.index("track_id")
_ASSET_COLUMNS = (
    "id", "project_id", "asset_type", "source_key", "file_name", "storage_uri", "sha256", "bytes", "width", "height",
    "mime_type", "external_id", "extra", "import_batch_id", "status", "created_at", "updated_at",
)
# What a merge may change on an existing object, in the order of the UPDATE below.
_MERGED_COLUMNS = ("label_class_id", "geometry_type", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "polygon", "mask_uri",
                   "keypoints", "num_keypoints", "caption", "area", "iscrowd", "attributes", "extra", "confidence")
_FRAME_NO = re.compile(r"(\d+)\D*$")


# --------------------------------------------------------------------------- input types


@dataclass(frozen=True)
class ClassRecord:
    """A class the batch uses; matched to the project's classes by ``key``."""

    ref: Hashable  # how the batch's objects name it (a COCO category id)
    key: str
    display_name: str | None = None
    supercategory: str | None = None
    keypoint_spec: dict[str, Any] | None = None
    shape_type: str | None = None
    external_id: int | None = None
    extra: dict[str, Any] | None = None
    record: str = ""


@dataclass(frozen=True)
class MediaInfo:
    """What a video asset holds beyond an image's fields."""

    fps: float | None
    frame_count: int | None
    duration_ms: int | None
    codec: str | None


@dataclass
class ImageRecord:
    """An image (or a video: ``asset_type``) the batch names. ``source_key`` is its identity in the project (its path)."""

    ref: Hashable  # how the batch's objects name it (a COCO image id)
    source_key: str
    file_name: str
    width: int | None = None
    height: int | None = None
    external_id: int | None = None
    extra: dict[str, Any] | None = None
    file: ImageInfo | None = None  # the file, hashed and measured, when the images were given
    record: str = ""
    asset_id: int | None = None  # an image of the project the writer already knows (auto-annotation)
    asset_type: str = "image"  # image | video
    media: MediaInfo | None = None  # videos: fps, frame count, duration, codec


class FrameRecord(NamedTuple):
    """A frame of a video the batch names: identified by its video and index, shown by an image of the batch."""

    video_ref: Hashable  # the video's ImageRecord.ref
    frame_idx: int
    timestamp_ms: int | None
    image_ref: Hashable | None  # the decoded frame's ImageRecord.ref, if kept


class ObjectRecord(NamedTuple):
    """One object or image-level label; built positionally, a million at a time.

    ``source_id`` is the source's own annotation id (None when the source gives none: then the
    record's position in its file identifies it, or nothing does, see :attr:`IngestBatch.positional_ids`).
    """

    position: int  # the record's place in its file
    source_id: int | str | None
    image_ref: Hashable
    class_ref: Hashable | None
    geometry_type: str
    bbox: tuple[float, float, float, float] | None
    polygon: list[list[float]] | None
    rle: dict[str, Any] | None  # compressed COCO RLE
    keypoints: list[float] | None
    num_keypoints: int | None
    caption: str | None
    area: float | None
    iscrowd: bool
    attributes: dict[str, Any] | None
    extra: dict[str, Any] | None
    score: float | None
    where: str | None = None  # the record's place in its file, when not "annotations[index]"


class ObjectEdit(NamedTuple):
    """A registry object the source now describes as ``record``: its content is replaced, its id kept.

    For sources that are the authority on objects dsgen gave them (a CVAT pull): the record is
    the object's whole content, not one more opinion to merge. ``record.image_ref`` names the
    object's image among the batch's images.
    """

    annotation_id: int
    record: ObjectRecord


class RelationRecord(NamedTuple):
    """A directed link between two objects of one image (Datamaker ``relations``), by their source ids."""

    image_ref: Hashable
    from_id: int | str
    to_id: int | str
    classification: dict[str, Any] | None
    external_id: str | None


class GroupRecord(NamedTuple):
    """A group of objects of one image (Datamaker ``annotationGroups``); members are (source id, parent
    source id or None), so a nested ``annotationList`` keeps its tree."""

    image_ref: Hashable
    external_id: str | None
    classification: dict[str, Any] | None
    members: list[tuple[int | str, int | str | None]]


@dataclass
class IngestBatch:
    """What one writer hands to :func:`ingest`."""

    operation: str  # "import", "auto_annotate", "pull": the change events' op
    audit_action: str  # "import.coco"
    format: str  # "coco/dataset"
    source_uri: str
    content_sha256: str
    namespace: str  # annotation ids become "<namespace>:<id>"
    images: list[ImageRecord]
    classes: list[ClassRecord]
    objects: list[ObjectRecord]
    report: ValidationReport
    file: str = ""  # named in report lines
    header: dict[str, Any] | None = None
    source: str = "human"  # human | model
    model_version_id: int | None = None
    detection_model: str | None = None
    # Objects without a source id are identified by their place in this exact file (so importing
    # the same file twice adds nothing); False: they have no identity and are always new.
    positional_ids: bool = True
    # Auto-annotation: the model's earlier objects on the batch's images are deleted first.
    replace_model_objects: bool = False
    detail: dict[str, Any] = field(default_factory=dict)  # extra facts for the audit row
    # Whose numbering the objects' track ids are (Track.scope); default: the source file.
    track_scope: str | None = None
    frames: list[FrameRecord] = field(default_factory=list)  # video imports
    edits: list[ObjectEdit] = field(default_factory=list)  # objects the source changed (CVAT pulls)
    removals: list[int] = field(default_factory=list)  # annotation ids the source deleted (CVAT pulls)
    relations: list[RelationRecord] = field(default_factory=list)
    groups: list[GroupRecord] = field(default_factory=list)


@dataclass
class IngestResult:
    batch_id: int
    images: int = 0  # images the batch names
    images_new: int = 0
    images_existing: int = 0
    images_updated: int = 0  # existing images that got a file, size or key they lacked
    objects_new: int = 0
    objects_merged: int = 0  # existing objects that took fields from this batch
    objects_unchanged: int = 0
    objects_deleted: int = 0
    objects_skipped: int = 0
    classes_new: int = 0
    masks: int = 0
    tracks: int = 0
    conflicts: int = 0
    frames_new: int = 0  # frame rows written (video imports)
    change_seq: int | None = None  # the last change event written; None when nothing changed

    @property
    def changed(self) -> bool:
        return bool(self.images_new or self.images_updated or self.objects_new or self.objects_merged
                    or self.objects_deleted or self.classes_new or self.frames_new)


# --------------------------------------------------------------------------- the ingest


def ingest(session: Session, project: Project, batch: IngestBatch, *, storage: Storage, actor: str | None = None,
           on_conflict: OnConflict = "error", skip_invalid: bool = False, progress: bool = False) -> IngestResult:
    """Write ``batch`` into ``project`` in the caller's transaction; see the module docstring."""
    if on_conflict not in ON_CONFLICT:
        raise DsgenError(f"on_conflict must be one of {', '.join(ON_CONFLICT)}, not {on_conflict!r}")
    return _Ingest(session, project, batch, storage, actor, on_conflict, skip_invalid, progress).run()


class _Ingest:
    def __init__(self, session: Session, project: Project, batch: IngestBatch, storage: Storage, actor: str | None,
                 on_conflict: OnConflict, skip_invalid: bool, progress: bool) -> None:
        self.s, self.project, self.b = session, project, batch
        self.storage, self.masks = storage, MaskStore(storage)
        self.actor, self.on_conflict, self.skip_invalid, self.progress = actor, on_conflict, skip_invalid, progress
        self.report = batch.report
        self.conn: Connection
        self.written_masks: list[str] = []
        self.conflicts = 0
        self.edited: list[int] = []  # objects the batch's edits replaced

    def run(self) -> IngestResult:
        b, s = self.b, self.s
        row = ImportBatch(project_id=self.project.id, format=b.format, source_uri=b.source_uri,
                          content_sha256=b.content_sha256, status="running", header=b.header or None, actor=self.actor,
                          operation=b.operation, source=b.source)
        s.add(row)
        s.flush()  # first write: on SQLite the transaction now holds the write lock
        self.conn = s.connection()
        lock_for_ids(self.conn, "assets", "annotations", "tracks", "label_classes")
        self.batch_id = row.id
        self.now = now_value(self.conn)
        result = IngestResult(row.id)

        class_ids, result.classes_new = self._classes()
        image_assets, new_assets, updates, existing = self._images(result)
        objects = self._objects_to_write(class_ids, image_assets)
        keyed = b.positional_ids or any(o.source_id is not None for o in objects)
        matched = self._existing_objects(existing) if existing and keyed else {}
        rows, merges, deletions = self._plan_objects(objects, matched, image_assets, class_ids, result)
        if self.report.errors and not self.skip_invalid:
            raise ImportRefused(b.file or b.source_uri, self.report)

        try:
            self._write(new_assets, updates, rows, merges, deletions, image_assets, result)
        except BaseException:
            for uri in self.written_masks:
                self.masks.delete(uri)
            raise
        row.status = "done"
        row.counts = self._counts(result)
        row.report = {"errors": len(self.report.errors), "warnings": len(self.report.warnings),
                      "skipped": dict(self.report.skipped)}
        self._record(result)
        s.flush()
        return result

    # -- classes

    def _classes(self) -> tuple[dict[Hashable, int], int]:
        """Batch class ref -> label class id; classes are matched by key across the project's whole history."""
        if not self.b.classes:
            return {}, 0
        existing = {lc.key: lc for lc in self.s.scalars(select(LabelClass).where(LabelClass.project_id == self.project.id))}
        out: dict[Hashable, int] = {}
        used: list[LabelClass] = []
        new = 0
        for c in self.b.classes:
            lc = existing.get(c.key)
            if lc is None:
                lc = LabelClass(project_id=self.project.id, key=c.key, display_name=c.display_name or c.key,
                                supercategory=c.supercategory, synonyms=[], keypoint_spec=c.keypoint_spec,
                                shape_type=c.shape_type, external_id=c.external_id, extra=c.extra)
                self.s.add(lc)
                existing[c.key] = lc
                new += 1
            else:
                # The class is the same row; what this file adds to it is kept, what it contradicts is said.
                for part, old_v, new_v in _spec_differences(lc.keypoint_spec, c.keypoint_spec):
                    self.report.warning(self.b.file, c.record or c.key, part,
                                        f"class {c.key!r} has {_short(old_v)} in the registry, this file says "
                                        f"{_short(new_v)}; the registry's is kept")
                lc.keypoint_spec = _union_spec(lc.keypoint_spec, c.keypoint_spec)
                lc.shape_type = lc.shape_type or c.shape_type
                if lc.supercategory in (None, "") and c.supercategory:
                    lc.supercategory = c.supercategory
                if lc.extra is None and c.extra:
                    lc.extra = c.extra
                if lc.external_id is None:
                    lc.external_id = c.external_id
                elif c.external_id is not None and c.external_id != lc.external_id:
                    self.report.warning(self.b.file, c.record or c.key, "id",
                                        f"class {c.key!r} has id {c.external_id} here and {lc.external_id} in the "
                                        "registry; the class is the same (by name) and exports keep id "
                                        f"{lc.external_id}")
            used.append(lc)
        self.s.flush()
        add_classes(self.s, self.project, used)
        for c in self.b.classes:
            out[c.ref] = existing[c.key].id
        return out, new

    # -- images

    def _images(self, result: IngestResult) -> tuple[dict[Hashable, int], list[tuple[Any, ...]], list[dict[str, Any]], set[int]]:
        """Batch image ref -> asset id, the new asset rows, updates of existing assets, and the ids that existed."""
        b = self.b
        keyed = [im for im in b.images if im.asset_id is None]
        known: dict[str, Any] = {}
        if keyed:
            rows = self.conn.execute(select(
                Asset.id, Asset.source_key, Asset.sha256, Asset.width, Asset.height, Asset.external_id, Asset.extra,
                Asset.storage_uri, Asset.file_name, Asset.asset_type,
            ).where(Asset.project_id == self.project.id)).all()
            known = {r.source_key: r for r in rows}
        given = [im.asset_id for im in b.images if im.asset_id is not None]
        if given:
            mine = {i for (i,) in self.conn.execute(select(Asset.id).where(
                Asset.project_id == self.project.id, Asset.id.in_(given)))}
            foreign = sorted(set(given) - mine)
            if foreign:
                raise DsgenError(f"images {foreign[:5]} are not images of project {self.project.name!r}")
        out: dict[Hashable, int] = {}
        new_rows: list[tuple[Any, ...]] = []
        updates: list[dict[str, Any]] = []
        existing: set[int] = set()
        self.media: list[dict[str, Any]] = []
        aid = next_id(self.conn, "assets")
        fresh: set[str] = set()
        for im in b.images:
            if im.asset_id is not None:
                out[im.ref] = im.asset_id
                existing.add(im.asset_id)
                continue
            f = im.file
            if im.source_key in fresh:
                raise DsgenError(f"two images of one batch share the key {im.source_key!r}")
            old = known.get(im.source_key)
            if old is None:
                new_rows.append((aid, self.project.id, im.asset_type, im.source_key, im.file_name,
                                 str(f.path) if f else None, f.sha256 if f else None, f.bytes if f else None,
                                 im.width, im.height, f.mime_type if f else None, im.external_id, _dumps(im.extra),
                                 self.batch_id, "ready" if f else "referenced", self.now, self.now))
                fresh.add(im.source_key)
                if im.media is not None:
                    self.media.append({"id": aid, **vars(im.media)})
                out[im.ref] = aid
                aid += 1
                continue
            update = self._image_update(im, old)
            if update is None:
                self.report.skipped["images"] += 1  # refused: reported
                continue
            out[im.ref] = old.id
            existing.add(old.id)
            if update:
                updates.append({"id": old.id, **update})
        result.images = len(out)
        result.images_new = len(new_rows)
        result.images_existing = len(existing)
        result.images_updated = len(updates)
        return out, new_rows, updates, existing

    def _image_update(self, im: ImageRecord, old: Any) -> dict[str, Any] | None:
        """What an existing image takes from this record; None when they contradict each other."""
        f = im.file
        rec = im.record or im.source_key
        if old.asset_type != im.asset_type:
            self.report.error(self.b.file, rec, "asset_type",
                              f"{im.source_key!r} is already in project {self.project.name!r} as a {old.asset_type}, "
                              f"not a {im.asset_type}")
            return None
        if f is not None and old.sha256 is not None and f.sha256 != old.sha256:
            self.report.error(self.b.file, rec, "file_name",
                              f"{im.source_key!r} is already in project {self.project.name!r} with different content "
                              f"(sha256 {old.sha256[:12]}…, this file {f.sha256[:12]}…); a sample's bytes do not "
                              "change: import it under another path or into another project")
            return None
        for fld, new, cur in (("width", im.width, old.width), ("height", im.height, old.height)):
            if new is not None and cur is not None and new != cur:
                self.report.error(self.b.file, rec, fld, f"{new} here, {cur} in the registry for {im.source_key!r}")
                return None
        update: dict[str, Any] = {}
        if f is not None and old.sha256 is None:
            update.update(storage_uri=str(f.path), sha256=f.sha256, bytes=f.bytes, mime_type=f.mime_type,
                          status="ready")
        if im.width is not None and old.width is None:
            update.update(width=im.width, height=im.height)
        if im.external_id is not None and old.external_id != im.external_id:
            if old.external_id is None:
                update["external_id"] = im.external_id
            elif self._conflict(rec, "id", old.external_id, im.external_id, f"image {im.source_key!r}"):
                update["external_id"] = im.external_id
            elif self.on_conflict == "error":
                return None
        if im.extra:
            merged, ok = self._merge_dict(rec, "extra", old.extra, im.extra)
            if not ok:
                return None
            if merged != old.extra:
                update["extra"] = merged
        return update

    # -- objects

    def _objects_to_write(self, class_ids: dict[Hashable, int], image_assets: dict[Hashable, int]) -> list[ObjectRecord]:
        """The batch's objects whose image and class made it (the rest were reported by the reader)."""
        objs = self.b.objects
        if all(o.image_ref in image_assets and (o.class_ref is None or o.class_ref in class_ids) for o in objs):
            return objs
        kept = [o for o in objs if o.image_ref in image_assets and (o.class_ref is None or o.class_ref in class_ids)]
        self.report.skipped["annotations"] += len(objs) - len(kept)
        return kept

    def _existing_objects(self, assets: set[int]) -> dict[tuple[int, str], Any]:
        """Objects of images that were already in the registry, by (asset id, source key)."""
        out: dict[tuple[int, str], Any] = {}
        ids = sorted(assets)
        a = Annotation
        for i in range(0, len(ids), 500):
            for r in self.conn.execute(select(
                a.id, a.asset_id, a.source_key, a.label_class_id, a.geometry_type, a.bbox_x, a.bbox_y, a.bbox_w,
                a.bbox_h, a.polygon, a.mask_uri, a.keypoints, a.num_keypoints, a.caption, a.area, a.iscrowd,
                a.attributes, a.extra, a.confidence, a.track_id, a.source,
            ).where(a.asset_id.in_(ids[i:i + 500]), a.source_key.is_not(None))):
                out[(r.asset_id, r.source_key)] = r
        return out

    def _plan_objects(self, objects: list[ObjectRecord], matched: dict[tuple[int, str], Any],
                      image_assets: dict[Hashable, int], class_ids: dict[Hashable, int], result: IngestResult,
                      ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[int]]:
        """New rows (with ids), merges of existing objects, and the objects to delete first."""
        b = self.b
        deletions: list[int] = []
        if b.replace_model_objects and b.model_version_id is not None:
            assets = sorted(set(image_assets.values()))
            for i in range(0, len(assets), 10_000):
                deletions += self.conn.execute(select(Annotation.id).where(
                    Annotation.model_version_id == b.model_version_id,
                    Annotation.asset_id.in_(assets[i:i + 10_000]))).scalars().all()
        rows: list[tuple[Any, ...]] = []
        merges: list[tuple[Any, ...]] = []
        self.mask_writes: list[tuple[int | str, dict[str, Any]]] = []
        deletions += self._owned(b.removals, "removals")
        self.tracked: dict[str, list[tuple[int, int, bool | None, Any]]] = defaultdict(list)
        self.track_class: dict[str, int | None] = {}
        self.track_updates: list[int] = []
        names = {im.ref: im.file_name for im in b.images}
        nid = next_id(self.conn, "annotations")
        dumps = orjson.dumps
        no_box = (None, None, None, None)
        seen_keys: set[tuple[int, str]] = set()
        namespace, positional, sha = b.namespace, b.positional_ids, b.content_sha256[:16]
        json_max = JSON_MAX_BYTES
        for o in tqdm(objects, desc="annotations", unit="ann", disable=not self.progress, leave=False, mininterval=0.5):
            # Unpacked once: attribute access on a million NamedTuples is measurably slower.
            i, sid, image_ref, cref, gtype, box, poly, rle, kps, nk, caption, area, crowd, attrs, extra, score, _w = o
            asset_id = image_assets[image_ref]
            lcid = None if cref is None else class_ids[cref]
            key = f"{namespace}:{sid}" if sid is not None else f"{namespace}:{sha}#{i}" if positional else None
            if key is not None and matched:
                old = matched.get((asset_id, key))
                if old is not None:
                    if (asset_id, key) in seen_keys:
                        continue  # reported by the reader as a duplicate id
                    seen_keys.add((asset_id, key))
                    merge = self._merge(o, lcid, old)
                    if merge is None:
                        self.report.skipped["annotations"] += 1
                    elif merge is False:
                        result.objects_unchanged += 1
                    else:
                        merges.append(merge)
                    continue
            attrs_json = None if attrs is None else dumps(attrs).decode()
            extra_json = None if extra is None else dumps(extra).decode()
            if (attrs_json is not None and len(attrs_json) > json_max) or (extra_json is not None and len(extra_json) > json_max):
                self.report.error(b.file, o.where or f"annotations[{i}] (id={sid})", "attributes",
                                  f"its attributes and other keys are more than {json_max} bytes of JSON")
                self.report.skipped["annotations"] += 1
                continue
            mask_uri = None
            if rle is not None:
                self.mask_writes.append((nid, rle))
                mask_uri = f"masks:{nid}"  # replaced by the real URI below, before commit
            bx, by, bw, bh = box or no_box
            rows.append((
                nid, asset_id, lcid, gtype, bx, by, bw, bh, None if poly is None else dumps(poly).decode(), mask_uri,
                None if kps is None else dumps(kps).decode(), nk, caption, area, crowd, attrs_json, extra_json,
                score, None, sid if type(sid) is int else None, key,
            ))
            if attrs and attrs.get("track_id") is not None:
                self._track(str(attrs["track_id"]), nid, asset_id, attrs.get("keyframe"), names.get(image_ref, ""), lcid)
            nid += 1
        merges += self._edits(image_assets, class_ids)
        result.objects_new = len(rows)
        result.objects_merged = len(merges)
        result.objects_deleted = len(deletions)
        return rows, merges, deletions

    def _owned(self, ids: list[int], what: str) -> list[int]:
        """``ids`` if each is an object of this project; a stranger's id refuses the batch (it is a bug, not input)."""
        if not ids:
            return []
        found: set[int] = set()
        for i in range(0, len(ids), 10_000):
            found.update(self.conn.execute(select(Annotation.id).join(Asset, Asset.id == Annotation.asset_id).where(
                Annotation.id.in_(ids[i:i + 10_000]), Asset.project_id == self.project.id)).scalars())
        missing = sorted(set(ids) - found)
        if missing:
            raise DsgenError(f"{self.b.file or self.b.source_uri}: {what} name objects that are not in project "
                             f"{self.project.name!r}: {missing[:10]}")
        return sorted(found)

    def _edits(self, image_assets: dict[Hashable, int], class_ids: dict[Hashable, int]) -> list[tuple[Any, ...]]:
        """Merge rows (the UPDATE's order) of :attr:`IngestBatch.edits`: the record's content, the old id and extra."""
        edits = self.b.edits
        if not edits:
            return []
        ids = self._owned([e.annotation_id for e in edits], "edits")
        a = Annotation
        old = {r.id: r for i in range(0, len(ids), 10_000) for r in self.conn.execute(
            select(a.id, a.asset_id, a.mask_uri, a.extra, a.caption).where(a.id.in_(ids[i:i + 10_000])))}
        out = []
        for aid, o in edits:
            prev = old[aid]
            if image_assets[o.image_ref] != prev.asset_id:
                raise DsgenError(f"{self.b.file or self.b.source_uri}: an edit moves object {aid} to another image")
            mask_uri = None if o.rle is None else self._new_mask(f"{aid}.b{self.batch_id}", o.rle)
            box = o.bbox or (None, None, None, None)
            out.append((None if o.class_ref is None else class_ids[o.class_ref], o.geometry_type, *box, o.polygon, mask_uri,
                        o.keypoints, o.num_keypoints, o.caption if o.caption is not None else prev.caption, o.area,
                        bool(o.iscrowd), o.attributes, prev.extra, o.score, aid))
            self.edited.append(aid)
        return out

    def _track(self, key: str, ann_id: int, asset_id: int, keyframe: Any, name: str, lcid: int | None) -> None:
        self.tracked[key].append((ann_id, asset_id, bool(keyframe) if keyframe is not None else None, name))
        self.track_class.setdefault(key, lcid)

    def _merge(self, o: ObjectRecord, lcid: int | None, old: Any) -> tuple[Any, ...] | Literal[False] | None:
        """The merged row of an existing object: False when nothing changes, None when refused.

        A field either file *gave* is merged (the other's absence is no contradiction); fields only
        derived (a box computed from a mask, an area from a box) never conflict and are kept.
        """
        rec = o.where or f"annotations[{o.position}] (id={o.source_id})"
        h_old = (old.extra or {}).get(HINTS) or {}
        h_new = (o.extra or {}).get(HINTS) or {}
        old_box = None if old.bbox_w is None else [old.bbox_x, old.bbox_y, old.bbox_w, old.bbox_h]
        given_old = {"label_class_id": old.label_class_id, "bbox": None if h_old.get("no_bbox") else old_box,
                     "polygon": old.polygon, "keypoints": old.keypoints, "num_keypoints": old.num_keypoints,
                     "caption": old.caption, "area": None if h_old.get("no_area") else old.area,
                     "iscrowd": None if h_old.get("no_iscrowd") else bool(old.iscrowd), "attributes": old.attributes,
                     "confidence": old.confidence}
        given_new = {"label_class_id": lcid, "bbox": None if o.bbox is None or h_new.get("no_bbox") else list(o.bbox),
                     "polygon": o.polygon, "keypoints": o.keypoints,
                     "num_keypoints": o.num_keypoints if o.keypoints is not None else None, "caption": o.caption,
                     "area": None if h_new.get("no_area") else o.area,
                     "iscrowd": None if h_new.get("no_iscrowd") else bool(o.iscrowd), "attributes": o.attributes,
                     "confidence": o.score}
        merged = dict(given_old)
        refused = False
        for fld, value in given_new.items():
            if value is None or _same(merged[fld], value):
                continue
            if merged[fld] is None:
                merged[fld] = value
            elif self._conflict(rec, _FIELD_NAMES.get(fld, fld), merged[fld], value, "the object"):
                merged[fld] = value
            elif self.on_conflict == "error":
                refused = True
        derived_box = old_box if old_box is not None else (list(o.bbox) if o.bbox is not None else None)
        merged["bbox"] = merged["bbox"] or derived_box
        if merged["area"] is None:
            merged["area"] = old.area if old.area is not None else o.area
        mask_uri = old.mask_uri
        if o.rle is not None:
            if old.mask_uri is None:
                mask_uri = self._new_mask(old.id, o.rle)
            else:
                kept = self.masks.get(old.mask_uri)
                if kept["counts"] != o.rle["counts"] or list(kept["size"]) != list(o.rle["size"]):
                    if self._conflict(rec, "segmentation", "a mask", "another mask", "the object"):
                        # Mask files never change (frozen versions point at them): a new one is written.
                        mask_uri = self._new_mask(f"{old.id}.b{self.batch_id}", o.rle)
                    elif self.on_conflict == "error":
                        refused = True
        extra, ok = self._merge_extra(rec, old.extra, o.extra)
        if refused or not ok:
            return None
        attrs = merged["attributes"]
        if attrs and attrs.get("track_id") is not None and old.track_id is None:
            self._track(str(attrs["track_id"]), old.id, old.asset_id, attrs.get("keyframe"), "",
                        merged["label_class_id"])
            self.track_updates.append(old.id)
        box = merged["bbox"] or (None, None, None, None)
        gtype = _geometry_type(merged["keypoints"], mask_uri, merged["polygon"], merged["bbox"], merged["caption"])
        if gtype == "polygon" and "polyline" in (old.geometry_type, o.geometry_type):
            gtype = "polyline"  # the same point list, open
        row = (merged["label_class_id"], gtype, *box, merged["polygon"], mask_uri, merged["keypoints"],
               merged["num_keypoints"], merged["caption"], merged["area"], bool(merged["iscrowd"]), attrs, extra,
               merged["confidence"])
        before = (old.label_class_id, old.geometry_type, old.bbox_x, old.bbox_y, old.bbox_w, old.bbox_h, old.polygon,
                  old.mask_uri, old.keypoints, old.num_keypoints, old.caption, old.area, bool(old.iscrowd),
                  old.attributes, old.extra, old.confidence)
        if row == before:
            return False
        return (*row, old.id)

    def _new_mask(self, key: int | str, rle: dict[str, Any]) -> str:
        uri = self.storage.uri(mask_key(key))
        self.mask_writes.append((key, rle))
        return uri

    def _conflict(self, rec: str, fld: str, old: Any, new: Any, what: str) -> bool:
        """Report a contradiction; True when the batch's value is to be taken."""
        self.conflicts += 1
        said = f"{what} has {_short(old)} in the registry, this file says {_short(new)}"
        if self.on_conflict == "error":
            self.report.error(self.b.file, rec, fld, f"conflict: {said} (choose with --on-conflict keep|replace)")
            return False
        taken = "the file's value replaced it" if self.on_conflict == "replace" else "the registry's value was kept"
        self.report.warning(self.b.file, rec, fld, f"conflict: {said}; {taken}")
        return self.on_conflict == "replace"

    def _merge_dict(self, rec: str, fld: str, old: dict[str, Any] | None, new: dict[str, Any] | None,
                    ) -> tuple[dict[str, Any] | None, bool]:
        if not new:
            return old, True
        out = dict(old or {})
        ok = True
        for k, v in new.items():
            if k not in out or _same(out[k], v):
                out[k] = v
            elif self._conflict(rec, f"{fld}.{k}" if fld != "extra" else k, out[k], v, "the record"):
                out[k] = v
            elif self.on_conflict == "error":
                ok = False
        return out or None, ok

    def _merge_extra(self, rec: str, old: dict[str, Any] | None, new: dict[str, Any] | None,
                     ) -> tuple[dict[str, Any] | None, bool]:
        """Unknown keys are united (a contradiction is a conflict); the format hints follow the fields."""
        old, new = dict(old or {}), dict(new or {})
        h_old, h_new = old.pop(HINTS, None) or {}, new.pop(HINTS, None) or {}
        merged, ok = self._merge_dict(rec, "extra", old or None, new or None)
        hints = _merge_hints(h_old, h_new)
        if hints:
            merged = {**(merged or {}), HINTS: hints}
        return merged or None, ok

    # -- writing

    def _write(self, new_assets: list[tuple[Any, ...]], updates: list[dict[str, Any]], rows: list[tuple[Any, ...]],
               merges: list[tuple[Any, ...]], deletions: list[int], image_assets: dict[Hashable, int],
               result: IngestResult) -> None:
        conn = self.conn
        insert_rows(conn, "assets", _ASSET_COLUMNS, new_assets)
        # The declarative stubs type __table__ as a FromClause; a mapped class's is a Table.
        assets = cast(Table, Asset.__table__)
        for u in updates:
            conn.execute(assets.update().where(Asset.id == u["id"]).values(
                **{k: v for k, v in u.items() if k != "id"}, updated_at=utcnow()))
        if self.media:
            conn.execute(assets.update().where(assets.c.id == bindparam("_id")).values(
                {c: bindparam(c) for c in ("fps", "frame_count", "duration_ms", "codec")}),
                [{**{k: v for k, v in m.items() if k != "id"}, "_id": m["id"]} for m in self.media])
        if self.b.frames:
            result.frames_new = self._write_frames(image_assets)
        if deletions:
            for i in range(0, len(deletions), 10_000):
                self.s.execute(delete(Annotation).where(Annotation.id.in_(deletions[i:i + 10_000])))
        uris = self.masks.put_many(self.mask_writes, progress=self.progress)
        self.written_masks = list(uris.values())
        result.masks = len(self.mask_writes)
        if uris:
            rows = [r if r[_MASK_URI] is None else (*r[:_MASK_URI], uris[r[0]], *r[_MASK_URI + 1:]) for r in rows]
        track_ids = self._write_tracks(rows)
        result.tracks = len(self.tracked)
        if track_ids:
            rows = [(*r[:_TRACK_ID], track_ids.get(r[0]), *r[_TRACK_ID + 1:]) for r in rows]
        b = self.b
        constants: dict[str, Any] = {"source": b.source, "is_normalized": False, "is_validated": False,
                                     "import_batch_id": self.batch_id, "created_at": self.now, "updated_at": self.now}
        if b.model_version_id is not None:
            constants.update(model_version_id=b.model_version_id, detection_model=b.detection_model)
        insert_rows(conn, "annotations", _ANNOTATION_COLUMNS, rows, constants=constants)
        if merges:
            self._update_objects(merges, track_ids)
        if track_ids:
            insert_rows(conn, "track_members", ("track_id", "annotation_id", "sequence_idx", "keyframe"),
                        self._track_member_rows(track_ids))
        if self.b.relations or self.b.groups:
            self._write_links(image_assets)
        for t in ("assets", "annotations", "tracks", *(("frames",) if self.b.frames else ())):
            sync_sequence(conn, t)
        self._outbox(new_assets, updates, rows, merges, deletions)
        result.conflicts = self.conflicts
        result.objects_skipped = self.report.skipped.get("annotations", 0)

    def _write_frames(self, image_assets: dict[Hashable, int]) -> int:
        """New frame rows, and existing frames that get the image they lacked; returns how many frames are new."""
        frames = [f for f in self.b.frames if f.video_ref in image_assets]  # a refused video was reported
        videos = sorted({image_assets[f.video_ref] for f in frames})
        if not videos:
            return 0
        known = {(v, i): (fid, img) for fid, v, i, img in self.conn.execute(select(
            Frame.id, Frame.video_asset_id, Frame.frame_idx, Frame.image_asset_id).where(Frame.video_asset_id.in_(videos)))}
        rows: list[tuple[Any, ...]] = []
        linked: list[dict[str, Any]] = []
        fid = next_id(self.conn, "frames")
        for f in frames:
            video = image_assets[f.video_ref]
            image = image_assets.get(f.image_ref) if f.image_ref is not None else None
            old = known.get((video, f.frame_idx))
            if old is None:
                rows.append((fid, video, f.frame_idx, f.timestamp_ms, image))
                known[(video, f.frame_idx)] = (fid, image)
                fid += 1
            elif old[1] is None and image is not None:
                linked.append({"_id": old[0], "image": image})
        insert_rows(self.conn, "frames", ("id", "video_asset_id", "frame_idx", "timestamp_ms", "image_asset_id"), rows)
        if linked:
            t = cast(Table, Frame.__table__)  # a FromClause to the stubs
            self.conn.execute(t.update().where(t.c.id == bindparam("_id")).values(image_asset_id=bindparam("image")),
                              linked)
        return len(rows)

    def _write_links(self, image_assets: dict[Hashable, int]) -> None:
        """Relations and groups between the batch's objects; those already recorded are left as they are."""
        from dsgen_core.registry.schema import AnnotationGroup, AnnotationGroupMember, AnnotationRelation

        b, ns = self.b, self.b.namespace
        # Images --skip-invalid left out take their relations and groups with them.
        relations = [x for x in b.relations if x.image_ref in image_assets]
        groups = [g for g in b.groups if g.image_ref in image_assets]
        for what, n in (("relations", len(b.relations) - len(relations)), ("groups", len(b.groups) - len(groups))):
            if n:
                self.report.skipped[what] += n
        assets = sorted({image_assets[x.image_ref] for x in relations} | {image_assets[g.image_ref] for g in groups})
        ids: dict[tuple[int, str], int] = {}
        for i in range(0, len(assets), 5_000):
            for row in self.conn.execute(select(Annotation.id, Annotation.asset_id, Annotation.source_key).where(
                    Annotation.asset_id.in_(assets[i:i + 5_000]), Annotation.source_key.like(f"{ns}:%"))):
                ids[(row.asset_id, row.source_key)] = row.id

        def oid(image_ref: Hashable, sid: int | str, what: str) -> int | None:
            found = ids.get((image_assets[image_ref], f"{ns}:{sid}"))
            if found is None:
                self.report.warning(b.file, what, "annotationId", f"names object {sid!r}, which is not in the batch")
            return found

        have = set(self.conn.execute(select(AnnotationRelation.from_annotation_id, AnnotationRelation.to_annotation_id)
                                     .where(AnnotationRelation.from_annotation_id.in_(list(ids.values())))).tuples())
        added: dict[tuple[int, int], str | None] = {}
        for r in relations:
            a, z = oid(r.image_ref, r.from_id, f"relation {r.external_id}"), oid(r.image_ref, r.to_id,
                                                                                   f"relation {r.external_id}")
            if a is None or z is None or (a, z) in have:
                continue
            if (a, z) in added:  # the registry holds one relation per ordered pair of objects
                self.report.warning(b.file, f"relation {r.external_id}", "annotationId",
                                    f"a second relation from {r.from_id!r} to {r.to_id!r} (the first is "
                                    f"{added[(a, z)]!r}): not kept")
                self.report.skipped["relations"] += 1
                continue
            self.s.add(AnnotationRelation(from_annotation_id=a, to_annotation_id=z,
                                          classification=r.classification, external_id=r.external_id))
            added[(a, z)] = r.external_id
        known = set(self.conn.execute(select(AnnotationGroup.asset_id, AnnotationGroup.external_id)
                                      .where(AnnotationGroup.asset_id.in_(assets))).tuples())
        for g in groups:
            asset = image_assets[g.image_ref]
            if (asset, g.external_id) in known:
                continue
            group = AnnotationGroup(asset_id=asset, classification=g.classification, external_id=g.external_id)
            self.s.add(group)
            self.s.flush()
            for sid, parent in g.members:
                member = oid(g.image_ref, sid, f"group {g.external_id}")
                up = oid(g.image_ref, parent, f"group {g.external_id}") if parent is not None else None
                if member is not None:
                    self.s.add(AnnotationGroupMember(group_id=group.id, annotation_id=member, parent_annotation_id=up))
        self.s.flush()

    def _update_objects(self, merges: list[tuple[Any, ...]], track_ids: dict[int, int]) -> None:
        t = cast(Table, Annotation.__table__)  # a FromClause to the stubs
        stmt = t.update().where(t.c.id == bindparam("_id")).values(
            {**{c: bindparam(c) for c in _MERGED_COLUMNS}, "import_batch_id": self.batch_id, "updated_at": utcnow()})
        self.conn.execute(stmt, [{**dict(zip(_MERGED_COLUMNS, m[:-1], strict=True)), "_id": m[-1]} for m in merges])
        if self.edited:
            # Whoever edited an object now answers for it: a model's box a person corrected is human.
            who = {"source": self.b.source, "model_version_id": self.b.model_version_id,
                   "detection_model": self.b.detection_model}
            for i in range(0, len(self.edited), 10_000):
                self.conn.execute(t.update().where(t.c.id.in_(self.edited[i:i + 10_000])).values(**who))
        moved = [{"_id": i, "track_id": track_ids[i]} for i in self.track_updates if i in track_ids]
        if moved:
            self.conn.execute(t.update().where(t.c.id == bindparam("_id")).values(track_id=bindparam("track_id")), moved)

    def _write_tracks(self, rows: list[tuple[Any, ...]]) -> dict[int, int]:
        """CVAT ``track_id`` attributes become tracks; returns annotation id -> track id."""
        if not self.tracked:
            return {}
        scope = self.b.track_scope if self.b.track_scope is not None else self.b.source_uri
        existing = {t.external_id: t for t in self.s.scalars(select(Track).where(
            Track.project_id == self.project.id, Track.scope == scope, Track.external_id.in_(list(self.tracked))))}
        out: dict[int, int] = {}
        for key, mem in self.tracked.items():
            mem.sort(key=lambda m: (_frame_no(m[3]) if _frame_no(m[3]) is not None else -1, m[3]))
            frames = [f for f in (_frame_no(m[3]) for m in mem) if f is not None]
            track = existing.get(key)
            if track is None:
                track = Track(project_id=self.project.id, scope=scope, external_id=key,
                              label_class_id=self.track_class.get(key), object_count=0)
                self.s.add(track)
            track.object_count = (track.object_count or 0) + len(mem)
            if frames:
                track.start_frame = min(frames + ([track.start_frame] if track.start_frame is not None else []))
                track.end_frame = max(frames + ([track.end_frame] if track.end_frame is not None else []))
            self.s.flush()
            for m in mem:
                out[m[0]] = track.id
        return out

    def _track_member_rows(self, track_ids: dict[int, int]) -> Iterable[tuple[Any, ...]]:
        for mem in self.tracked.values():
            for idx, (ann_id, _asset, keyframe, _name) in enumerate(mem):
                yield (track_ids[ann_id], ann_id, idx, keyframe)

    def _outbox(self, new_assets: list[tuple[Any, ...]], updates: list[dict[str, Any]], rows: list[tuple[Any, ...]],
                merges: list[tuple[Any, ...]], deletions: list[int]) -> None:
        """Work for the project's active embedding versions, in this same transaction."""
        versions = self.s.execute(select(EmbeddingVersion.id, EmbeddingVersion.level).where(
            EmbeddingVersion.is_active.is_(True),
            (EmbeddingVersion.project_id == self.project.id) | EmbeddingVersion.project_id.is_(None))).all()
        if not versions:
            return
        out: list[tuple[Any, ...]] = []
        # Images that got their file (or other bytes) now: they and their objects are embedded (again).
        refiled = [u["id"] for u in updates if "storage_uri" in u or "sha256" in u]
        refiled_objects: list[tuple[Any, ...]] = []
        if refiled and any(level == "object" for _vid, level in versions):
            for i in range(0, len(refiled), 10_000):
                refiled_objects += self.s.execute(select(Annotation.id, Annotation.asset_id).where(
                    Annotation.asset_id.in_(refiled[i:i + 10_000]))).all()
        for vid, level in versions:
            if level == "image":
                # Not a video's own file, nor an image without a file (nothing to embed until it has one).
                out += [(None, a[0], vid, "upsert") for a in new_assets if a[2] == "image" and a[5] is not None]
                out += [(None, a, vid, "upsert") for a in refiled]
                continue
            out += [(r[0], r[1], vid, "upsert") for r in rows]
            out += [(a, asset, vid, "upsert") for a, asset in refiled_objects]
            out += [(m[-1], None, vid, "upsert") for m in merges]
            out += [(d, None, vid, "delete") for d in deletions]
        insert_rows(self.conn, "embedding_outbox", ("annotation_id", "asset_id", "embedding_version_id", "operation"),
                    out, constants={"status": "pending", "retry_count": 0, "created_at": self.now})

    def _counts(self, result: IngestResult) -> dict[str, int]:
        # A batch without frames stores the counts it always did (no frames_new key).
        skip = ("batch_id", "change_seq") if self.b.frames else ("batch_id", "change_seq", "frames_new")
        return {k: v for k, v in vars(result).items() if isinstance(v, int) and k not in skip}

    def _record(self, result: IngestResult) -> None:
        """Audit always; change events only for what changed, so followers are not woken for nothing."""
        b, pid = self.b, self.project.id
        detail = {"batch": self.batch_id, "source": b.source}
        if result.images_new or result.images_updated or result.frames_new:
            frames = {"frames": result.frames_new} if b.frames else {}
            result.change_seq = record_change(self.s, project_id=pid, entity="assets", op=b.operation,
                                              entity_id=self.batch_id, batch_id=self.batch_id, count=result.images_new + result.images_updated,
                                              detail={**detail, "new": result.images_new, "updated": result.images_updated,
                                                      **frames})
        touched = result.objects_new + result.objects_merged + result.objects_deleted
        if touched or result.classes_new:
            result.change_seq = record_change(
                self.s, project_id=pid, entity="annotations", op=b.operation, entity_id=self.batch_id, count=touched,
                batch_id=self.batch_id,
                detail={**detail, "new": result.objects_new, "merged": result.objects_merged,
                        "deleted": result.objects_deleted, "classes_new": result.classes_new})
        counts = self._counts(result)
        audit(self.s, b.audit_action, project_id=pid, entity_type="import_batch", entity_ids=[self.batch_id],
              detail={"file": b.file or b.source_uri, "format": b.format, **counts, **b.detail}, actor=self.actor)


# --------------------------------------------------------------------------- helpers

_FIELD_NAMES = {"label_class_id": "category_id", "confidence": "score"}


def _dumps(v: Any) -> str | None:
    return None if v is None else orjson.dumps(v).decode()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
        except (TypeError, ValueError):
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _union_spec(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    """Keypoint names and skeleton: what one file lacks, the other may give."""
    if not new:
        return old
    if not old:
        return new
    out = dict(old)
    for k, v in new.items():
        if not out.get(k) and v:
            out[k] = v
    return out


def _spec_differences(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[tuple[str, Any, Any]]:
    """Keypoint names or skeletons that both give and that differ."""
    return [(k, old[k], v) for k, v in (new or {}).items() if old and old.get(k) and v and old[k] != v]


def _merge_hints(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """How the merged object is written back: a field is absent only if every file left it out, and
    a field's shape is the one of the file that gave it."""
    if not new:
        return old  # no hint: the file wrote every field the usual way
    out: dict[str, Any] = {}
    for fld, value_hints in (("area", ("area",)), ("segmentation", ("segmentation", "rle")), ("iscrowd", ()),
                             ("bbox", ())):
        absent_old, absent_new = bool(old.get(f"no_{fld}")), bool(new.get(f"no_{fld}"))
        if absent_old and absent_new:
            out[f"no_{fld}"] = True
        src = new if absent_old and not absent_new else old
        for h in value_hints:
            if h in src:
                out[h] = src[h]
    if "category_id" in old or "category_id" in new:
        out["category_id"] = old.get("category_id", new.get("category_id"))
    return out


def _geometry_type(keypoints: Any, mask_uri: Any, polygon: Any, bbox: Any, caption: Any) -> str:
    if keypoints is not None:
        return "keypoints"
    if mask_uri is not None:
        return "mask"
    if polygon:
        return "polygon"
    if bbox is not None:
        return "bbox"
    if caption is not None:
        return "caption"
    return "label"


def _frame_no(name: str) -> int | None:
    m = _FRAME_NO.search(Path(name).stem) if name else None
    return int(m.group(1)) if m else None


def frame_position(name: str) -> tuple[str, int] | None:
    """The burst an image belongs to and its frame number there, from its name: ``seq_03/frame_000005.jpg``
    is frame 5 of ``seq_03/frame_`` (the same number tracks take their start and end frames from)."""
    p = Path(name)
    m = _FRAME_NO.search(p.stem) if name else None
    if m is None:
        return None
    return (p.parent / p.stem[:m.start()]).as_posix(), int(m.group(1))
