"""The audit log and the change sequence, written in the same transaction as the change itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dsgen_core.registry.schema import AuditLog, ChangeEvent


def record_change(
    session: Session,
    *,
    project_id: int | None,
    entity: str,
    op: str,
    entity_id: int | None = None,
    count: int = 1,
    detail: dict[str, Any] | None = None,
    batch_id: int | None = None,
) -> int:
    """Append to the change sequence; returns the new ``seq``. ``batch_id``: the annotation batch that made it."""
    ev = ChangeEvent(project_id=project_id, entity=entity, op=op, entity_id=entity_id, count=count, detail=detail,
                     batch_id=batch_id)
    session.add(ev)
    session.flush()
    return ev.seq


def audit(
    session: Session,
    action: str,
    *,
    project_id: int | None,
    entity_type: str | None = None,
    entity_ids: list[int] | None = None,
    detail: dict[str, Any] | None = None,
    actor: str | None = None,
) -> None:
    session.add(
        AuditLog(
            actor=actor,
            project_id=project_id,
            action=action,
            entity_type=entity_type,
            entity_ids=entity_ids,
            detail=detail,
        )
    )


def current_seq(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.max(ChangeEvent.seq), 0))) or 0


def changes_since(
    session: Session, seq: int, entity: str | None = None, limit: int = 1000, *, project_id: int | None = None
) -> list[ChangeEvent]:
    """The changes after ``seq``, oldest first; of one entity and/or one project when given."""
    stmt = select(ChangeEvent).where(ChangeEvent.seq > seq).order_by(ChangeEvent.seq).limit(limit)
    if entity is not None:
        stmt = stmt.where(ChangeEvent.entity == entity)
    if project_id is not None:
        stmt = stmt.where(ChangeEvent.project_id == project_id)
    return list(session.scalars(stmt))
