"""Embedding versions in the registry: an encoder recorded once, its collections named from it.

A version is created with the encoder's :class:`~dsgen_core.embeddings.spec.EncoderSpec`; creating
it queues every live object (or image) of the project in the outbox, so the first sync embeds
everything (a backfill) and later syncs only what changed since (a delta).

    ev = create_embedding_version(s, project, "demo-m1", spec, level="object", model_version=mv, actor="cli")
    collection_name(ev)    # "objects_visual_demo-m1"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, func, literal, select, update
from sqlalchemy.orm import Session

from dsgen_core.embeddings.spec import EncoderSpec
from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.registry.bulk import now_value
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.schema import Annotation, Asset, EmbeddingOutbox, EmbeddingVersion, ModelVersion, Project

LEVELS = ("object", "image")
# Chroma's rule for collection names, less the prefix dsgen adds.
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")


def collection_name(ev: EmbeddingVersion) -> str:
    """Seed 000's ``objects_visual_<version>``; image-level versions ``images_visual_<version>``."""
    return f"{'objects' if ev.level == 'object' else 'images'}_visual_{ev.name}"


def spec_of(ev: EmbeddingVersion) -> EncoderSpec:
    """The encoder spec an embedding version was created with."""
    return EncoderSpec(encoder=ev.encoder, model_name=ev.model_name, dimension=ev.dimension,
                       model_version=ev.model_version, weights_uri=ev.weights_uri, artifact_sha256=ev.artifact_sha256,
                       preprocessing=dict(ev.preprocessing or {}), crop_policy=ev.crop_policy or "box")


def default_version_name(project: Project, spec: EncoderSpec) -> str:
    """``<project>-<model version or architecture>``, cleaned to Chroma's alphabet."""
    base = f"{project.name}-{spec.model_version or spec.model_name}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._")[:100] or "visual"


@dataclass(frozen=True)
class EmbeddingVersionInfo:
    id: int
    name: str
    level: str
    encoder: str
    model_name: str
    dimension: int
    collection: str
    queued: int  # outbox rows the creation queued (the backfill)


def create_embedding_version(session: Session, project: Project, name: str, spec: EncoderSpec, *, level: str,
                             model_version: ModelVersion | None = None, actor: str | None = None,
                             backfill: bool = True) -> EmbeddingVersionInfo:
    """Record an encoder as an embedding version of ``project`` and queue everything for it."""
    if level not in LEVELS:
        raise DsgenError(f"embedding level must be one of {', '.join(LEVELS)}, not {level!r}")
    if not _NAME.fullmatch(name):
        raise DsgenError(f"embedding version name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
                         "starting and ending with a letter or digit (it names a Chroma collection)")
    if session.scalar(select(EmbeddingVersion.id).where(EmbeddingVersion.name == name,
                                                         EmbeddingVersion.level == level)) is not None:
        raise DsgenError(f"embedding version {name!r} ({level} level) exists already; choose another name")
    ev = EmbeddingVersion(project_id=project.id, name=name, level=level, model_name=spec.model_name,
                          model_version=spec.model_version, dimension=spec.dimension, encoder=spec.encoder,
                          model_version_id=model_version.id if model_version is not None else None,
                          weights_uri=spec.weights_uri, artifact_sha256=spec.artifact_sha256,
                          preprocessing=spec.preprocessing or None, crop_policy=spec.crop_policy,
                          fingerprint=spec.fingerprint(), created_by=actor, is_active=True)
    session.add(ev)
    session.flush()
    queued = queue_all(session, project, ev) if backfill else 0
    audit(session, "embedding_version.create", project_id=project.id, entity_type="embedding_version",
          entity_ids=[ev.id], detail={"name": name, "level": level, "encoder": spec.encoder,
                                      "model_name": spec.model_name, "dimension": spec.dimension,
                                      "fingerprint": ev.fingerprint, "queued": queued}, actor=actor)
    record_change(session, project_id=project.id, entity="embedding_versions", op="create", entity_id=ev.id,
                  count=queued, detail={"name": name, "level": level, "collection": collection_name(ev)})
    return info(ev, queued)


def ensure_embedding_versions(session: Session, project: Project, name: str, spec: EncoderSpec, *,
                              levels: tuple[str, ...] = LEVELS, model_version: ModelVersion | None = None,
                              actor: str | None = None) -> list[EmbeddingVersionInfo]:
    """The versions of ``name`` at ``levels``, created where missing; refused when one exists for another encoder."""
    out = []
    for level in levels:
        ev = session.scalar(select(EmbeddingVersion).where(EmbeddingVersion.name == name,
                                                           EmbeddingVersion.level == level))
        if ev is None:
            out.append(create_embedding_version(session, project, name, spec, level=level,
                                                model_version=model_version, actor=actor))
        elif ev.fingerprint != spec.fingerprint() or ev.project_id != project.id:
            raise DsgenError(f"embedding version {name!r} ({level} level) exists for another encoder or project")
        else:
            out.append(info(ev))
    return out


