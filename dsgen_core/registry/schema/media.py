"""Images, videos and their frames (seed 000 ``sources``/``frames``, seed 003 ``asset``), and import batches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from dsgen_core.registry.schema.base import Base, created_column, pk_column


class ImportBatch(Base):
    """One annotation batch, the loop's unit of change: an import, an auto-annotation run, a pull
    from an annotation tool, a REST write or a review. ``counts`` holds what it changed (new,
    merged and deleted objects, new images and classes); runs it triggered carry its id as the
    ``dsgen/batches`` run tag, and ``failures`` records the runs of it that failed."""

    __tablename__ = "import_batches"
    id: Mapped[int] = pk_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(50))
    source_uri: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    images_sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="done")
    counts: Mapped[dict[str, Any] | None] = mapped_column()
    report: Mapped[dict[str, Any] | None] = mapped_column()
    header: Mapped[dict[str, Any] | None] = mapped_column()  # COCO info/licenses and unknown top-level keys
    actor: Mapped[str | None] = mapped_column(String(255))  # who ingested it: a user, "cli", "dagster:<run id>"
    operation: Mapped[str] = mapped_column(String(30), server_default="import")  # import | auto_annotate | pull | ...
    source: Mapped[str] = mapped_column(String(10), server_default="human")  # whose objects: human | model
    failures: Mapped[list[Any] | None] = mapped_column()  # [{run_id, job, partition, error, at}]
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (Index("ix_import_batches_dedup", "project_id", "content_sha256"),)


class Asset(Base):
    """An image, video or text source (seed 000 ``sources``, seed 003 ``asset``)."""

    __tablename__ = "assets"
    id: Mapped[int] = pk_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    asset_type: Mapped[str] = mapped_column(String(10), default="image")
    # Identity within the project: the source's own path (or id) of this sample, never its bytes.
    source_key: Mapped[str] = mapped_column(Text)
    file_name: Mapped[str] = mapped_column(Text)  # path as the annotation file names it
    storage_uri: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    mime_type: Mapped[str | None] = mapped_column(String(50))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    fps: Mapped[float | None] = mapped_column(Float)
    frame_count: Mapped[int | None] = mapped_column(Integer)
    codec: Mapped[str | None] = mapped_column(String(50))
    exif: Mapped[dict[str, Any] | None] = mapped_column()
    thumbnail_uri: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[int | None] = mapped_column(BigInteger)  # COCO image id
    extra: Mapped[dict[str, Any] | None] = mapped_column()  # unknown image keys, kept for export
    import_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="ready")
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("project_id", "source_key"),
        Index("ix_assets_project_sha256", "project_id", "sha256"),
        Index("ix_assets_project_file_name", "project_id", "file_name"),
        Index("ix_assets_project_external_id", "project_id", "external_id"),
        Index("ix_assets_width", "width"),
        Index("ix_assets_height", "height"),
        CheckConstraint("asset_type IN ('image','video','text')", name="asset_type"),
    )


class Frame(Base):
    """A frame of a video asset; ``image_asset_id`` points at the decoded frame image if kept."""

    __tablename__ = "frames"
    id: Mapped[int] = pk_column()
    video_asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    frame_idx: Mapped[int] = mapped_column(Integer)
    timestamp_ms: Mapped[int | None] = mapped_column(Integer)
    image_asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"), index=True)
    __table_args__ = (UniqueConstraint("video_asset_id", "frame_idx"),)
