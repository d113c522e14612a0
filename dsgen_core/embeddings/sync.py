"""The sync manager (seed 000): outbox -> Chroma, reconcile, status.

``sync`` drains a version's pending outbox rows in batches: it reads the batch and the facts of
its objects in one short transaction, embeds and writes to Chroma outside any transaction, then
marks exactly the rows it read as synced. Chroma writes are upserts keyed by the registry id, so a
batch written twice (the process killed after Chroma and before the mark, or Chroma stopped
mid-batch) leaves one record, never two; nothing is marked synced before Chroma has it.

A record that cannot be embedded (its image file is gone or unreadable) is retried with
exponential backoff and marked ``failed`` after ``max_tries``. An unreachable Chroma is not the
record's fault: the sync stops with :class:`~dsgen_core.errors.ServiceUnavailable` and the batch
stays pending, tries uncounted.

``reconcile`` compares the registry with Chroma (missing, extra, stale geometry or encoder,
drifted metadata) and repairs: missing and stale records are queued and synced, extra ones
deleted, metadata updated in place. Chroma follows the registry, never the reverse.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session
from tqdm import tqdm

from dsgen_core.embeddings.spec import Encoder
from dsgen_core.embeddings.store import VectorStore
from dsgen_core.embeddings.versions import collection_name, model_weights, queue_all, spec_of, weights_path
from dsgen_core.errors import DsgenError
from dsgen_core.formats.images import open_image
from dsgen_core.registry.changes import audit
from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import (
    Annotation,
    Asset,
    EmbeddingOutbox,
    EmbeddingVersion,
    LabelClass,
    Project,
    as_utc,
)
from dsgen_core.storage.base import Storage

MAX_TRIES = 5
BACKOFF_BASE_S = 30.0  # 30 s, 1 min, 2 min, ... capped at an hour
BATCH = 512
_LOCK_SPACE = 0x64736765  # "dsge": PostgreSQL advisory locks of embedding syncs, keyed by version id


@dataclass
class Target:
    """One thing to embed: an object (box on an image) or a whole image, with its registry facts."""

    id: int
    asset_id: int
    uri: str | None
    box: tuple[float, float, float, float] | None
    metadata: dict[str, Any]


class Embedder(Protocol):
    """Vectors for targets: (ids embedded, their vectors in that order, id -> why not)."""

    def __call__(self, level: str, targets: Sequence[Target]) -> tuple[list[int], np.ndarray, dict[int, str]]: ...


class ImageEmbedder:
    """Loads each image once and runs the encoder over it (boxes for objects, the image for images)."""

    def __init__(self, encoder: Encoder, storage: Storage, images_per_call: int = 16) -> None:
        self.encoder, self.storage, self.per_call = encoder, storage, images_per_call

    def _load(self, uri: str) -> Image.Image:
        if uri.startswith("s3://"):
            im = open_image(io.BytesIO(self.storage.read_bytes(self.storage.key_of(uri))))
        else:
            im = open_image(uri)
        return im.convert("RGB")

    def __call__(self, level: str, targets: Sequence[Target]) -> tuple[list[int], np.ndarray, dict[int, str]]:
        by_asset: dict[int, list[Target]] = defaultdict(list)
        for t in targets:
            by_asset[t.asset_id].append(t)
        failed: dict[int, str] = {}
        loaded: list[tuple[Image.Image, list[Target]]] = []
        for group in by_asset.values():
            uri = group[0].uri
            try:
                if not uri:
                    raise OSError("the image has no file")
                loaded.append((self._load(uri), group))
            except Exception as exc:  # noqa: BLE001 - PIL raises many types for one cause: the file cannot be read
                for t in group:
                    failed[t.id] = f"image {uri}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ids: list[int] = []
        parts: list[np.ndarray] = []
        for i in range(0, len(loaded), self.per_call):
            chunk = loaded[i:i + self.per_call]
            if level == "image":
                parts.append(self.encoder.embed_images([im for im, _ in chunk]))
                ids += [g[0].id for _, g in chunk]
            else:
                boxes = [np.asarray([t.box for t in g], dtype=np.float32).reshape(-1, 4) for _, g in chunk]
                out = self.encoder.embed_boxes([im for im, _ in chunk], boxes)
                parts += out
                ids += [t.id for _, g in chunk for t in g]
        dim = self.encoder.spec.dimension
        vecs = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, dim), np.float32)
        return ids, vecs, failed


@dataclass
class SyncResult:
    version: str
    level: str
    upserted: int = 0
    deleted: int = 0
    skipped: int = 0  # objects with nothing to embed (no box)
    retried: int = 0  # rows that failed this time and will be tried again later
    failed: int = 0  # rows that reached max tries
    batches: int = 0
    seconds: float = 0.0
    pending: int = 0  # left after this run
    errors: list[str] = field(default_factory=list)  # the first few reasons

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def geometry_key(box: tuple[float, float, float, float] | None, sha256: str | None) -> str:
    """What a vector was computed from: the box and the image's bytes. A change of either makes it stale."""
    body = f"{box}|{sha256}".encode()
    return hashlib.sha1(body).hexdigest()[:16]


