"""Annotation batches as the unit of change: what each changed, which runs it started, which failed.

Runs started because of batches carry their ids in the ``dsgen/batches`` run tag, so the Dagster
UI answers "which annotations made this model" (filter runs by tag), and a failed run is written
back onto its batches and its model version, where ``dsgen batches`` and ``dsgen models`` show it.

    tags = batch_tags([12, 13])                     # {"dsgen/batches": "12,13"}
    record_failure(session, project, run_id=..., job="train_model_job", partition="v2|tiny",
                   batches=[12, 13], model_version="m2", error="...", actor="dagster:...")
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.errors import NotFound
from dsgen_core.registry.changes import audit
from dsgen_core.registry.schema import ImportBatch, ModelVersion, Project

BATCHES_TAG = "dsgen/batches"
MAX_TAGGED = 50  # a run tag stays short; the rest are counted


@dataclass(frozen=True)
class AnnotationBatch:
    id: int
    operation: str
    source: str  # human | model
    format: str
    source_uri: str
    actor: str | None
    created_at: datetime
    objects_new: int
    objects_changed: int
    objects_deleted: int
    images_new: int
    classes_new: int
    failures: list[dict[str, Any]]


def batch_tags(batch_ids: list[int]) -> dict[str, str]:
    """The run tags naming ``batch_ids``: ``dsgen/batches`` lists them (the first :data:`MAX_TAGGED`,
    then how many more), and each has its own ``dsgen/batch-<id>`` tag, which a tag filter (UI,
    ``RunsFilter``) matches exactly: the runs of batch 12 are those tagged ``dsgen/batch-12``.
    (One ``/`` only: Dagster allows a single namespace in a tag key.)"""
    if not batch_ids:
        return {}
    ids = sorted(set(batch_ids))
    more = f",+{len(ids) - MAX_TAGGED}" if len(ids) > MAX_TAGGED else ""
    return {BATCHES_TAG: ",".join(map(str, ids[:MAX_TAGGED])) + more,
            **{batch_tag(i): "true" for i in ids[:MAX_TAGGED]}}


def batch_tag(batch_id: int) -> str:
    return f"{BATCHES_TAG[:-2]}-{batch_id}"  # dsgen/batch-12


def tagged_batches(tags: dict[str, str]) -> list[int]:
    prefix = batch_tag(0)[:-1]
    listed = {int(p) for p in tags.get(BATCHES_TAG, "").split(",") if p.isdigit()}
    return sorted(listed | {int(k[len(prefix):]) for k in tags if k.startswith(prefix) and k[len(prefix):].isdigit()})


def list_batches(session: Session, project: Project, *, limit: int = 50) -> list[AnnotationBatch]:
    rows = session.scalars(select(ImportBatch).where(ImportBatch.project_id == project.id)
                           .order_by(ImportBatch.id.desc()).limit(limit))
    return [_batch(r) for r in rows]


def get_batch(session: Session, project: Project, batch_id: int) -> AnnotationBatch:
    row = session.get(ImportBatch, batch_id)
    if row is None or row.project_id != project.id:
        raise NotFound(f"no annotation batch {batch_id} in project {project.name!r}")
    return _batch(row)


def record_failure(session: Session, project: Project, *, run_id: str, job: str, partition: str | None,
                   batches: list[int], model_version: str | None, error: str, actor: str | None = None) -> None:
    """Write a failed run onto its batches and (for training runs) its model version."""
    entry = {"run_id": run_id, "job": job, "partition": partition, "error": error[:2000],
             "at": datetime.now(UTC).isoformat()}
    for row in session.scalars(select(ImportBatch).where(ImportBatch.project_id == project.id,
                                                         ImportBatch.id.in_(batches))):
        if not any(f.get("run_id") == run_id for f in row.failures or []):
            row.failures = [*(row.failures or []), entry]  # a new list: the JSON column sees the change
    mv = None
    if model_version is not None:
        mv = session.scalar(select(ModelVersion).where(ModelVersion.project_id == project.id,
                                                       ModelVersion.human_id == model_version))
    if mv is not None:
        if mv.status in ("pending", "running"):
            mv.status, mv.error = "failed", error[:2000]
        elif mv.promotion is None:  # trained, then its export or evaluation failed: not promotable
            mv.promotion = {"decision": "failed", "reason": f"{job} run {run_id[:8]} failed: {error[:500]}",
                            "at": entry["at"]}
    audit(session, "run.failed", project_id=project.id, entity_type="import_batch", entity_ids=sorted(batches),
          detail={**entry, "model_version": model_version}, actor=actor)
    session.flush()


def _batch(r: ImportBatch) -> AnnotationBatch:
    c = r.counts or {}
    return AnnotationBatch(r.id, r.operation, r.source, r.format, r.source_uri, r.actor, r.created_at,
                           int(c.get("objects_new", 0)), int(c.get("objects_merged", 0)),
                           int(c.get("objects_deleted", 0)), int(c.get("images_new", 0)),
                           int(c.get("classes_new", 0)), list(r.failures or []))
