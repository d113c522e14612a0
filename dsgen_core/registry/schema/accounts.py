"""Users, API keys and usage records (seed 002)."""

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
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from dsgen_core.registry.schema.base import Base, created_column, pk_column


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = pk_column()
    email: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    hashed_password: Mapped[str | None] = mapped_column(String(255))
    external_uid: Mapped[str | None] = mapped_column(String(100), unique=True)
    plan: Mapped[str] = mapped_column(String(20), default="free")
    gpu_hours_limit: Mapped[float | None] = mapped_column(Float)
    storage_gb_limit: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = created_column()
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)  # every project, and the accounts
    __table_args__ = (CheckConstraint("plan IN ('free','pro','enterprise')", name="plan"),)


class ApiKey(Base):
    """Hashed API keys with scopes; the clear key is shown once and never stored."""

    __tablename__ = "api_keys"
    id: Mapped[int] = pk_column()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(255), unique=True)
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    total_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_column()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UsageRecord(Base):
    __tablename__ = "usage_records"
    id: Mapped[int] = pk_column()
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    resource_type: Mapped[str] = mapped_column(String(50))
    amount: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(20))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    dagster_run_id: Mapped[str | None] = mapped_column(String(64))
    cost_usd: Mapped[float | None] = mapped_column(Float)
    recorded_at: Mapped[datetime] = created_column()
    # The key a request came through: API requests are summed per user and per key (0010).
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"), index=True)


class RateCounter(Base):
    """Requests of one caller (``u:<user>``, ``k:<key>``, ``ip:<address>``) in one fixed window, for
    the rate limits when no Redis is configured; rows of past windows are deleted as they age."""

    __tablename__ = "rate_counters"
    bucket: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)  # epoch seconds
    count: Mapped[int] = mapped_column(Integer, default=0)


PROJECT_ROLES = ("viewer", "editor", "admin", "owner")


class ProjectMember(Base):
    """A user's role in a project (seed 001's RBAC): viewer reads, editor writes, admin manages, owner owns."""

    __tablename__ = "project_members"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (CheckConstraint("role IN ('viewer','editor','admin','owner')", name="role"),)


class RefreshToken(Base):
    """A refresh token (hashed): used once, replaced by the next of its family; a reuse revokes the family."""

    __tablename__ = "refresh_tokens"
    id: Mapped[int] = pk_column()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family: Mapped[str] = mapped_column(String(32), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_column()
    __table_args__ = (UniqueConstraint("token_hash"),)


class RevokedAccessToken(Base):
    """An access token revoked before it expired (logout): its ``jti``, kept until then."""

    __tablename__ = "revoked_access_tokens"
    jti: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
