"""Projects, their datasets and ontology: ontology versions and label classes."""

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


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = pk_column()
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    source: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="ready")
    default_ontology_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("ontology_versions.id", use_alter=True, ondelete="SET NULL")
    )
    tags: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = created_column()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[int] = pk_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    format: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="ready")
    validation_result: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = created_column()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        CheckConstraint("format IS NULL OR format IN ('coco','yolo','imagenet','pascal_voc','datamaker')", name="format"),
    )


class OntologyVersion(Base):
    """A version of the label definitions: which classes it lists and under what names.

    Frozen with the first dataset version that uses it; a new class then makes a new ontology
    version that lists the old classes (the same rows) plus the new one.
    """

    __tablename__ = "ontology_versions"
    id: Mapped[int] = pk_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    version_tag: Mapped[str] = mapped_column(String(50))
    is_frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("ontology_versions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (UniqueConstraint("project_id", "version_tag"),)


SHAPE_TYPES = ("bbox", "polygon", "mask", "keypoints", "polyline", "label", "caption")


class LabelClass(Base):
    """A class of a project (COCO category, CVAT label), one row for its whole life.

    Ontology versions list it (:class:`OntologyVersionClass`); annotations, tracks, dataset
    versions and model versions refer to this row, so a class keeps its identity when a newer
    ontology version adds, renames or retires others.
    """

    __tablename__ = "label_classes"
    id: Mapped[int] = pk_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(255))
    supercategory: Mapped[str | None] = mapped_column(String(255))
    synonyms: Mapped[list[Any]] = mapped_column(default=list)
    color: Mapped[str | None] = mapped_column(String(20))
    shape_type: Mapped[str | None] = mapped_column(String(20))
    keypoint_spec: Mapped[dict[str, Any] | None] = mapped_column()  # {"keypoints": [...], "skeleton": [[a, b], ...]}
    attribute_schema: Mapped[dict[str, Any] | None] = mapped_column()
    external_id: Mapped[int | None] = mapped_column(BigId)  # the COCO category id it was imported with
    extra: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (
        UniqueConstraint("project_id", "key"),
        CheckConstraint(
            "shape_type IS NULL OR shape_type IN ('bbox','polygon','mask','keypoints','polyline','label','caption')",
            name="shape_type",
        ),
    )


class OntologyVersionClass(Base):
    """Membership: the classes an ontology version lists, with the name each has in that version."""

    __tablename__ = "ontology_version_classes"
    ontology_version_id: Mapped[int] = mapped_column(
        ForeignKey("ontology_versions.id", ondelete="CASCADE"), primary_key=True
    )
    label_class_id: Mapped[int] = mapped_column(ForeignKey("label_classes.id", ondelete="CASCADE"), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(255))
    __table_args__ = (Index("ix_ontology_version_classes_label_class_id", "label_class_id"),)


class ProjectPolicy(Base):
    """When the loop cuts a project's next version, and what follows it (seed 003 training triggers).

    The next version is cut once the annotation batches after the newest version reach any
    threshold that is set (new or changed human objects, new images, new classes), or, with
    ``window_hours``, once anything changed and the newest version is that old. ``trigger`` says
    who evaluates it: the sensor (each tick) or the nightly policy schedule.
    """

    __tablename__ = "project_policies"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    trigger: Mapped[str] = mapped_column(String(10), default="sensor")
    min_annotations: Mapped[int | None] = mapped_column(Integer)
    min_images: Mapped[int | None] = mapped_column(Integer)
    min_classes: Mapped[int | None] = mapped_column(Integer)
    window_hours: Mapped[float | None] = mapped_column(Float)
    query: Mapped[str | None] = mapped_column(Text)
    split_config: Mapped[dict[str, Any] | None] = mapped_column()
    seed: Mapped[int] = mapped_column(Integer, default=0)
    train: Mapped[bool] = mapped_column(Boolean, default=True)  # train the child of the production model
    recipe: Mapped[str | None] = mapped_column(String(100))
    tolerance: Mapped[float] = mapped_column(Float, default=0.01)  # mAP50-95 a child may lose and still be promoted
    updated_by: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = created_column()
    __table_args__ = (
        CheckConstraint("trigger IN ('sensor','schedule')", name="trigger"),
        CheckConstraint("(min_annotations IS NULL OR min_annotations > 0) AND (min_images IS NULL OR min_images > 0)"
                        " AND (min_classes IS NULL OR min_classes > 0) AND (window_hours IS NULL OR window_hours > 0)",
                        name="thresholds"),
        CheckConstraint("tolerance >= 0", name="tolerance"),
    )
