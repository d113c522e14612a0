"""Trained models: models, model versions, epochs, artifacts, evaluations, deployments (seed 003)."""

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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from dsgen_core.registry.schema.base import Base, created_column, pk_column


class Model(Base):
    __tablename__ = "models"
    id: Mapped[int] = pk_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    task: Mapped[str | None] = mapped_column(String(10))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        CheckConstraint("task IS NULL OR task IN ('det','pose','seg','cls','ocr')", name="task"),
    )


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = pk_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    human_id: Mapped[str] = mapped_column(String(32))  # "m3", unique within the project
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
    # The promotion decision: {"decision": "promoted"|"candidate", "reason", "reference", "numbers", "at"}.
    promotion: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[datetime] = created_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("project_id", "human_id"),
        CheckConstraint("status IN ('pending','running','succeeded','failed','cancelled')", name="status"),
    )


class TrainingEpochMetric(Base):
    """Per-epoch training metrics (seed 002 ``metrics``), written as training runs."""

    __tablename__ = "training_epoch_metrics"
    id: Mapped[int] = pk_column()
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
    recorded_at: Mapped[datetime] = created_column()
    __table_args__ = (UniqueConstraint("model_version_id", "epoch"),)


class ModelArtifact(Base):
    __tablename__ = "model_artifacts"
    id: Mapped[int] = pk_column()
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
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (
        CheckConstraint(
            "format IN ('ckpt','onnx','trt','torchscript','openvino','tflite','onnx-external')", name="format"
        ),
        CheckConstraint("device IN ('cpu','cuda','tensorrt','mps','npu','web')", name="device"),
        CheckConstraint("precision IN ('fp32','fp16','int8','mixed')", name="precision"),
    )


class Evaluation(Base):
    __tablename__ = "evaluations"
    id: Mapped[int] = pk_column()
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
    created_at: Mapped[datetime] = created_column()


class Deployment(Base):
    """A model version served somewhere (seed 003 deployment, seed 002 inference endpoint).

    A project's production model is the deployment named ``production`` with target ``registry``
    and status ``active``: at most one per project (a partial unique index); promoting another
    makes the old one ``inactive``, so the rows are the production model's history.
    """

    __tablename__ = "deployments"
    id: Mapped[int] = pk_column()
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model_artifact_id: Mapped[int | None] = mapped_column(ForeignKey("model_artifacts.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(50))
    target: Mapped[str] = mapped_column(String(10))
    endpoint_url: Mapped[str | None] = mapped_column(String(255), unique=True)
    reason: Mapped[dict[str, Any] | None] = mapped_column()  # why: the promotion decision
    actor: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default="deploying")
    total_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    last_request_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deployed_at: Mapped[datetime] = created_column()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        CheckConstraint("target IN ('edge','cloud','registry')", name="target"),
        CheckConstraint("status IN ('deploying','active','inactive','error')", name="status"),
        Index("uq_deployments_production", "project_id", unique=True,
              sqlite_where=text("name = 'production' AND status = 'active'"),
              postgresql_where=text("name = 'production' AND status = 'active'")),
    )
