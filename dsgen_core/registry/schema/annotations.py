"""Objects and image-level labels, their tracks, relations and groups."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from dsgen_core.registry.schema.base import Base, created_column, pk_column


class Track(Base):
    """An object followed across frames (CVAT ``track_id``), used for re-identification.

    ``scope`` names the source whose numbering ``external_id`` is: the import file for a CVAT
    export, ``video:<asset id>`` for a video, ``link:<run>`` for proposals. Two sources that both
    number tracks from 0 get two tracks. ``origin`` keeps model-made tracks (``tracks link``
    proposals, with a ``score``) apart from human ones; ``status`` is how far a proposal got.
    """

    __tablename__ = "tracks"
    id: Mapped[int] = pk_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(128))
    source_asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"))
    label_class_id: Mapped[int | None] = mapped_column(ForeignKey("label_classes.id", ondelete="SET NULL"))
    start_frame: Mapped[int | None] = mapped_column(Integer)
    end_frame: Mapped[int | None] = mapped_column(Integer)
    object_count: Mapped[int] = mapped_column(Integer, default=0)
    scope: Mapped[str] = mapped_column(Text, default="")
    origin: Mapped[str] = mapped_column(String(10), default="human")
    status: Mapped[str] = mapped_column(String(10), default="accepted")
    score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (
        UniqueConstraint("project_id", "scope", "external_id"),
        CheckConstraint("origin IN ('human','model')", name="origin"),
        CheckConstraint("status IN ('proposed','accepted','rejected')", name="status"),
    )


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
    external_id: Mapped[int | None] = mapped_column(BigInteger)  # COCO annotation id, as the source typed it
    # Identity within the image: the source's own annotation id, namespaced ("coco:17"); None for
    # objects nobody else refers to (a model's detections).
    source_key: Mapped[str | None] = mapped_column(Text)


class Annotation(AnnotationContent, Base):
    """An object or image-level label (seed 000 ``objects``, seed 003 ``annotation``).

    Boxes live in columns so range queries use indexes; polygons and keypoints are JSON;
    masks are COCO RLE files in the mask store, referenced by ``mask_uri``.
    """

    __tablename__ = "annotations"
    id: Mapped[int] = pk_column()
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
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()
    __table_args__ = (
        # The object's identity in its image; it also serves every lookup by image (NULL keys, a model's
        # detections, never collide: NULLs are distinct in a unique index on both databases).
        Index("uq_annotations_asset_source_key", "asset_id", "source_key", unique=True),
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
    id: Mapped[int] = pk_column()
    from_annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), index=True)
    to_annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), index=True)
    classification: Mapped[dict[str, Any] | None] = mapped_column()
    external_id: Mapped[str | None] = mapped_column(String(64))
    __table_args__ = (UniqueConstraint("from_annotation_id", "to_annotation_id"),)


class AnnotationGroup(Base):
    """Datamaker ``annotationGroups``: a classified, possibly nested group of annotations."""

    __tablename__ = "annotation_groups"
    id: Mapped[int] = pk_column()
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    classification: Mapped[dict[str, Any] | None] = mapped_column()
    external_id: Mapped[str | None] = mapped_column(String(64))


class AnnotationGroupMember(Base):
    __tablename__ = "annotation_group_members"
    group_id: Mapped[int] = mapped_column(ForeignKey("annotation_groups.id", ondelete="CASCADE"), primary_key=True)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), primary_key=True)
    parent_annotation_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"))