def info(ev: EmbeddingVersion, queued: int = 0) -> EmbeddingVersionInfo:
    return EmbeddingVersionInfo(ev.id, ev.name, ev.level, ev.encoder, ev.model_name, ev.dimension,
                                collection_name(ev), queued)


def queue_all(session: Session, project: Project, ev: EmbeddingVersion, ids: list[int] | None = None) -> int:
    """Outbox ``upsert`` rows for every live object (image) of the project, or for ``ids``; returns how many."""
    now = now_value(session.connection())
    src: Any
    if ev.level == "object":
        src = (select(Annotation.id, Annotation.asset_id).join(Asset, Asset.id == Annotation.asset_id)
               .where(Asset.project_id == project.id, Asset.deleted_at.is_(None), Annotation.bbox_w.is_not(None),
                      Asset.storage_uri.is_not(None)))
        if ids is not None:
            src = src.where(Annotation.id.in_(ids))
        cols = ["annotation_id", "asset_id"]
    else:
        src = select(Asset.id).where(Asset.project_id == project.id, Asset.deleted_at.is_(None),
                                     Asset.asset_type == "image", Asset.storage_uri.is_not(None))
        if ids is not None:
            src = src.where(Asset.id.in_(ids))
        cols = ["asset_id"]
    src = src.add_columns(literal(ev.id), literal("upsert"), literal("pending"), literal(0), literal(now))
    stmt = EmbeddingOutbox.__table__.insert().from_select(  # type: ignore[attr-defined]
        [*cols, "embedding_version_id", "operation", "status", "retry_count", "created_at"], src)
    # An INSERT's rowcount is kept only when asked (psycopg closes the cursor before).
    return cast(CursorResult[Any], session.execute(stmt, execution_options={"preserve_rowcount": True})).rowcount or 0


def list_versions(session: Session, project: Project, *, active_only: bool = False) -> list[EmbeddingVersion]:
    stmt = select(EmbeddingVersion).where((EmbeddingVersion.project_id == project.id)
                                          | EmbeddingVersion.project_id.is_(None))
    if active_only:
        stmt = stmt.where(EmbeddingVersion.is_active.is_(True))
    return list(session.scalars(stmt.order_by(EmbeddingVersion.id)))


def get_version(session: Session, project: Project, name: str | None = None, *,
                level: str | None = None) -> EmbeddingVersion:
    """A version of ``project`` by name (and level, when the name has two); None: the newest active one."""
    candidates = [ev for ev in list_versions(session, project, active_only=name is None)
                  if (name is None or ev.name == name) and (level is None or ev.level == level)]
    if not candidates:
        what = f"embedding version {name!r}" if name else "an active embedding version"
        lvl = f" at {level} level" if level else ""
        raise NotFound(f"project {project.name!r} has no {what}{lvl}; create one with `dsgen embed create`")
    if name is not None and level is None and len(candidates) > 1:
        candidates = [c for c in candidates if c.level == "object"] or candidates
    return candidates[-1]


def by_collection(session: Session, project: Project, collection: str) -> EmbeddingVersion:
    """The version whose collection is named ``collection`` (the Dagster partition key)."""
    for ev in list_versions(session, project):
        if collection_name(ev) == collection:
            return ev
    raise NotFound(f"project {project.name!r} has no embedding version with collection {collection!r}")


def set_active(session: Session, project: Project, ev: EmbeddingVersion, active: bool, *,
               actor: str | None = None) -> None:
    """An inactive version gets no new outbox rows; its collection stays searchable."""
    ev.is_active = active
    audit(session, "embedding_version.activate" if active else "embedding_version.deactivate",
          project_id=project.id, entity_type="embedding_version", entity_ids=[ev.id], detail={"name": ev.name},
          actor=actor)


def retry_failed(session: Session, project: Project, ev: EmbeddingVersion, *, actor: str | None = None) -> int:
    """Failed outbox rows back to pending with a fresh try count; returns how many."""
    n = cast(CursorResult[Any], session.execute(update(EmbeddingOutbox).where(
        EmbeddingOutbox.embedding_version_id == ev.id, EmbeddingOutbox.status == "failed").values(
        status="pending", retry_count=0, next_attempt_at=None))).rowcount or 0
    if n:
        audit(session, "embedding_outbox.retry", project_id=project.id, entity_type="embedding_version",
              entity_ids=[ev.id], detail={"rows": n}, actor=actor)
    return n


def model_weights(session: Session, ev: EmbeddingVersion) -> ModelVersion | None:
    return session.get(ModelVersion, ev.model_version_id) if ev.model_version_id is not None else None


def outbox_counts(session: Session, ev: EmbeddingVersion) -> dict[str, int]:
    rows = session.execute(select(EmbeddingOutbox.status, func.count()).where(
        EmbeddingOutbox.embedding_version_id == ev.id).group_by(EmbeddingOutbox.status)).all()
    out = {"pending": 0, "synced": 0, "failed": 0}
    out.update(dict(rows))
    return out


def weights_path(ev: EmbeddingVersion) -> Path:
    """The weights file of a non-model encoder, as the user gave it."""
    if not ev.weights_uri:
        raise DsgenError(f"embedding version {ev.name!r} records no weights file")
    return Path(ev.weights_uri)
