"""What happened: saved insight views, export jobs, the audit log and the change sequence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from dsgen_core.registry.schema.base import Base, BigId, created_column, pk_column


class InsightView(Base):
    __tablename__ = "insight_views"
    id: Mapped[int] = pk_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    query: Mapped[str] = mapped_column(Text, default="")
    charts: Mapped[list[Any]] = mapped_column(default=list)  # names of insights to draw
    visualization: Mapped[dict[str, Any] | None] = mapped_column()
    saved_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()
    __table_args__ = (UniqueConstraint("project_id", "name"),)


class ExportJob(Base):
    __tablename__ = "export_jobs"
    id: Mapped[int] = pk_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(20))
    filter_snapshot: Mapped[dict[str, Any] | None] = mapped_column()
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    payload_uri: Mapped[str | None] = mapped_column(Text)
    external_url: Mapped[str | None] = mapped_column(Text)
    log: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()
    __table_args__ = (
        CheckConstraint("target IN ('cvat','coco','yolo')", name="target"),
        CheckConstraint("status IN ('queued','running','done','failed')", name="status"),
    )


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = pk_column()
    actor: Mapped[str | None] = mapped_column(String(255))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(100), index=True)
    entity_type: Mapped[str | None] = mapped_column(String(50))
    entity_ids: Mapped[list[Any] | None] = mapped_column()
    detail: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = created_column()


class ChangeEvent(Base):
    """The registry's change sequence: ``seq`` only grows, so a sensor can keep it as a cursor."""

    __tablename__ = "change_events"
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(50))
    op: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[int | None] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer, default=1)
    detail: Mapped[dict[str, Any] | None] = mapped_column()
    # The annotation batch that made the change; runs the change triggers carry it as a run tag.
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (Index("ix_change_events_entity_seq", "entity", "seq"), {"sqlite_autoincrement": True})
