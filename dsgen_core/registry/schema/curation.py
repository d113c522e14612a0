"""Tags and key-value metadata on images and objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from dsgen_core.registry.schema.base import Base, created_column


class AssetTag(Base):
    __tablename__ = "asset_tags"
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (Index("ix_asset_tags_tag_asset", "tag", "asset_id"),)


class AnnotationTag(Base):
    __tablename__ = "annotation_tags"
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (Index("ix_annotation_tags_tag_annotation", "tag", "annotation_id"),)


class AssetMetadata(Base):
    """Key-value metadata; numbers are also kept in ``value_num`` so ``key>3`` uses an index."""

    __tablename__ = "asset_metadata"
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value_text: Mapped[str | None] = mapped_column(Text)
    value_num: Mapped[float | None] = mapped_column(Float)
    value: Mapped[dict[str, Any] | None] = mapped_column()  # {"v": original JSON value}
    updated_at: Mapped[datetime] = created_column()
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
    updated_at: Mapped[datetime] = created_column()
    __table_args__ = (
        Index("ix_annotation_metadata_key_text", "key", "value_text"),
        Index("ix_annotation_metadata_key_num", "key", "value_num"),
    )