def _object_rows(session: Session, ids: Sequence[int]) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(ids), 10_000):
        out += session.execute(
            select(Annotation.id, Annotation.asset_id, Annotation.bbox_x, Annotation.bbox_y, Annotation.bbox_w,
                   Annotation.bbox_h, Annotation.label_class_id, LabelClass.key, Annotation.source,
                   Annotation.confidence, Annotation.is_validated, Asset.storage_uri, Asset.sha256, Asset.project_id)
            .join(Asset, Asset.id == Annotation.asset_id).outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id)
            .where(Annotation.id.in_(ids[i:i + 10_000]), Asset.deleted_at.is_(None))).all()
    return out


def _image_rows(session: Session, ids: Sequence[int]) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(ids), 10_000):
        out += session.execute(
            select(Asset.id, Asset.storage_uri, Asset.sha256, Asset.width, Asset.height, Asset.project_id,
                   Asset.file_name)
            .where(Asset.id.in_(ids[i:i + 10_000]), Asset.deleted_at.is_(None), Asset.asset_type == "image")).all()
    return out


def object_target(r: Any, project: Project, fingerprint: str) -> Target | None:
    """The target of an object row; None when there is nothing to embed (no box, or no image file yet).

    Every fact key is written, None where the registry has no value: Chroma merges an upsert's
    metadata into the record's, and only a None removes a key (a class or score that went away).
    """
    if r.bbox_w is None or r.bbox_h is None or r.bbox_x is None or r.bbox_y is None or not r.storage_uri:
        return None
    box = (float(r.bbox_x), float(r.bbox_y), float(r.bbox_w), float(r.bbox_h))
    meta: dict[str, Any] = {"object_id": int(r.id), "image_id": int(r.asset_id), "project": project.name,
                            "project_id": int(project.id), "source": r.source, "validated": bool(r.is_validated),
                            "geom": geometry_key(box, r.sha256), "fp": fingerprint[:16],
                            "category": r.key if r.label_class_id is not None else None,
                            "category_id": int(r.label_class_id) if r.label_class_id is not None else None,
                            "confidence": float(r.confidence) if r.confidence is not None else None}
    return Target(int(r.id), int(r.asset_id), r.storage_uri, box, meta)


def image_target(r: Any, project: Project, fingerprint: str) -> Target | None:
    """The target of an image row; None when it has no file (yet)."""
    if not r.storage_uri:
        return None
    meta: dict[str, Any] = {"image_id": int(r.id), "project": project.name, "project_id": int(project.id),
                            "file": r.file_name, "geom": geometry_key(None, r.sha256), "fp": fingerprint[:16]}
    return Target(int(r.id), int(r.id), r.storage_uri, None, meta)


