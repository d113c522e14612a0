"""Plans (seed 002: free, pro, enterprise) and the limits they set: requests per minute per user and
per API key, stored gigabytes, training hours a month.

A user's own ``storage_gb_limit`` / ``gpu_hours_limit`` replace their plan's; the environment can
replace the request rates of every plan (``DSGEN_RATE_LIMIT_PER_MINUTE`` per user,
``DSGEN_RATE_LIMIT_KEY_PER_MINUTE`` per key, ``DSGEN_RATE_LIMIT_ANON_PER_MINUTE`` per client address
for calls without credentials, such as logins; 0 is no limit) and the window
(``DSGEN_RATE_LIMIT_WINDOW_S``, 60). Storage is what the user's projects hold now (see
:func:`dsgen_core.accounts.usage.stored_bytes`); training is the ``training`` usage recorded this
calendar month (UTC).

    check_storage(session, owner, extra_bytes=sum_of_upload)     # raises LimitExceeded
    check_training(session, user, expected_seconds=3600)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.accounts.access import Forbidden
from dsgen_core.accounts.usage import month_start, stored_bytes, used
from dsgen_core.errors import DsgenError
from dsgen_core.registry.schema import ProjectMember, User

GB = 1024**3


@dataclass(frozen=True)
class Plan:
    name: str
    requests_per_minute: int | None  # per user, all their logins and keys together; None: no limit
    key_requests_per_minute: int | None  # per API key
    storage_gb: float | None
    training_hours: float | None  # a calendar month


PLANS: dict[str, Plan] = {
    "free": Plan("free", 600, 300, 5.0, 10.0),
    "pro": Plan("pro", 3000, 1500, 100.0, 100.0),
    "enterprise": Plan("enterprise", 12000, 6000, None, None),
}
ANON_PER_MINUTE = 60  # per client address, without credentials: enough to log in, too few to guess passwords
WINDOW_S = 60


class LimitExceeded(Forbidden):
    """The operation would go past the user's plan limit (HTTP 403, "Plan limit reached"); nothing was written."""

    def __init__(self, message: str, *, limit: str, plan: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.plan = plan


def _env_rate(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise DsgenError(f"{name} must be a whole number of requests (0: no limit), not {raw!r}") from None
    return n if n > 0 else None


def window_s() -> int:
    return _env_rate("DSGEN_RATE_LIMIT_WINDOW_S", WINDOW_S) or WINDOW_S


def anonymous_per_window() -> int | None:
    return _env_rate("DSGEN_RATE_LIMIT_ANON_PER_MINUTE", ANON_PER_MINUTE)


def plan_of(user: User) -> Plan:
    """The user's plan with the environment's request rates and the user's own limits applied."""
    base = PLANS.get(user.plan or "free", PLANS["free"])
    plan = replace(base,
                   requests_per_minute=_env_rate("DSGEN_RATE_LIMIT_PER_MINUTE", base.requests_per_minute),
                   key_requests_per_minute=_env_rate("DSGEN_RATE_LIMIT_KEY_PER_MINUTE", base.key_requests_per_minute))
    if user.storage_gb_limit is not None:
        plan = replace(plan, storage_gb=float(user.storage_gb_limit))
    if user.gpu_hours_limit is not None:
        plan = replace(plan, training_hours=float(user.gpu_hours_limit))
    return plan


def _gb(n: float) -> str:
    return f"{n / GB:.3g} GB"


def storage_payer(session: Session, project_id: int, owner_id: int | None, *, fallback_user_id: int) -> User:
    """Whose plan pays for what a project stores: its ``owner_id``, else its first member with the
    owner role (the projects :func:`~dsgen_core.accounts.usage.stored_bytes` counts as theirs), else
    ``fallback_user_id`` (the one adding to it)."""
    payer_id = owner_id or session.scalar(
        select(ProjectMember.user_id).where(ProjectMember.project_id == project_id, ProjectMember.role == "owner")
        .order_by(ProjectMember.created_at, ProjectMember.user_id).limit(1)) or fallback_user_id
    payer = session.get(User, payer_id)
    if payer is None:
        raise DsgenError(f"user {payer_id} does not exist")
    return payer


def check_storage(session: Session, user: User, extra_bytes: int) -> None:
    """Refuse (:class:`LimitExceeded`) when the user's projects would hold more than their plan allows
    after adding ``extra_bytes``. Call it before writing anything."""
    plan = plan_of(user)
    if plan.storage_gb is None:
        return
    now = stored_bytes(session, user.id)
    limit = plan.storage_gb * GB
    if now + extra_bytes > limit:
        raise LimitExceeded(
            f"storage limit reached: {user.email}'s projects hold {_gb(now)} of the {plan.storage_gb:g} GB the "
            f"{plan.name} plan allows, and this adds {_gb(extra_bytes)}; delete images or raise the limit",
            limit="storage", plan=plan.name)


def check_training(session: Session, user: User, expected_seconds: float = 0) -> None:
    """Refuse (:class:`LimitExceeded`) a training run when this month's recorded training time, plus
    ``expected_seconds``, would pass the plan's hours (or has reached them already)."""
    plan = plan_of(user)
    if plan.training_hours is None:
        return
    seconds = used(session, user.id, "training", since=month_start())
    limit = plan.training_hours * 3600
    if seconds >= limit or seconds + expected_seconds > limit:
        raise LimitExceeded(
            f"training limit reached: {user.email} used {seconds / 3600:.2f} h of the {plan.training_hours:g} h a "
            f"month the {plan.name} plan allows"
            + (f", and this run expects {expected_seconds / 3600:.2f} h" if expected_seconds else ""),
            limit="training", plan=plan.name)
