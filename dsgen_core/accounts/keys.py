"""API keys: ``dsg_<id>_<secret>``, shown once; only the secret's SHA-256 is stored.

The secret is 32 random bytes, so a fast hash is enough (nothing to guess); the id in the key
finds the row without a scan. A key has scopes (read, write, admin), may expire, and can be revoked.

    key, plain = create_key(session, user, "ci", scopes=["read"], actor="cli")
    row = check_key(session, plain)   # raises Unauthenticated when unknown, revoked or expired
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dsgen_core.accounts.access import SCOPES, Unauthenticated
from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.registry.changes import audit
from dsgen_core.registry.schema import ApiKey, User, as_utc, utcnow

PREFIX = "dsg_"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, user: User, name: str, *, scopes: list[str], expires_days: float | None = None,
               actor: str | None = None) -> tuple[ApiKey, str]:
    """A new key of ``user``; returns the row and the clear key, which is not stored anywhere."""
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise DsgenError(f"scopes must be some of {', '.join(SCOPES)}, not {', '.join(bad) or 'none'}")
    secret = secrets.token_urlsafe(32)
    key = ApiKey(user_id=user.id, name=name, key_hash=_digest(secret), scopes=sorted(set(scopes)),
                 expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None)
    session.add(key)
    session.flush()
    audit(session, "apikey.create", project_id=None, entity_type="api_key", entity_ids=[key.id],
          detail={"user": user.email, "scopes": key.scopes, "expires_at": str(key.expires_at)}, actor=actor)
    return key, f"{PREFIX}{key.id}_{secret}"


def check_key(session: Session, plain: str, *, count: bool = True) -> ApiKey:
    """The live key ``plain`` is; counts the request (``total_requests``, ``last_used_at``) unless
    ``count`` is False (then :func:`count_use`, in a transaction of its own)."""
    ident, _, secret = plain.removeprefix(PREFIX).partition("_")
    if not plain.startswith(PREFIX) or not (ident.isascii() and ident.isdigit() and len(ident) <= 18) or not secret:
        raise Unauthenticated("not a dsgen API key")
    key = session.get(ApiKey, int(ident))
    if key is None or not hmac.compare_digest(key.key_hash, _digest(secret)):
        raise Unauthenticated("unknown API key")
    if key.revoked_at is not None:
        raise Unauthenticated("this API key was revoked")
    if key.expires_at is not None and as_utc(key.expires_at) <= utcnow():
        raise Unauthenticated("this API key has expired")
    if count:
        count_use(session, key.id)
    return key


def count_use(session: Session, key_id: int) -> None:
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(
        total_requests=ApiKey.total_requests + 1, last_used_at=utcnow()))


def revoke_key(session: Session, key_id: int, *, actor: str | None = None) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit(session, "apikey.revoke", project_id=None, entity_type="api_key", entity_ids=[key.id], actor=actor)
    return key


def list_keys(session: Session, user: User | None = None) -> list[ApiKey]:
    stmt = select(ApiKey).order_by(ApiKey.id)
    if user is not None:
        stmt = stmt.where(ApiKey.user_id == user.id)
    return list(session.scalars(stmt))