def _targets(session: Session, project: Project, ev: EmbeddingVersion, ids: Sequence[int]) -> dict[int, Target | None]:
    """id -> target for the ids the registry still holds (None: held, nothing to embed)."""
    fp = ev.fingerprint or ""
    if ev.level == "object":
        return {int(r.id): object_target(r, project, fp) for r in _object_rows(session, ids)
                if r.project_id == project.id}
    return {int(r.id): image_target(r, project, fp) for r in _image_rows(session, ids) if r.project_id == project.id}


def embed_objects(session: Session, project: Project, ids: Sequence[int], *, encoder: Encoder,
                  storage: Storage) -> dict[int, np.ndarray]:
    """Vectors of these objects computed now with ``encoder`` (no Chroma): for comparisons and benchmarks."""
    targets = [t for r in _object_rows(session, ids) if r.project_id == project.id
               and (t := object_target(r, project, "")) is not None]
    got, vecs, _failed = ImageEmbedder(encoder, storage)("object", targets)
    return dict(zip(got, vecs, strict=True))


def sync_version(registry: Registry, project_name: str, version_id: int, *, store: VectorStore,
                 embedder: Callable[[], Embedder], batch_size: int = BATCH, max_tries: int = MAX_TRIES,
                 progress: bool = False, limit: int | None = None, actor: str | None = None) -> SyncResult:
    """Drain one embedding version's outbox into its Chroma collection; see the module docstring.

    ``embedder`` is a factory (:func:`encoder_factory`): called once, and only when there is
    something to embed (building an encoder loads weights).
    """

    start = time.perf_counter()
    with _version_lock(registry, version_id):
        return _sync_locked(registry, project_name, version_id, store=store, embedder=embedder, batch_size=batch_size,
                            max_tries=max_tries, progress=progress, limit=limit, actor=actor, start=start)


