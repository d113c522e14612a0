"""Rate limits: requests counted per caller in fixed windows (a minute by default), in Redis when
``DSGEN_REDIS_URL`` is set, else in the registry's ``rate_counters`` table.

A request names its buckets (``u:<user>`` and ``k:<key>`` for a key's call, ``ip:<address>`` for
one without credentials) with their limits; every bucket is incremented at once, and the first
one past its limit refuses the request with :class:`RateLimited` and the seconds until its window
ends. Refused requests count too: a client that keeps hammering stays refused until the window
turns. Both stores are exact under concurrent requests: Redis's INCR, and the database's atomic
``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (PostgreSQL and SQLite alike).

    hits = [Hit("u:7", 600, "user ana@example.com"), Hit("k:3", 300, "API key 3")]
    counts = count(session, hits, window_s=60)     # raises RateLimited
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dsgen_core.accounts import fast_state
from dsgen_core.accounts.fast_state import PREFIX, redis_client
from dsgen_core.errors import DsgenError
from dsgen_core.registry.schema import RateCounter


class RateLimited(DsgenError):
    """Too many requests in this window (HTTP 429 with ``Retry-After``); the request did nothing."""

    def __init__(self, message: str, *, retry_after: int, limit: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.limit = limit
        self.headers = {"Retry-After": str(retry_after)}


@dataclass(frozen=True)
class Hit:
    bucket: str  # u:<user id>, k:<key id>, ip:<address>
    limit: int | None  # None: counted nowhere (no limit)
    who: str  # for the message: "user ana@example.com"


def _window(now: float, window_s: int) -> tuple[int, int]:
    start = int(now // window_s * window_s)
    return start, max(1, math.ceil(start + window_s - now))


def _db_counts(session: Session, buckets: list[str], start: int) -> dict[str, int]:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(RateCounter).values([{"bucket": b, "window_start": start, "count": 1} for b in buckets])
    stmt = stmt.on_conflict_do_update(index_elements=[RateCounter.bucket, RateCounter.window_start],
                                      set_={"count": RateCounter.count + 1})
    rows = session.execute(stmt.returning(RateCounter.bucket, RateCounter.count)).all()
    return {b: int(c) for b, c in rows}


def _redis_counts(client: Any, buckets: list[str], start: int, window_s: int) -> dict[str, int]:
    # One round trip: every INCR with its EXPIRE (a window's key outlives its window by one, then goes).
    pipe = client.pipeline(transaction=True)
    for b in buckets:
        key = f"{PREFIX}rl:{b}:{start}"
        pipe.incr(key)
        pipe.expire(key, window_s * 2)
    replies = pipe.execute()
    return {b: int(replies[2 * i]) for i, b in enumerate(buckets)}


def count(session: Session, hits: list[Hit], *, window_s: int, now: float | None = None) -> dict[str, int]:
    """Count one request in each limited bucket; raise :class:`RateLimited` if any is past its limit.
    ``session``: a transaction of its own (the counts stay whatever becomes of the request)."""
    limited = [h for h in hits if h.limit is not None]
    if not limited:
        return {}
    t = time.time() if now is None else now
    start, retry = _window(t, window_s)
    buckets = [h.bucket for h in limited]
    counts: dict[str, int] | None = None
    client = redis_client()
    if client is not None:
        try:
            counts = _redis_counts(client, buckets, start, window_s)
        except Exception as exc:  # noqa: BLE001 - the database counts while Redis is away
            fast_state.failed("the rate counters", exc)
    if counts is None:
        counts = _db_counts(session, buckets, start)
    for h in limited:
        assert h.limit is not None
        if counts.get(h.bucket, 0) > h.limit:
            raise RateLimited(f"rate limit reached: {h.limit} requests per {window_s} s for {h.who}; "
                              f"try again in {retry} s", retry_after=retry, limit=h.limit)
    return counts


def forget_old(session: Session, *, window_s: int, now: float | None = None) -> int:
    """Delete the database's counters of windows that have ended (Redis expires its own)."""
    t = time.time() if now is None else now
    start, _ = _window(t, window_s)
    result = session.execute(delete(RateCounter).where(RateCounter.window_start < start - window_s))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
