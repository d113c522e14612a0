"""Usage records (seed 002's ``usage_tracking``): what each user and API key consumed, for plans and bills.

Three resource types, each in one unit: ``api_request`` (requests), ``storage`` (bytes), ``training``
(seconds of compute). Training and storage events are written as they happen (:func:`record_usage`).
API requests are too many for a row each: the server counts them in memory per (user, key, hour) in
a :class:`RequestTally` and writes one row per group every few seconds (and when it stops), so a
request costs a dictionary increment, not an INSERT.

    record_usage(session, user.id, "training", 812.5, "seconds", project_id=p.id, dagster_run_id=run)
    summary = usage_summary(session, user, since=month_start())
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError
from dsgen_core.registry.schema import ApiKey, Asset, Project, ProjectMember, UsageRecord, User, as_utc, utcnow

UNITS = {"api_request": "requests", "storage": "bytes", "training": "seconds"}
RUN_USER_TAG = "dsgen/user_id"  # a Dagster run started for a user: its compute is theirs


def record_usage(session: Session, user_id: int, resource_type: str, amount: float, unit: str | None = None, *,
                 project_id: int | None = None, api_key_id: int | None = None, model_version_id: int | None = None,
                 dagster_run_id: str | None = None, recorded_at: datetime | None = None) -> UsageRecord:
    """One usage row; ``unit`` defaults to the resource type's (and must be it when given)."""
    expected = UNITS.get(resource_type)
    if expected is None:
        raise DsgenError(f"resource type must be one of {', '.join(UNITS)}, not {resource_type!r}")
    if unit is not None and unit != expected:
        raise DsgenError(f"{resource_type} is counted in {expected}, not {unit!r}")
    if amount < 0:
        raise DsgenError(f"usage cannot be negative ({amount})")
    row = UsageRecord(user_id=user_id, resource_type=resource_type, amount=float(amount), unit=expected,
                      project_id=project_id, api_key_id=api_key_id, model_version_id=model_version_id,
                      dagster_run_id=dagster_run_id, recorded_at=recorded_at or utcnow())
    session.add(row)
    session.flush()
    return row


def month_start(now: datetime | None = None) -> datetime:
    """The start (UTC) of the calendar month ``now`` is in: plan allowances such as training hours are monthly."""
    t = now or utcnow()
    return t.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def stored_bytes(session: Session, user_id: int) -> int:
    """Bytes of the live images and videos in the projects ``user_id`` owns (``projects.owner_id``, or an
    ``owner`` role): what is stored, measured, rather than summed from upload records that deletions
    would leave behind."""
    owned = select(ProjectMember.project_id).where(ProjectMember.user_id == user_id, ProjectMember.role == "owner")
    total = session.scalar(
        select(func.coalesce(func.sum(Asset.bytes), 0)).join(Project, Project.id == Asset.project_id)
        .where(or_(Project.owner_id == user_id, Project.id.in_(owned)), Project.deleted_at.is_(None),
               Asset.deleted_at.is_(None)))
    return int(total or 0)


def used(session: Session, user_id: int, resource_type: str, *, since: datetime | None = None) -> float:
    """The recorded amount of ``resource_type`` for the user since ``since`` (all time when None)."""
    stmt = select(func.coalesce(func.sum(UsageRecord.amount), 0.0)).where(
        UsageRecord.user_id == user_id, UsageRecord.resource_type == resource_type)
    if since is not None:
        stmt = stmt.where(UsageRecord.recorded_at >= since)
    return float(session.scalar(stmt) or 0.0)


@dataclass(frozen=True)
class UsageLine:
    resource_type: str
    unit: str
    amount: float
    api_key_id: int | None  # None: not through a key (a login, a pipeline)
    api_key_name: str | None = None


@dataclass(frozen=True)
class UsageSummary:
    user_id: int
    email: str
    plan: str
    since: datetime | None
    until: datetime
    lines: list[UsageLine] = field(default_factory=list)
    stored_bytes: int = 0  # now, measured (see stored_bytes)

    def total(self, resource_type: str) -> float:
        return sum(line.amount for line in self.lines if line.resource_type == resource_type)


def usage_summary(session: Session, user: User, *, since: datetime | None = None, until: datetime | None = None,
                  api_key_id: int | None = None) -> UsageSummary:
    """The user's usage between ``since`` and ``until``, per resource type and API key."""
    end = until or utcnow()
    stmt = (select(UsageRecord.resource_type, UsageRecord.unit, UsageRecord.api_key_id, ApiKey.name,
                   func.sum(UsageRecord.amount))
            .outerjoin(ApiKey, ApiKey.id == UsageRecord.api_key_id)
            .where(UsageRecord.user_id == user.id, UsageRecord.recorded_at < end)
            .group_by(UsageRecord.resource_type, UsageRecord.unit, UsageRecord.api_key_id, ApiKey.name)
            .order_by(UsageRecord.resource_type, UsageRecord.api_key_id))
    if since is not None:
        stmt = stmt.where(UsageRecord.recorded_at >= since)
    if api_key_id is not None:
        stmt = stmt.where(UsageRecord.api_key_id == api_key_id)
    lines = [UsageLine(rt, unit, float(amount), kid, name) for rt, unit, kid, name, amount in session.execute(stmt)]
    return UsageSummary(user.id, user.email, user.plan, as_utc(since) if since else None, end, lines,
                        stored_bytes(session, user.id))


class RequestTally:
    """API requests counted in memory per (user, key, hour), written as usage rows in batches.

    ``add`` is what a request pays. ``flush`` writes one ``api_request`` row per group (stamped with
    the hour it counts) and is due every ``every_s`` seconds or ``max_pending`` groups; the server
    also flushes when it stops. Several processes each write their own rows: summaries add them up.
    """

    def __init__(self, every_s: float = 10.0, max_pending: int = 1000) -> None:
        self.every_s = every_s
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, int | None, int], int] = {}
        self._last = time.monotonic()

    def add(self, user_id: int, api_key_id: int | None, *, now: float | None = None) -> None:
        hour = int((now if now is not None else time.time()) // 3600 * 3600)
        k = (user_id, api_key_id, hour)
        with self._lock:
            self._counts[k] = self._counts.get(k, 0) + 1

    def due(self) -> bool:
        return bool(self._counts) and (len(self._counts) >= self.max_pending
                                       or time.monotonic() - self._last >= self.every_s)

    def take(self) -> dict[tuple[int, int | None, int], int]:
        with self._lock:
            counts, self._counts = self._counts, {}
            self._last = time.monotonic()
        return counts

    def flush(self, session: Session) -> int:
        """Write what was counted; returns the number of requests written. If the transaction fails the
        counts are lost, not double-counted: usage records are an account, not a ledger to reconcile."""
        counts = self.take()
        for (user_id, key_id, hour), n in counts.items():
            session.add(UsageRecord(user_id=user_id, api_key_id=key_id, resource_type="api_request",
                                    amount=float(n), unit="requests", recorded_at=datetime.fromtimestamp(hour, UTC)))
        session.flush()
        return sum(counts.values())