@contextmanager
def _version_lock(registry: Registry, version_id: int) -> Iterator[None]:
    """One sync of a version at a time: two would each write what they read, and the slower could put
    older facts over newer ones. A second sync waits, then finds the work done."""
    if registry.dialect == "postgresql":
        with registry.engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_LOCK_SPACE}, {int(version_id)})")
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_LOCK_SPACE}, {int(version_id)})")
        return
    path = registry.settings.home / "registry" / "locks" / f"embeddings-{int(version_id)}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sync_locked(registry: Registry, project_name: str, version_id: int, *, store: VectorStore,
                 embedder: Callable[[], Embedder], batch_size: int, max_tries: int, progress: bool,
                 limit: int | None, actor: str | None, start: float) -> SyncResult:
    from dsgen_core.registry.projects import get_project

    with registry.session() as s:
        project = get_project(s, project_name)
        ev = _own_version(s, project, version_id)
        total = _pending_count(s, ev)
    result = SyncResult(ev.name, ev.level)
    col = store.collection(ev)
    built: Embedder | None = None
    bar = tqdm(total=total, desc=f"embed {collection_name(ev)}", unit="row", disable=not progress or total == 0)
    done_rows = 0
    try:
        while limit is None or done_rows < limit:
            with registry.session() as s:
                rows = s.execute(select(EmbeddingOutbox.id, EmbeddingOutbox.annotation_id, EmbeddingOutbox.asset_id,
                                        EmbeddingOutbox.operation, EmbeddingOutbox.retry_count)
                                 .where(EmbeddingOutbox.embedding_version_id == ev.id,
                                        EmbeddingOutbox.status == "pending", _due(s))
                                 .order_by(EmbeddingOutbox.id).limit(batch_size)).all()
                if not rows:
                    break
                last: dict[int, Any] = {}
                for r in rows:  # later rows of one target win: the registry's latest word
                    last[int(r.annotation_id if ev.level == "object" else r.asset_id)] = r
                targets = _targets(s, project, ev, [k for k, r in last.items() if r.operation == "upsert"])
            # Held with nothing to embed (no box, no image file yet) counts as absent: its old vector goes.
            deletes = [k for k, r in last.items() if r.operation == "delete" or targets.get(k) is None]
            todo = [t for k, r in last.items() if (t := targets.get(k)) is not None and r.operation == "upsert"]
            result.skipped += sum(1 for k, r in last.items() if r.operation == "upsert" and k in targets
                                  and targets[k] is None)
            failures: dict[int, str] = {}
            if todo:
                if built is None:
                    built = embedder()
                ids, vecs, failures = built(ev.level, todo)
                if vecs.shape[1:] != (ev.dimension,) and len(ids):
                    raise DsgenError(f"the encoder gives {vecs.shape[1]}-d vectors, embedding version {ev.name!r} "
                                     f"holds {ev.dimension}-d ones; nothing was written")
                by_id = {t.id: t for t in todo}
                store.upsert(col, ids, vecs, [by_id[i].metadata for i in ids])
                result.upserted += len(ids)
            # A target whose upsert failed but whose id was deleted earlier in the batch (ids are reused):
            # the old record goes now, or it would stand for the new object until the retry.
            gone_first = {_target_of(r, ev) for r in rows if r.operation == "delete"} & set(failures)
            if deletes or gone_first:
                store.delete(col, sorted({*deletes, *gone_first}))
                result.deleted += len(deletes)
            self_rows = [r for r in rows if _target_of(r, ev) in failures]
            done = [k for k in last if k not in failures]
            _mark(registry, ev, max(r.id for r in rows), done, self_rows, failures, max_tries, result)
            result.batches += 1
            done_rows += len(rows)
            bar.update(len(rows))
    finally:
        bar.close()
    with registry.session() as s:
        ev2 = s.get(EmbeddingVersion, version_id)
        assert ev2 is not None
        result.pending = _pending_count(s, ev2)
        if result.upserted or result.deleted or result.failed:
            audit(s, "embeddings.sync", project_id=ev2.project_id, entity_type="embedding_version",
                  entity_ids=[ev2.id], detail={k: v for k, v in result.to_dict().items() if k != "errors"},
                  actor=actor)
    result.seconds = round(time.perf_counter() - start, 3)
    return result


def _mark(registry: Registry, ev: EmbeddingVersion, upto: int, done: list[int], failed_rows: list[Any],
          failures: dict[int, str], max_tries: int, result: SyncResult) -> None:
    """Rows of the targets Chroma now has (up to the batch's last row, earlier failed ones too) become
    synced; the failed targets' rows count a try, wait out their backoff, or fail for good."""
    column = EmbeddingOutbox.annotation_id if ev.level == "object" else EmbeddingOutbox.asset_id
    now = datetime.now(UTC)
    with registry.session() as s:
        for i in range(0, len(done), 10_000):
            s.execute(update(EmbeddingOutbox).where(
                EmbeddingOutbox.embedding_version_id == ev.id, column.in_(done[i:i + 10_000]),
                EmbeddingOutbox.id <= upto, EmbeddingOutbox.status != "synced")
                .values(status="synced", synced_at=now, error=None, next_attempt_at=None))
        counted: set[int] = set()
        for r in failed_rows:
            target = _target_of(r, ev)
            tries = (r.retry_count or 0) + 1
            reason = failures[target]
            gone = tries >= max_tries
            s.execute(update(EmbeddingOutbox).where(EmbeddingOutbox.id == r.id).values(
                retry_count=tries, error=reason[:2000], status="failed" if gone else "pending",
                next_attempt_at=None if gone else now + timedelta(seconds=backoff_s(tries))))
            if target in counted:  # one target, one count, however many rows it had in the batch
                continue
            counted.add(target)
            if gone:
                result.failed += 1
            else:
                result.retried += 1
            if len(result.errors) < 5:
                result.errors.append(reason)


