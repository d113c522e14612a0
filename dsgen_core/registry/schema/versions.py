"""Dataset versions: drafts, splits, members and the frozen annotation snapshot (seeds 000, 003)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
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

from dsgen_core.registry.schema.annotations import AnnotationContent
from dsgen_core.registry.schema.base import Base, BigId, created_column, pk_column


class DatasetVersion(Base):
    """A draft defined by a query, ontology and split config; frozen versions never change."""

    __tablename__ = "dataset_versions"
    id: Mapped[int] = pk_column()
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    version_tag: Mapped[str] = mapped_column(String(50))
    ontology_version_id: Mapped[int | None] = mapped_column(ForeignKey("ontology_versions.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    is_frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    query: Mapped[str | None] = mapped_column(Text)
    filter_config: Mapped[dict[str, Any] | None] = mapped_column()
    split_config: Mapped[dict[str, Any] | None] = mapped_column()
    seed: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    # What content_hash covers (dsgen_core.versions.content_hash): 1 for versions frozen before
    # migration 0003, whatever the freeze sets (2) after it.
    hash_version: Mapped[int] = mapped_column(Integer, server_default="1")
    freeze_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The newest annotation batch of the project when it froze: later batches are what the next
    # version policy counts as new.
    through_batch_id: Mapped[int | None] = mapped_column(BigId)
    frozen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (
        UniqueConstraint("project_id", "version_tag"),
        CheckConstraint("status IN ('draft','freezing','frozen','failed')", name="status"),
    )


class DatasetSplit(Base):
    __tablename__ = "dataset_splits"
    id: Mapped[int] = pk_column()
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    split: Mapped[str] = mapped_column(String(20))
    ratio: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (
        UniqueConstraint("dataset_version_id", "split"),
        CheckConstraint("split IN ('train','val','test','unassigned')", name="split"),
    )


class DatasetVersionAsset(Base):
    """Membership: each asset is in exactly one split of a version, with what its exports read of it.

    The image's file name, size, content and source ids are copied when the version freezes, so
    an export of a frozen version never reads the live ``assets`` row (which nothing protects).
    """

    __tablename__ = "dataset_version_assets"
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="RESTRICT"), primary_key=True)
    split_id: Mapped[int] = mapped_column(ForeignKey("dataset_splits.id", ondelete="CASCADE"), index=True)
    source_key: Mapped[str | None] = mapped_column(Text)
    file_name: Mapped[str | None] = mapped_column(Text)
    storage_uri: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    external_id: Mapped[int | None] = mapped_column(BigInteger)
    extra: Mapped[dict[str, Any] | None] = mapped_column()
    import_batch_id: Mapped[int | None] = mapped_column(BigId)  # whose file header (info, licenses) exports carry
    __table_args__ = (Index("ix_dataset_version_assets_asset_id", "asset_id"),)


class DatasetVersionClass(Base):
    """The classes of a version as they were when it froze: what its exports number and name."""

    __tablename__ = "dataset_version_classes"
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True)
    label_class_id: Mapped[int] = mapped_column(BigId, primary_key=True)  # no FK, as the annotation snapshot
    key: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(255))
    supercategory: Mapped[str | None] = mapped_column(String(255))
    keypoint_spec: Mapped[dict[str, Any] | None] = mapped_column()
    external_id: Mapped[int | None] = mapped_column(BigId)
    extra: Mapped[dict[str, Any] | None] = mapped_column()
    # False for a class only the snapshot's annotations use (COCO exports list it, YOLO numbers only the ontology).
    in_ontology: Mapped[bool] = mapped_column(Boolean, default=True)


class DatasetVersionAnnotation(AnnotationContent, Base):
    """The annotations of a version as they were when it froze.

    Copied in SQL at freeze time (one INSERT ... SELECT), so later edits in the registry never
    change what a frozen version exports. Mask files are immutable; the URI is enough.
    """

    __tablename__ = "dataset_version_annotations"
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True)
    annotation_id: Mapped[int] = mapped_column(BigId, primary_key=True)  # no FK: the snapshot outlives edits
    asset_id: Mapped[int] = mapped_column(BigId)
    track_id: Mapped[int | None] = mapped_column(BigId)
    __table_args__ = (Index("ix_dataset_version_annotations_version_asset", "dataset_version_id", "asset_id"),)
