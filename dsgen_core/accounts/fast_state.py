"""Redis, when ``DSGEN_REDIS_URL`` is set: rate-limit counters and revoked access tokens kept where
every API process sees them without a database round trip. Unset, the database serves both.

Revocations are mirrored here with the time the token has left to live, and :func:`revoked` is
asked first: a miss means "not revoked" (every revocation is written here as it is made, and a
starting server copies the database's in, :func:`sync_revocations`). When Redis does not answer,
callers fall back to the database: a slow or missing cache must not let a revoked token in.

    client = redis_client()            # None when not configured
    mark_revoked(jti="...", family="...", expires_at=when)
    revoked(jti, family)               # True, False, or None (ask the database)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.registry.schema import RefreshToken, RevokedAccessToken, as_utc, utcnow

log = logging.getLogger("dsgen.redis")
PREFIX = "dsgen:"
PAUSE_S = 5.0  # after a failure, how long requests go straight to the database before Redis is tried again
_clients: dict[str, Any] = {}
_lock = threading.Lock()
_down_until = 0.0
_stale = False  # a revocation may have missed Redis: copy the database's in before trusting a miss


def redis_url() -> str | None:
    return os.environ.get("DSGEN_REDIS_URL", "").strip() or None


def redis_client() -> Any | None:
    """The client of ``DSGEN_REDIS_URL`` (one per URL and process); None when it is not set, or for
    :data:`PAUSE_S` after Redis failed (:func:`failed`): then the database answers."""
    url = redis_url()
    if url is None or time.monotonic() < _down_until:
        return None
    with _lock:
        client = _clients.get(url)
        if client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            # Short timeouts and no retries: a request waits for Redis at most this long before the
            # database answers, and a Redis that is down is left alone for a while (failed()).
            client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5,
                                          retry=Retry(NoBackoff(), 0))
            _clients[url] = client
        return client


def failed(what: str, exc: Exception) -> None:
    """Redis did not answer: say so once, and let the database serve for :data:`PAUSE_S`."""
    global _down_until, _stale
    _stale = True
    if time.monotonic() >= _down_until:
        log.warning("Redis did not answer (%s), the database serves for %g s: %s", what, PAUSE_S, exc)
    _down_until = time.monotonic() + PAUSE_S


def _ttl(expires_at: datetime) -> int:
    return max(1, int((as_utc(expires_at) - utcnow()).total_seconds()) + 1)


def mark_revoked(*, jti: str | None = None, family: str | None = None, expires_at: datetime | None = None,
                 family_ttl_s: int | None = None) -> None:
    """Mirror a revocation: the token ``jti`` until ``expires_at``, the login ``family`` for
    ``family_ttl_s`` (as long as an access token it issued can live)."""
    client = redis_client()
    if client is None:
        return
    try:
        pipe = client.pipeline(transaction=False)
        if jti and expires_at is not None:
            pipe.set(f"{PREFIX}revoked:jti:{jti}", 1, ex=_ttl(expires_at))
        if family and family_ttl_s:
            pipe.set(f"{PREFIX}revoked:fam:{family}", 1, ex=family_ttl_s)
        pipe.execute()
    except Exception as exc:  # noqa: BLE001 - the database has the revocation; the next sync copies it
        failed("mirroring a revocation", exc)


def revoked(session: Session, jti: str, family: str, *, family_ttl_s: int) -> bool | None:
    """Whether Redis knows the token or its login as revoked; None when Redis is not configured or failed.
    After a failure the database's revocations are copied in first: one may have been made meanwhile."""
    global _stale
    client = redis_client()
    if client is None:
        return None
    try:
        if _stale:
            _stale = False
            sync_revocations(session, family_ttl_s)
            if _stale:  # the copy failed
                return None
        return int(client.exists(f"{PREFIX}revoked:jti:{jti}", f"{PREFIX}revoked:fam:{family}")) > 0
    except Exception as exc:  # noqa: BLE001 - the caller asks the database instead
        failed("a revocation lookup", exc)
        return None


def sync_revocations(session: Session, family_ttl_s: int) -> int:
    """Copy the database's live revocations into Redis (a server starting, or Redis emptied); returns how many."""
    if redis_client() is None:
        return 0
    now = utcnow()
    n = 0
    for jti, exp in session.execute(select(RevokedAccessToken.jti, RevokedAccessToken.expires_at)
                                    .where(RevokedAccessToken.expires_at > now)):
        mark_revoked(jti=jti, expires_at=exp)
        n += 1
    recent = now - timedelta(seconds=family_ttl_s)
    for (family,) in session.execute(select(RefreshToken.family).where(RefreshToken.revoked_at > recent).distinct()):
        mark_revoked(family=family, family_ttl_s=family_ttl_s)
        n += 1
    return n