def _target_of(r: Any, ev: EmbeddingVersion) -> int:
    return int(r.annotation_id if ev.level == "object" else r.asset_id)


def _own_version(s: Session, project: Project, version_id: int) -> EmbeddingVersion:
    """The version, if it is ``project``'s (or shared): a collection holds one project's records, so
    ``similar`` needs no project filter (which costs Chroma its fast path)."""
    ev = s.get(EmbeddingVersion, version_id)
    if ev is None:
        raise DsgenError(f"embedding version {version_id} does not exist")
    if ev.project_id not in (None, project.id):
        raise DsgenError(f"embedding version {ev.name!r} belongs to another project than {project.name!r}")
    return ev


def backoff_s(tries: int) -> float:
    return float(min(BACKOFF_BASE_S * 2 ** (tries - 1), 3600.0))


def _due(s: Session) -> Any:
    return or_(EmbeddingOutbox.next_attempt_at.is_(None), EmbeddingOutbox.next_attempt_at <= datetime.now(UTC))


def _pending_count(s: Session, ev: EmbeddingVersion) -> int:
    return s.scalar(select(func.count()).select_from(EmbeddingOutbox).where(
        EmbeddingOutbox.embedding_version_id == ev.id, EmbeddingOutbox.status == "pending")) or 0


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class VersionStatus:
    name: str
    level: str
    active: bool
    encoder: str
    model_name: str
    dimension: int
    collection: str
    pending: int
    synced: int
    failed: int
    lag_s: float | None  # age of the oldest pending row; None when nothing is pending
    last_synced_at: str | None
    registry_count: int  # objects (images) that should have a vector
    chroma_count: int | None  # None when Chroma could not be asked
    chroma_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_count(s: Session, project: Project, ev: EmbeddingVersion) -> int:
    if ev.level == "object":
        stmt = (select(func.count()).select_from(Annotation).join(Asset, Asset.id == Annotation.asset_id)
                .where(Asset.project_id == project.id, Asset.deleted_at.is_(None), Annotation.bbox_w.is_not(None),
                       Asset.storage_uri.is_not(None)))
    else:
        stmt = select(func.count()).select_from(Asset).where(
            Asset.project_id == project.id, Asset.deleted_at.is_(None), Asset.asset_type == "image",
            Asset.storage_uri.is_not(None))
    return s.scalar(stmt) or 0


def version_status(s: Session, project: Project, ev: EmbeddingVersion, store: VectorStore | None) -> VersionStatus:
    counts = dict(s.execute(select(EmbeddingOutbox.status, func.count()).where(
        EmbeddingOutbox.embedding_version_id == ev.id).group_by(EmbeddingOutbox.status)).all())
    oldest = s.scalar(select(func.min(EmbeddingOutbox.created_at)).where(
        EmbeddingOutbox.embedding_version_id == ev.id, EmbeddingOutbox.status == "pending"))
    last = s.scalar(select(func.max(EmbeddingOutbox.synced_at)).where(EmbeddingOutbox.embedding_version_id == ev.id))
    chroma_count, err = None, None
    if store is not None:
        try:
            col = store.collection(ev, create=False)
            chroma_count = store.count(col) if col is not None else 0
        except DsgenError as exc:  # unreachable, or a collection of another encoder: status still answers
            err = str(exc)
    return VersionStatus(ev.name, ev.level, bool(ev.is_active), ev.encoder, ev.model_name, ev.dimension,
                         collection_name(ev), int(counts.get("pending", 0)), int(counts.get("synced", 0)),
                         int(counts.get("failed", 0)), _age_s(oldest), _iso(last), expected_count(s, project, ev),
                         chroma_count, err)


def _age_s(t: datetime | None) -> float | None:
    return None if t is None else round((datetime.now(UTC) - as_utc(t)).total_seconds(), 3)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else as_utc(t).isoformat()


