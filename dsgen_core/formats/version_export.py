"""Exports of a frozen dataset version: COCO (one file per split) and Ultralytics YOLO.

Both read the version's annotation snapshot, never the live registry, so an export of a version
is the same whatever happened to the registry since it froze; and both write deterministically
(sorted, fixed float formatting, no timestamps), so re-exporting gives identical bytes. Images are
hard-linked into the export when the filesystem allows it, else copied.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import time
import typing
from collections import Counter, defaultdict, namedtuple
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import yaml
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError, VersionTampered
from dsgen_core.formats.coco.exporter import coco_document
from dsgen_core.registry.bulk import iter_rows
from dsgen_core.registry.schema import (
    Asset,
    DatasetVersion,
    DatasetVersionAnnotation,
    Project,
)
from dsgen_core.storage import staging
from dsgen_core.storage.base import Storage
from dsgen_core.storage.masks import MaskStore, mask_outlines
from dsgen_core.versions.content_hash import require_intact
from dsgen_core.versions.lifecycle import get_version
from dsgen_core.versions.members import Member, class_order, cvat_mask_flag, version_classes, version_members

YOLO_TASKS = ("detect", "segment", "pose")


@dataclass
class ExportResult:
    format: str
    tag: str
    out_dir: Path
    files: dict[str, int]  # split -> images
    annotations: dict[str, int]  # split -> objects written
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> objects left out
    linked: int = 0
    copied: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"format": self.format, "tag": self.tag, "out_dir": str(self.out_dir), "images": self.files,
                "annotations": self.annotations, "skipped": self.skipped, "hard_links": self.linked,
                "copies": self.copied, "seconds": round(self.seconds, 3)}


def _frozen(session: Session, project: Project, tag: str) -> DatasetVersion:
    """The frozen version ``tag``; its content is checked against its hash before the export is published."""
    v = get_version(session, project, tag)
    if not v.is_frozen:
        raise DsgenError(f"version {tag!r} is a draft; freeze it first (`dsgen version freeze {tag}`)")
    return v


def _require_intact(session: Session, v: DatasetVersion, storage: Storage) -> None:
    require_intact(session, v, storage, purpose="to export it")


_JSON_COLUMNS = ("polygon", "keypoints", "attributes", "extra")
# The field names are written out in the call: mypy types a namedtuple only from literal names.
SnapshotRow = namedtuple("SnapshotRow", ("asset_id", "label_class_id", "geometry_type", "bbox_x", "bbox_y",
                                         "bbox_w", "bbox_h", "polygon", "mask_uri", "keypoints", "num_keypoints",
                                         "caption", "area", "iscrowd", "attributes", "extra", "confidence",
                                         "external_id"))
_SNAPSHOT_FIELDS: tuple[str, ...] = SnapshotRow._fields
# What each YOLO task reads: fewer columns (above all fewer JSON ones to parse) is most of its speed.
_YOLO_FIELDS = {
    "detect": ("asset_id", "label_class_id", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "iscrowd", "cvat_mask"),
    "segment": ("asset_id", "label_class_id", "iscrowd", "cvat_mask", "polygon", "mask_uri"),
    "pose": ("asset_id", "label_class_id", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "iscrowd", "cvat_mask", "keypoints"),
}


def _snapshot(session: Session, v: DatasetVersion, fields: tuple[str, ...] = _SNAPSHOT_FIELDS) -> dict[int, list[Any]]:
    """The version's annotations by asset, as plain rows: ORM objects cost ~50 us each, too much at 1M."""
    t = DatasetVersionAnnotation.__table__
    # typeshed types namedtuple()'s result as a plain tuple class, without _make
    row_type: type[NamedTuple] = SnapshotRow if fields == _SNAPSHOT_FIELDS else \
        typing.cast("type[NamedTuple]", namedtuple("Row", fields))
    cols = [cvat_mask_flag(t.c.attributes) if f == "cvat_mask" else cast(t.c[f], Text) if f in _JSON_COLUMNS else t.c[f]
            for f in fields]
    json_at = [i for i, f in enumerate(fields) if f in _JSON_COLUMNS]
    loads = orjson.loads
    by_asset: dict[int, list[Any]] = defaultdict(list)
    rows = iter_rows(session, select(*cols).where(t.c.dataset_version_id == v.id).order_by(t.c.annotation_id))
    if not json_at:
        for r in rows:
            by_asset[r[0]].append(row_type._make(r))
        return by_asset
    for r in rows:
        vals = list(r)
        for i in json_at:
            if vals[i] is not None:
                vals[i] = loads(vals[i])
        by_asset[vals[0]].append(row_type._make(vals))
    return by_asset


