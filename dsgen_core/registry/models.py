"""The registry schema: every entity of the design seeds as typed SQLAlchemy 2 models.

One schema serves SQLite (default) and PostgreSQL (scale-out); JSON columns become JSONB on
PostgreSQL. Integer surrogate keys keep bulk imports fast; external identifiers (COCO ids,
CVAT track ids) are kept as data so exports can give them back.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY, so BIGINT keys are INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: Json, list[Any]: Json}


def _pk() -> Mapped[int]:
    return mapped_column(BigId, primary_key=True, autoincrement=True)


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


# --------------------------------------------------------------------------- accounts (seed 002)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = _pk()
    email: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    hashed_password: Mapped[str | None] = mapped_column(String(255))
    external_uid: Mapped[str | None] = mapped_column(String(100), unique=True)
    plan: Mapped[str] = mapped_column(String(20), default="free")
    gpu_hours_limit: Mapped[float | None] = mapped_column(Float)
    storage_gb_limit: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _created()
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (CheckConstraint("plan IN ('free','pro','enterprise')", name="plan"),)


class ApiKey(Base):
    """Hashed API keys with scopes; the clear key is shown once and never stored."""

    __tablename__ = "api_keys"
    id: Mapped[int] = _pk()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(255), unique=True)
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    total_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UsageRecord(Base):
    __tablename__ = "usage_records"
    id: Mapped[int] = _pk()
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    resource_type: Mapped[str] = mapped_column(String(50))
    amount: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(20))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    dagster_run_id: Mapped[str | None] = mapped_column(String(64))
    cost_usd: Mapped[float | None] = mapped_column(Float)
    recorded_at: Mapped[datetime] = _created()


# --------------------------------------------------------------------------- projects and ontology


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    source: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="ready")
    default_ontology_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("ontology_versions.id", use_alter=True, ondelete="SET NULL")
    )
    tags: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = _created()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[int] = _pk()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    format: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="ready")
    validation_result: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = _created()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        CheckConstraint("format IS NULL OR format IN ('coco','yolo','imagenet','pascal_voc','datamaker')", name="format"),
    )


class OntologyVersion(Base):
    """A snapshot of the label definitions; a new class means a new version once frozen."""

    __tablename__ = "ontology_versions"
    id: Mapped[int] = _pk()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    version_tag: Mapped[str] = mapped_column(String(50))
    is_frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("ontology_versions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("project_id", "version_tag"),)


SHAPE_TYPES = ("bbox", "polygon", "mask", "keypoints", "polyline", "label", "caption")


class LabelClass(Base):
    """A category of an ontology version (COCO category, CVAT label)."""

    __tablename__ = "label_classes"
    id: Mapped[int] = _pk()
    ontology_version_id: Mapped[int] = mapped_column(ForeignKey("ontology_versions.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(255))
    supercategory: Mapped[str | None] = mapped_column(String(255))
    synonyms: Mapped[list[Any]] = mapped_column(default=list)
    color: Mapped[str | None] = mapped_column(String(20))
    shape_type: Mapped[str | None] = mapped_column(String(20))
    keypoint_spec: Mapped[dict[str, Any] | None] = mapped_column()  # {"keypoints": [...], "skeleton": [[a, b], ...]}
    attribute_schema: Mapped[dict[str, Any] | None] = mapped_column()
    external_id: Mapped[int | None] = mapped_column(Integer)  # the COCO category id it was imported with
    extra: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("ontology_version_id", "key"),
        CheckConstraint(
            "shape_type IS NULL OR shape_type IN ('bbox','polygon','mask','keypoints','polyline','label','caption')",
            name="shape_type",
        ),
    )


# --------------------------------------------------------------------------- assets, frames, annotations


class ImportBatch(Base):
    """One import run; a re-import of identical bytes is recognised by ``content_sha256``."""

    __tablename__ = "import_batches"
    id: Mapped[int] = _pk()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(50))
    source_uri: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    images_sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="done")
    counts: Mapped[dict[str, Any] | None] = mapped_column()
    report: Mapped[dict[str, Any] | None] = mapped_column()
    header: Mapped[dict[str, Any] | None] = mapped_column()  # COCO info/licenses and unknown top-level keys
    created_at: Mapped[datetime] = _created()
    __table_args__ = (Index("ix_import_batches_dedup", "project_id", "content_sha256"),)


class Asset(Base):
    """An image, video or text source (seed 000 ``sources``, seed 003 ``asset``)."""

    __tablename__ = "assets"
    id: Mapped[int] = _pk()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    asset_type: Mapped[str] = mapped_column(String(10), default="image")
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
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("project_id", "sha256"),
        Index("ix_assets_project_file_name", "project_id", "file_name"),
        Index("ix_assets_project_external_id", "project_id", "external_id"),
        Index("ix_assets_width", "width"),
        Index("ix_assets_height", "height"),
        CheckConstraint("asset_type IN ('image','video','text')", name="asset_type"),
    )


class Frame(Base):
    """A frame of a video asset; ``image_asset_id`` points at the decoded frame image if kept."""

    __tablename__ = "frames"
    id: Mapped[int] = _pk()
    video_asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    frame_idx: Mapped[int] = mapped_column(Integer)
    timestamp_ms: Mapped[int | None] = mapped_column(Integer)
    image_asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"), index=True)
    __table_args__ = (UniqueConstraint("video_asset_id", "frame_idx"),)


class Track(Base):
    """An object followed across frames (CVAT ``track_id``), used for re-identification."""

    __tablename__ = "tracks"
    id: Mapped[int] = _pk()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(128))
    source_asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"))
    label_class_id: Mapped[int | None] = mapped_column(ForeignKey("label_classes.id", ondelete="SET NULL"))
    start_frame: Mapped[int | None] = mapped_column(Integer)
    end_frame: Mapped[int | None] = mapped_column(Integer)
    object_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("project_id", "external_id"),)


class AnnotationContent:
    """What an annotation says: label, geometry, attributes, provenance.

    Shared by the live ``annotations`` and a frozen version's snapshot of them, which must hold the
    same things.
    """

    label_class_id: Mapped[int | None] = mapped_column(ForeignKey("label_classes.id", ondelete="RESTRICT"))
    geometry_type: Mapped[str] = mapped_column(String(12))
    bbox_x: Mapped[float | None] = mapped_column(Float)
    bbox_y: Mapped[float | None] = mapped_column(Float)
    bbox_w: Mapped[float | None] = mapped_column(Float)
    bbox_h: Mapped[float | None] = mapped_column(Float)
    polygon: Mapped[list[Any] | None] = mapped_column()  # COCO polygon lists [[x, y, ...], ...]
    mask_uri: Mapped[str | None] = mapped_column(Text)
    keypoints: Mapped[list[Any] | None] = mapped_column()  # flat [x, y, v, ...]
    num_keypoints: Mapped[int | None] = mapped_column(Integer)
    caption: Mapped[str | None] = mapped_column(Text)
    area: Mapped[float | None] = mapped_column(Float)
    iscrowd: Mapped[bool] = mapped_column(Boolean, default=False)
    attributes: Mapped[dict[str, Any] | None] = mapped_column()  # CVAT attributes: occluded, rotation, custom
    extra: Mapped[dict[str, Any] | None] = mapped_column()  # unknown keys of the source file, kept for export
    source: Mapped[str] = mapped_column(String(10), default="human")
    confidence: Mapped[float | None] = mapped_column(Float)
    external_id: Mapped[int | None] = mapped_column(BigInteger)  # COCO annotation id


class Annotation(AnnotationContent, Base):
    """An object or image-level label (seed 000 ``objects``, seed 003 ``annotation``).

    Boxes live in columns so range queries use indexes; polygons and keypoints are JSON;
    masks are COCO RLE files in the mask store, referenced by ``mask_uri``.
    """

    __tablename__ = "annotations"
    id: Mapped[int] = _pk()
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frames.id", ondelete="SET NULL"))
    is_normalized: Mapped[bool] = mapped_column(Boolean, default=False)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    detection_model: Mapped[str | None] = mapped_column(String(255))
    annotator: Mapped[str | None] = mapped_column(String(255))
    is_validated: Mapped[bool] = mapped_column(Boolean, default=False)
    quality_score: Mapped[float | None] = mapped_column(Float)
    track_id: Mapped[int | None] = mapped_column(ForeignKey("tracks.id", ondelete="SET NULL"))
    import_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    __table_args__ = (
        Index("ix_annotations_asset_id", "asset_id"),
        Index("ix_annotations_label_asset", "label_class_id", "asset_id"),
        # Partial: imported human boxes leave these NULL, and a million of them should not pay for the index.
        # With asset_id the image-level `confidence<x` reads the index alone; with the class first,
        # `category:car confidence<0.5` does too. Partial, so human boxes (NULL confidence) cost nothing.
        Index("ix_annotations_confidence", "confidence", "asset_id", sqlite_where=text("confidence IS NOT NULL"),
              postgresql_where=text("confidence IS NOT NULL")),
        Index("ix_annotations_label_confidence", "label_class_id", "confidence", "asset_id",
              sqlite_where=text("confidence IS NOT NULL"), postgresql_where=text("confidence IS NOT NULL")),
        Index("ix_annotations_track_id", "track_id", sqlite_where=text("track_id IS NOT NULL"),
              postgresql_where=text("track_id IS NOT NULL")),
        Index("ix_annotations_model_version_id", "model_version_id", sqlite_where=text("model_version_id IS NOT NULL"),
              postgresql_where=text("model_version_id IS NOT NULL")),
        CheckConstraint(
            "geometry_type IN ('bbox','polygon','mask','keypoints','polyline','label','caption')",
            name="geometry_type",
        ),
        CheckConstraint("source IN ('human','model')", name="source"),
    )


class TrackMember(Base):
    __tablename__ = "track_members"
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), primary_key=True)
    sequence_idx: Mapped[int] = mapped_column(Integer)
    keyframe: Mapped[bool | None] = mapped_column(Boolean)
    __table_args__ = (Index("ix_track_members_annotation_id", "annotation_id"),)


class AnnotationRelation(Base):
    """Datamaker ``relations``: a directed, classified link between two annotations."""

    __tablename__ = "annotation_relations"
    id: Mapped[int] = _pk()
    from_annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), index=True)
    to_annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), index=True)
    classification: Mapped[dict[str, Any] | None] = mapped_column()
    external_id: Mapped[str | None] = mapped_column(String(64))
    __table_args__ = (UniqueConstraint("from_annotation_id", "to_annotation_id"),)


class AnnotationGroup(Base):
    """Datamaker ``annotationGroups``: a classified, possibly nested group of annotations."""

    __tablename__ = "annotation_groups"
    id: Mapped[int] = _pk()
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    classification: Mapped[dict[str, Any] | None] = mapped_column()
    external_id: Mapped[str | None] = mapped_column(String(64))


class AnnotationGroupMember(Base):
    __tablename__ = "annotation_group_members"
    group_id: Mapped[int] = mapped_column(ForeignKey("annotation_groups.id", ondelete="CASCADE"), primary_key=True)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), primary_key=True)
    parent_annotation_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"))


# --------------------------------------------------------------------------- tags and key-value metadata


class AssetTag(Base):
    __tablename__ = "asset_tags"
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (Index("ix_asset_tags_tag_asset", "tag", "asset_id"),)


class AnnotationTag(Base):
    __tablename__ = "annotation_tags"
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (Index("ix_annotation_tags_tag_annotation", "tag", "annotation_id"),)


class AssetMetadata(Base):
    """Key-value metadata; numbers are also kept in ``value_num`` so ``key>3`` uses an index."""

    __tablename__ = "asset_metadata"
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value_text: Mapped[str | None] = mapped_column(Text)
    value_num: Mapped[float | None] = mapped_column(Float)
    value: Mapped[dict[str, Any] | None] = mapped_column()  # {"v": original JSON value}
    updated_at: Mapped[datetime] = _created()
    __table_args__ = (
        Index("ix_asset_metadata_key_text", "key", "value_text"),
        Index("ix_asset_metadata_key_num", "key", "value_num"),
    )


class AnnotationMetadata(Base):
    __tablename__ = "annotation_metadata"
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value_text: Mapped[str | None] = mapped_column(Text)
    value_num: Mapped[float | None] = mapped_column(Float)
    value: Mapped[dict[str, Any] | None] = mapped_column()
    updated_at: Mapped[datetime] = _created()
    __table_args__ = (
        Index("ix_annotation_metadata_key_text", "key", "value_text"),
        Index("ix_annotation_metadata_key_num", "key", "value_num"),
    )


# --------------------------------------------------------------------------- embeddings (seed 000)


class EmbeddingVersion(Base):
    __tablename__ = "embedding_versions"
    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(String(100), unique=True)  # e.g. "visual_v1"; the Chroma collection suffix
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str | None] = mapped_column(String(100))
    dimension: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()


class EmbeddingOutbox(Base):
    """Pending vector-store writes, so the registry and Chroma can be reconciled after a crash."""

    __tablename__ = "embedding_outbox"
    id: Mapped[int] = _pk()
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"))
    embedding_version_id: Mapped[int] = mapped_column(ForeignKey("embedding_versions.id", ondelete="CASCADE"))
    operation: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        CheckConstraint("operation IN ('upsert','delete')", name="operation"),
        CheckConstraint("status IN ('pending','synced','failed')", name="status"),
    )


# --------------------------------------------------------------------------- dataset versions (seeds 000, 003)


class DatasetVersion(Base):
    """A draft defined by a query, ontology and split config; frozen versions never change."""

    __tablename__ = "dataset_versions"
    id: Mapped[int] = _pk()
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
    freeze_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    frozen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("project_id", "version_tag"),
        CheckConstraint("status IN ('draft','freezing','frozen','failed')", name="status"),
    )


class DatasetSplit(Base):
    __tablename__ = "dataset_splits"
    id: Mapped[int] = _pk()
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    split: Mapped[str] = mapped_column(String(20))
    ratio: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("dataset_version_id", "split"),
        CheckConstraint("split IN ('train','val','test','unassigned')", name="split"),
    )


class DatasetVersionAsset(Base):
    """Membership: each asset is in exactly one split of a version."""

    __tablename__ = "dataset_version_assets"
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="RESTRICT"), primary_key=True)
    split_id: Mapped[int] = mapped_column(ForeignKey("dataset_splits.id", ondelete="CASCADE"), index=True)
    __table_args__ = (Index("ix_dataset_version_assets_asset_id", "asset_id"),)


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


# --------------------------------------------------------------------------- models (seed 003)


class Model(Base):
    __tablename__ = "models"
    id: Mapped[int] = _pk()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    task: Mapped[str | None] = mapped_column(String(10))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        CheckConstraint("task IS NULL OR task IN ('det','pose','seg','cls','ocr')", name="task"),
    )


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = _pk()
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    human_id: Mapped[str] = mapped_column(String(32), unique=True)  # "m3"
    parent_model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    init_from_artifact_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_artifacts.id", use_alter=True, ondelete="SET NULL")
    )
    training_data_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id", ondelete="RESTRICT"))
    ontology_version_id: Mapped[int | None] = mapped_column(ForeignKey("ontology_versions.id", ondelete="RESTRICT"))
    recipe: Mapped[str | None] = mapped_column(String(100))
    framework: Mapped[str | None] = mapped_column(String(50))
    framework_version: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None] = mapped_column()
    training_config: Mapped[dict[str, Any] | None] = mapped_column()
    incremental_info: Mapped[dict[str, Any] | None] = mapped_column()
    is_frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    dagster_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        CheckConstraint("status IN ('pending','running','succeeded','failed','cancelled')", name="status"),
    )


class TrainingEpochMetric(Base):
    """Per-epoch training metrics (seed 002 ``metrics``), written as training runs."""

    __tablename__ = "training_epoch_metrics"
    id: Mapped[int] = _pk()
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    step: Mapped[int | None] = mapped_column(Integer)
    train_loss: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    precision: Mapped[float | None] = mapped_column(Float)
    recall: Mapped[float | None] = mapped_column(Float)
    map50: Mapped[float | None] = mapped_column(Float)
    map50_95: Mapped[float | None] = mapped_column(Float)
    extra: Mapped[dict[str, Any] | None] = mapped_column()
    recorded_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("model_version_id", "epoch"),)


class ModelArtifact(Base):
    __tablename__ = "model_artifacts"
    id: Mapped[int] = _pk()
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20), default="best")  # best, final, export
    format: Mapped[str] = mapped_column(String(20))
    device: Mapped[str] = mapped_column(String(20), default="cpu")
    precision: Mapped[str] = mapped_column(String(10), default="fp32")
    storage_uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    opset: Mapped[int | None] = mapped_column(Integer)
    ir_version: Mapped[int | None] = mapped_column(Integer)
    framework: Mapped[str | None] = mapped_column(String(50))
    framework_version: Mapped[str | None] = mapped_column(String(50))
    compat: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        CheckConstraint(
            "format IN ('ckpt','onnx','trt','torchscript','openvino','tflite','onnx-external')", name="format"
        ),
        CheckConstraint("device IN ('cpu','cuda','tensorrt','mps','npu','web')", name="device"),
        CheckConstraint("precision IN ('fp32','fp16','int8','mixed')", name="precision"),
    )


class Evaluation(Base):
    __tablename__ = "evaluations"
    id: Mapped[int] = _pk()
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id", ondelete="RESTRICT"))
    model_artifact_id: Mapped[int | None] = mapped_column(ForeignKey("model_artifacts.id", ondelete="SET NULL"))
    split: Mapped[str] = mapped_column(String(20), default="test")
    precision: Mapped[float] = mapped_column(Float)
    recall: Mapped[float] = mapped_column(Float)
    f1_score: Mapped[float] = mapped_column(Float)
    map50: Mapped[float] = mapped_column(Float)
    map50_95: Mapped[float] = mapped_column(Float)
    per_class: Mapped[dict[str, Any] | None] = mapped_column()
    extra: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = _created()


class Deployment(Base):
    """A model version served somewhere (seed 003 deployment, seed 002 inference endpoint)."""

    __tablename__ = "deployments"
    id: Mapped[int] = _pk()
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    target: Mapped[str] = mapped_column(String(10))
    endpoint_url: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="deploying")
    total_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    last_request_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deployed_at: Mapped[datetime] = _created()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        CheckConstraint("target IN ('edge','cloud')", name="target"),
        CheckConstraint("status IN ('deploying','active','inactive','error')", name="status"),
    )


# --------------------------------------------------------------------------- insights, exports, audit, changes


class InsightView(Base):
    __tablename__ = "insight_views"
    id: Mapped[int] = _pk()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    query: Mapped[str] = mapped_column(Text, default="")
    charts: Mapped[list[Any]] = mapped_column(default=list)  # names of insights to draw
    visualization: Mapped[dict[str, Any] | None] = mapped_column()
    saved_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    __table_args__ = (UniqueConstraint("project_id", "name"),)


class ExportJob(Base):
    __tablename__ = "export_jobs"
    id: Mapped[int] = _pk()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(20))
    filter_snapshot: Mapped[dict[str, Any] | None] = mapped_column()
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    payload_uri: Mapped[str | None] = mapped_column(Text)
    external_url: Mapped[str | None] = mapped_column(Text)
    log: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    __table_args__ = (
        CheckConstraint("target IN ('cvat','coco','yolo')", name="target"),
        CheckConstraint("status IN ('queued','running','done','failed')", name="status"),
    )


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = _pk()
    actor: Mapped[str | None] = mapped_column(String(255))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(100), index=True)
    entity_type: Mapped[str | None] = mapped_column(String(50))
    entity_ids: Mapped[list[Any] | None] = mapped_column()
    detail: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = _created()


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
    created_at: Mapped[datetime] = _created()
    __table_args__ = (Index("ix_change_events_entity_seq", "entity", "seq"), {"sqlite_autoincrement": True})