# --------------------------------------------------------------------------- reconcile


@dataclass
class ReconcileResult:
    version: str
    level: str
    registry: int = 0
    chroma: int = 0
    missing: int = 0
    extra: int = 0
    stale: int = 0  # changed geometry or image bytes, or vectors of another encoder
    metadata_drift: int = 0
    queued: int = 0
    deleted: int = 0
    metadata_updated: int = 0
    dry_run: bool = False

    @property
    def in_step(self) -> bool:
        return not (self.missing or self.extra or self.stale or self.metadata_drift)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "in_step": self.in_step}


_FACTS = ("category", "category_id", "source", "validated", "confidence", "project", "project_id", "file")


def reconcile_version(registry: Registry, project_name: str, version_id: int, *, store: VectorStore,
                      dry_run: bool = False, actor: str | None = None) -> ReconcileResult:
    """Compare the registry with Chroma and repair: queue missing/stale, delete extra, update drifted metadata.

    Chroma is read first and the registry second, so whatever a concurrent import and sync add in
    between is in the registry's (newer) picture: it is never taken for an extra record. An extra
    record is deleted only if its object is still gone when the repair runs.
    """
    from dsgen_core.registry.projects import get_project

    with registry.session() as s:
        ev = _own_version(s, get_project(s, project_name), version_id)
        fp = ev.fingerprint or ""
    col = store.collection(ev)
    held: dict[int, dict[str, Any]] = {}
    for page_ids, metas, _ in store.scan(col):
        held.update(zip(page_ids, metas, strict=True))
    with registry.session() as s:
        project = get_project(s, project_name)
        expected = _expected_targets(s, project, ev)
    res = ReconcileResult(ev.name, ev.level, registry=len(expected), chroma=len(held), dry_run=dry_run)
    missing = [i for i in expected if i not in held]
    extra = [i for i in held if i not in expected]
    stale = [i for i, m in held.items() if i in expected and (m.get("geom") != expected[i].metadata["geom"]
                                                               or m.get("fp") != fp[:16])]
    stale_set = set(stale)
    drift = [i for i, m in held.items() if i in expected and i not in stale_set
             and any(m.get(k) != expected[i].metadata.get(k) for k in _FACTS)]
    res.missing, res.extra, res.stale, res.metadata_drift = len(missing), len(extra), len(stale), len(drift)
    if dry_run or res.in_step:
        return res
    if extra:
        with registry.session() as s:  # an import since the read may have brought some back
            back = _targets(s, get_project(s, project_name), ev, extra)
        gone = [i for i in extra if back.get(i) is None]
        store.delete(col, gone)
        res.deleted = len(gone)
    if drift:
        with registry.session() as s:  # the facts as they are now, not as they were at the read
            now = _targets(s, get_project(s, project_name), ev, drift)
        fresh = [(i, t) for i in drift if (t := now.get(i)) is not None]
        store.update_metadata(col, [i for i, _ in fresh], [t.metadata for _, t in fresh])
        res.metadata_updated = len(fresh)
    todo = missing + stale
    if todo:
        with registry.session() as s:
            project = get_project(s, project_name)
            res.queued = queue_all(s, project, _own_version(s, project, version_id), ids=todo)
    with registry.session() as s:
        audit(s, "embeddings.reconcile", project_id=ev.project_id, entity_type="embedding_version",
              entity_ids=[ev.id], detail=res.to_dict(), actor=actor)
    return res


def _expected_targets(s: Session, project: Project, ev: EmbeddingVersion) -> dict[int, Target]:
    """Every object (image) of the project that should have a vector, with the metadata it should carry."""
    if ev.level == "object":
        ids = list(s.scalars(select(Annotation.id).join(Asset, Asset.id == Annotation.asset_id).where(
            Asset.project_id == project.id, Asset.deleted_at.is_(None), Annotation.bbox_w.is_not(None))))
    else:
        ids = list(s.scalars(select(Asset.id).where(Asset.project_id == project.id, Asset.deleted_at.is_(None),
                                                    Asset.asset_type == "image", Asset.storage_uri.is_not(None))))
    return {i: t for i, t in _targets(s, project, ev, ids).items() if t is not None}


