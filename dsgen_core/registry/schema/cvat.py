"""What went to CVAT and where it is there, so that what comes back lands on the same rows.

A push (an :class:`~dsgen_core.registry.schema.ExportJob` with target ``cvat``) makes one or more
CVAT tasks. Each task row records the server and task id, its frames (frame index -> asset) and
every object it holds (CVAT's shape or tag id -> annotation), with a fingerprint of the object as
CVAT had it when dsgen last saw it and of the registry row at the same moment. A pull compares
both sides with those fingerprints: unchanged objects are not touched, an object changed in CVAT
only is updated, one changed on both sides is a conflict.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dsgen_core.registry.schema.base import Base, created_column, pk_column

CVAT_TASK_STATUSES = ("creating", "uploading", "annotating", "pushed", "failed", "removed")


class CvatTask(Base):
    """A CVAT task a push made (or was making when it stopped: ``status`` says how far it got)."""

    __tablename__ = "cvat_tasks"
    id: Mapped[int] = pk_column()
    export_job_id: Mapped[int] = mapped_column(ForeignKey("export_jobs.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    server: Mapped[str] = mapped_column(Text)
    task_id: Mapped[int | None] = mapped_column(BigInteger)  # None until CVAT answered the create
    name: Mapped[str] = mapped_column(String(255))
    chunk: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="creating")
    url: Mapped[str | None] = mapped_column(Text)
    job_ids: Mapped[list[Any] | None] = mapped_column()
    # CVAT label id -> {"class": label class id, "attributes": {spec id: [name, python type]}}
    labels: Mapped[dict[str, Any] | None] = mapped_column()
    frames: Mapped[int] = mapped_column(Integer, default=0)
    # CVAT job id -> its updated_date as CVAT wrote it at the push or last pull (pull --since)
    jobs_seen: Mapped[dict[str, Any] | None] = mapped_column()
    pushed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pulled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_pull_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (
        UniqueConstraint("server", "task_id"),
        CheckConstraint("status IN ('creating','uploading','annotating','pushed','failed','removed')", name="status"),
    )


class CvatFrame(Base):
    """Frame ``frame`` of a CVAT task shows this asset."""

    __tablename__ = "cvat_frames"
    cvat_task_id: Mapped[int] = mapped_column(ForeignKey("cvat_tasks.id", ondelete="CASCADE"), primary_key=True)
    frame: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)


class CvatObject(Base):
    """CVAT's object ``kind``/``cvat_id`` in a task is this annotation (None: deleted in the registry).

    A ``track`` row stands for a whole CVAT track (its per-frame objects are keyed by track and
    frame in the registry, ``cvat<task row>:track<id>@<frame>``): it has no single annotation, and
    its fingerprint tells a pull whether the track changed at all."""

    __tablename__ = "cvat_objects"
    cvat_task_id: Mapped[int] = mapped_column(ForeignKey("cvat_tasks.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(5), primary_key=True)  # shape | tag | track: CVAT numbers each apart
    cvat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    annotation_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id", ondelete="SET NULL"), index=True)
    cvat_fingerprint: Mapped[str] = mapped_column(String(64))
    registry_fingerprint: Mapped[str | None] = mapped_column(String(64))
    members: Mapped[dict[str, Any] | None] = mapped_column()  # a pushed track: frame -> annotation id
    __table_args__ = (CheckConstraint("kind IN ('shape','tag','track')", name="kind"),)
