"""Embedding versions and the outbox that keeps the vector store in step with the registry (seed 000)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
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

from dsgen_core.registry.schema.base import Base, BigId, created_column, pk_column


class EmbeddingVersion(Base):
    """An encoder + weights + preprocessing; one vector-store collection per version and level.

    ``fingerprint`` hashes everything that decides a vector (encoder kind, weights sha256,
    preprocessing, crop policy, dimension); the Chroma collection carries it, so a collection
    made by another encoder is recognised and refused instead of mixed with this one's vectors.
    """

    __tablename__ = "embedding_versions"
    id: Mapped[int] = pk_column()
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    # e.g. "demo-m1"; the Chroma collection suffix. One encoder gives an object- and an image-level version.
    name: Mapped[str] = mapped_column(String(100))
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str | None] = mapped_column(String(100))
    dimension: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(10), default="object")  # object | image
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)  # ingest queues work for active versions
    encoder: Mapped[str] = mapped_column(String(20), default="model")  # model | timm | open_clip | onnx
    # Lineage: the dsgen model version whose backbone the default encoder runs.
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"),
                                                         index=True)
    weights_uri: Mapped[str | None] = mapped_column(Text)
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    preprocessing: Mapped[dict[str, Any] | None] = mapped_column()
    crop_policy: Mapped[str | None] = mapped_column(String(100))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (
        CheckConstraint("level IN ('object','image')", name="level"),
        CheckConstraint("encoder IN ('model','timm','open_clip','onnx')", name="encoder"),
        UniqueConstraint("name", "level"),
    )


class EmbeddingOutbox(Base):
    """Pending vector-store writes, appended in the transaction that changed the registry.

    Rows name the object (or, for image-level versions, the image) by id without a foreign key:
    a ``delete`` must outlive the row it deletes.
    """

    __tablename__ = "embedding_outbox"
    id: Mapped[int] = pk_column()
    annotation_id: Mapped[int | None] = mapped_column(BigId, index=True)
    asset_id: Mapped[int | None] = mapped_column(BigId)
    embedding_version_id: Mapped[int] = mapped_column(ForeignKey("embedding_versions.id", ondelete="CASCADE"))
    operation: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Backoff: a row that failed is not tried again before this time.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        Index("ix_embedding_outbox_drain", "embedding_version_id", "status", "id"),
        CheckConstraint("operation IN ('upsert','delete')", name="operation"),
        CheckConstraint("status IN ('pending','synced','failed')", name="status"),
        CheckConstraint("annotation_id IS NOT NULL OR asset_id IS NOT NULL", name="target"),
    )


class NearDuplicate(Base):
    """An image's near-duplicate group under an image-level embedding version (``dsgen duplicates``).

    Images whose embeddings lie within the run's cosine-distance threshold of each other, chained;
    ``group_id`` is the group's smallest image id. Rewritten whole by each run for its version; a
    version's split keeps each group in one split, and ``has:near_duplicate`` finds them.
    """

    __tablename__ = "near_duplicates"
    embedding_version_id: Mapped[int] = mapped_column(ForeignKey("embedding_versions.id", ondelete="CASCADE"),
                                                      primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(BigId)
    distance: Mapped[float] = mapped_column(Float)  # to the nearest other member
    threshold: Mapped[float] = mapped_column(Float)
    computed_at: Mapped[datetime] = created_column()
    __table_args__ = (Index("ix_near_duplicates_project_id_group_id", "project_id", "group_id"),)