def outbox_problem_rows(s: Session, ev: EmbeddingVersion, limit: int = 20) -> list[dict[str, Any]]:
    """The failed rows (and pending ones waiting on backoff) with their reasons, for ``embed status``."""
    rows = s.execute(select(EmbeddingOutbox).where(
        EmbeddingOutbox.embedding_version_id == ev.id,
        or_(EmbeddingOutbox.status == "failed",
            and_(EmbeddingOutbox.status == "pending", EmbeddingOutbox.retry_count > 0)))
        .order_by(EmbeddingOutbox.id).limit(limit)).scalars().all()
    return [{"id": r.id, "object_id": r.annotation_id, "image_id": r.asset_id, "status": r.status,
             "tries": r.retry_count, "error": r.error,
             "next_attempt_at": _iso(r.next_attempt_at)} for r in rows]


def local_cache(registry: Registry) -> Path:
    """Where fetched model weights are kept between syncs."""
    p = registry.settings.home / "cache" / "weights"
    p.mkdir(parents=True, exist_ok=True)
    return p


def model_encoder(registry: Registry, session: Session, mv: Any, storage: Storage, **kw: Any) -> Encoder:
    """The default encoder: the backbone of a trained dsgen model version (its best checkpoint)."""
    from dsgen_core.embeddings.encoders import build_encoder
    from dsgen_core.ml import model_versions as mvs

    path = mvs.fetch_artifact(storage, mvs.require_artifact(session, mv, "best", "ckpt"), local_cache(registry))
    return build_encoder("model", weights=path, model_version=mv.human_id, **kw)


def encoder_factory(registry: Registry, version_id: int, storage: Storage, *, batch_size: int = 32,
                    progress: bool = False) -> Callable[[], Embedder]:
    """Builds the version's encoder on first need, from its recorded spec and weights."""

    def build() -> Embedder:
        from dsgen_core.embeddings.encoders import encoder_from_spec
        from dsgen_core.ml import model_versions as mvs

        with registry.session() as s:
            ev = s.get(EmbeddingVersion, version_id)
            assert ev is not None
            spec = spec_of(ev)
            if ev.encoder == "model":
                model = model_weights(s, ev)
                if model is None:
                    raise DsgenError(f"embedding version {ev.name!r}: its model version is gone")
                weights = mvs.fetch_artifact(storage, mvs.require_artifact(s, model, "best", "ckpt"),
                                             local_cache(registry))
            else:
                weights = weights_path(ev)
        return ImageEmbedder(encoder_from_spec(spec, weights, batch_size=batch_size, progress=progress), storage)

    return build


def collection_map(store: VectorStore, ev: EmbeddingVersion) -> bytes | None:
    """The 2-D map of a collection's vectors coloured by class (images: by file folder); None when empty."""
    from dsgen_core.embeddings.charts import MAX_POINTS, embedding_map_png

    col = store.collection(ev, create=False)
    if col is None:
        return None
    vecs: list[np.ndarray] = []
    labels: list[str] = []
    for _ids, metas, page in store.scan(col, embeddings=True, page=MAX_POINTS):
        if page is None:
            continue
        vecs.append(page)
        labels += [str(m.get("category") or Path(str(m.get("file") or "")).parent or "-") for m in metas]
        if len(labels) >= 4 * MAX_POINTS:  # a sample of the first pages is enough for a picture
            break
    if not vecs:
        return None
    return embedding_map_png(np.concatenate(vecs), labels, title=f"{collection_name(ev)}: PCA of "
                             f"{len(labels)} embeddings")