def place_image(src: str | None, dest: str | Path) -> str:
    """Hard link, else copy; returns "link" or "copy". Missing sources are a clear error."""
    if not src:
        raise DsgenError("an image of the version has no file (imported without --images); the export needs every image")
    try:
        os.link(src, dest)
        return "link"
    except FileNotFoundError:
        raise DsgenError(f"image file {src!r} is missing; the export needs every member image (re-import its folder)") from None
    except OSError:
        shutil.copyfile(src, dest)
        return "copy"


def _write_member(src: str | None, image_dest: str, label_path: str, labels: str) -> str:
    how = place_image(src, image_dest)
    with open(label_path, "w") as f:
        f.write(labels)
    return how


@contextmanager
def staged_dir(out_dir: Path, owned: tuple[str, ...]) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` to write an export into.

    On success what it holds replaces ``owned`` (what an earlier export of ours wrote; anything
    else in ``out_dir`` stays); on failure it is removed, so a failed export leaves nothing; a
    killed one leaves it marked as staging, and the next export into ``out_dir`` removes it.
    Beside, not in /tmp: the rename must stay on one filesystem, and so must the hard links.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{out_dir.name}.tmp-"
    # One writer at a time per target (a backfill and automation exporting the same version at
    # once): the second waits for the first, then writes. The kernel drops the lock of a killed
    # writer. The lock file lives in the temp folder, so the user's folder gets nothing but the export.
    key = hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:32]
    with open(Path(tempfile.gettempdir()) / f"dsgen-export-{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        staging.sweep_transient(out_dir.parent, prefix)  # exports into it that were killed
        work = staging.transient_folder(out_dir.parent, prefix)
        try:
            yield work
            staging.unmark(work)
            if not out_dir.exists():
                os.rename(work, out_dir)
                return
            for name in owned:
                p = out_dir / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
            for child in work.iterdir():
                os.rename(child, out_dir / child.name)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def export_version_coco(session: Session, project: Project, tag: str, out_dir: Path, *, storage: Storage) -> ExportResult:
    """``annotations/instances_<split>.json`` plus ``images/<split>/`` for each split of a frozen version."""
    t0 = time.perf_counter()
    v = _frozen(session, project, tag)
    _require_intact(session, v, storage)
    with staged_dir(Path(out_dir), ("annotations", "images")) as work:
        result = _write_coco(session, v, work, storage)
    result.out_dir = Path(out_dir)
    result.seconds = time.perf_counter() - t0
    return result


def _write_coco(session: Session, v: DatasetVersion, out_dir: Path, storage: Storage) -> ExportResult:
    tag = v.version_tag
    members = version_members(session, v)
    snap = _snapshot(session, v)
    base = version_classes(session, v)
    masks = MaskStore(storage)
    result = ExportResult("coco", tag, out_dir, {}, {})
    by_split: dict[str, list[Member]] = defaultdict(list)
    for m in members:
        by_split[m.split].append(m)
    for split in sorted(by_split):
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        for m in by_split[split]:
            how = place_image(m.asset.storage_uri, out_dir / "images" / split / m.name)
            result.linked += how == "link"
            result.copied += how == "copy"
        # Exported assets carry their export file names, so the JSON points at files that exist.
        assets = [_renamed(m) for m in by_split[split]]
        anns = [a for m in by_split[split] for a in snap.get(m.asset.id, [])]
        doc = coco_document(session, assets, anns, base, masks)
        (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
        (out_dir / "annotations" / f"instances_{split}.json").write_bytes(orjson.dumps(doc))
        result.files[split] = len(assets)
        result.annotations[split] = len(doc["annotations"])
    return result


def _renamed(m: Member) -> Asset:
    a = Asset(id=m.asset.id, width=m.asset.width, height=m.asset.height, file_name=m.name,
              external_id=m.asset.external_id, extra=m.asset.extra, import_batch_id=m.asset.import_batch_id)
    return a


def _fmt(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.6f}"


def _polygon_of(a: Any, masks: MaskStore) -> list[float] | None:
    """One polygon in pixels: COCO parts joined the way Ultralytics' own converter joins them; masks traced."""
    parts: list[list[float]] = []
    if a.polygon:
        parts = [p for p in a.polygon if len(p) >= 6]
    elif a.mask_uri:
        parts = mask_outlines(masks.get(a.mask_uri))
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    from dsgen_core.inference.ultralytics_env import import_ultralytics

    import_ultralytics()
    from ultralytics.data.converter import merge_multi_segment

    return np.concatenate(merge_multi_segment(parts), axis=0).reshape(-1).tolist()


def export_version_yolo(session: Session, project: Project, tag: str, out_dir: Path, *, storage: Storage,
                        task: str = "detect", class_keys: list[str] | None = None) -> ExportResult:
    """An Ultralytics dataset: ``images/<split>/``, ``labels/<split>/*.txt`` and ``data.yaml`` with the names.

    ``detect`` writes boxes; ``segment`` polygons (masks are traced); ``pose`` boxes plus keypoints.
    Crowd regions and objects without the task's geometry are left out and counted. ``class_keys``
    numbers the classes as another version does (rehearsal data for a model of a newer ontology);
    by default they are numbered in the version's ontology order.
    """
    if task not in YOLO_TASKS:
        raise DsgenError(f"unknown YOLO task {task!r}; use one of {', '.join(YOLO_TASKS)}")
    t0 = time.perf_counter()
    v = _frozen(session, project, tag)
    with staged_dir(Path(out_dir), ("images", "labels", "data.yaml", "dsgen_export.json")) as work:
        try:
            result = _write_yolo(session, v, work, storage, task, class_keys)
        except VersionTampered:
            raise
        except DsgenError:
            _require_intact(session, v, storage)  # a tampered version is reported as that, not as what it broke
            raise
    result.out_dir = Path(out_dir)
    result.seconds = time.perf_counter() - t0
    return result


def _write_yolo(session: Session, v: DatasetVersion, out_dir: Path, storage: Storage, task: str,
                class_keys: list[str] | None) -> ExportResult:
    tag = v.version_tag
    classes = class_order(session, v)
    if not classes:
        raise DsgenError(f"version {tag!r} has no label classes to train on")
    index = {c.key: i for i, c in enumerate(classes)} if class_keys is None else {k: i for i, k in enumerate(class_keys)}
    display = {c.key: c.display_name for c in classes}
    names = {i: display.get(k, k) for k, i in index.items()}
    key_of = {c.id: c.key for c in version_classes(session, v)}
    kpt_shape: list[int] | None = None
    if task == "pose":
        specs = [c for c in classes if c.keypoint_spec and c.keypoint_spec.get("keypoints")]
        if not specs:
            raise DsgenError(f"version {tag!r} has no class with keypoints; pose export needs them")
        spec = specs[0].keypoint_spec
        assert spec is not None  # specs holds only classes with one
        kpt_shape = [len(spec["keypoints"]), 3]
    members = version_members(session, v)
    snap = _snapshot(session, v, _YOLO_FIELDS[task])
    masks = MaskStore(storage)
    result = ExportResult(f"yolo-{task}", tag, out_dir, Counter(), Counter())
    skipped: Counter[str] = Counter()
    img_dir: dict[str, str] = {}
    lbl_dir: dict[str, str] = {}
    for split in sorted({m.split for m in members}):
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
        img_dir[split], lbl_dir[split] = str(out_dir / "images" / split), str(out_dir / "labels" / split)
    pool = ThreadPoolExecutor(max_workers=4)
    pending: list[Future[str]] = []
    for m in members:
        # Plain strings, not pathlib: a hundred thousand images make its object churn show.
        w, h = m.asset.width, m.asset.height
        lines: list[str] = []
        for a in snap.get(m.asset.id, []):
            key = key_of.get(a.label_class_id)
            if key not in index:
                skipped["no class in the ontology"] += 1
                continue
            if a.iscrowd and not a.cvat_mask:
                skipped["crowd region"] += 1
                continue
            cls = index[key]
            if task == "segment":
                poly = _polygon_of(a, masks)
                if poly is None:
                    skipped["no polygon or mask"] += 1
                    continue
                coords = " ".join(f"{_fmt(x / w)} {_fmt(y / h)}" for x, y in zip(poly[0::2], poly[1::2], strict=True))
                lines.append(f"{cls} {coords}")
            else:
                if a.bbox_w is None or a.bbox_w <= 0 or a.bbox_h <= 0:
                    skipped["no box"] += 1
                    continue
                cx, cy, bw, bh = (a.bbox_x + a.bbox_w / 2) / w, (a.bbox_y + a.bbox_h / 2) / h, a.bbox_w / w, a.bbox_h / h
                # Clamped inline: a function call per number is a second per million boxes.
                cx = 0.0 if cx < 0 else 1.0 if cx > 1 else cx
                cy = 0.0 if cy < 0 else 1.0 if cy > 1 else cy
                bw = 0.0 if bw < 0 else 1.0 if bw > 1 else bw
                bh = 0.0 if bh < 0 else 1.0 if bh > 1 else bh
                box = f"{cls} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}"
                if task == "pose":
                    assert kpt_shape is not None  # set above for pose
                    kps = a.keypoints or []
                    if len(kps) != 3 * kpt_shape[0]:
                        skipped["keypoints missing or of another skeleton"] += 1
                        continue
                    pts = []
                    for x, y, vis in zip(kps[0::3], kps[1::3], kps[2::3], strict=True):
                        pts.append(f"{_fmt(x / w)} {_fmt(y / h)} {int(vis)}" if vis else "0.000000 0.000000 0")
                    box += " " + " ".join(pts)
                lines.append(box)
        stem = m.name.rpartition(".")[0] or m.name
        # Links and label files are written by threads: the syscalls release the GIL, so they
        # overlap with building the next image's labels.
        pending.append(pool.submit(_write_member, m.asset.storage_uri, f"{img_dir[m.split]}/{m.name}",
                                   f"{lbl_dir[m.split]}/{stem}.txt", "".join(f"{ln}\n" for ln in lines)))
        result.files[m.split] += 1
        result.annotations[m.split] += len(lines)
    # Checked while the threads still link and write: the check is CPU, the writes are syscalls, and
    # nothing leaves the staging folder unless it passes.
    try:
        _require_intact(session, v, storage)
    finally:
        pool.shutdown(wait=True)
    for fut in pending:
        how = fut.result()  # re-raises a missing image as the DsgenError it is
        result.linked += how == "link"
        result.copied += how == "copy"
    data: dict[str, Any] = {
        # No `path`: Ultralytics then resolves the splits next to this file, wherever the folder is moved.
        **{s: f"images/{s}" for s in ("train", "val", "test") if s in result.files},
        # Ultralytics needs a val entry; a version without a val split validates on train.
        **({} if "val" in result.files else {"val": "images/train"}),
        "names": names,
    }
    if kpt_shape:
        data["kpt_shape"] = kpt_shape
        data["flip_idx"] = list(range(kpt_shape[0]))
    (out_dir / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    result.files, result.annotations, result.skipped = dict(result.files), dict(result.annotations), dict(skipped)
    (out_dir / "dsgen_export.json").write_bytes(orjson.dumps(
        {"version": tag, "content_hash": v.content_hash, "task": task, "images": result.files,
         "annotations": result.annotations, "skipped": result.skipped}, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
    return result
