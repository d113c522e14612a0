"""Login tokens: a short-lived signed access token (JWT, HS256) and a refresh token that rotates.

The access token lives ``ACCESS_SECONDS``; its ``jti`` can be revoked before that (logout). A
refresh token is random, stored hashed, and used once: using it gives a new pair whose refresh
token is of the same family. Using one twice means it was stolen: the whole family is revoked.
The signing key is ``DSGEN_SECRET_KEY``, else a random key kept in ``$DSGEN_HOME/secret.key`` (0600).

    pair = issue_pair(session, user)
    principal = read_access(session, pair.access_token)
    pair = rotate(session, pair.refresh_token)   # RefreshReused: revoke_family() in its own transaction
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from dsgen_core.accounts import fast_state
from dsgen_core.accounts.access import Principal, Unauthenticated
from dsgen_core.errors import DsgenError
from dsgen_core.registry.schema import RefreshToken, RevokedAccessToken, User, as_utc, utcnow

ACCESS_SECONDS = 15 * 60
REFRESH_DAYS = 14
_ALGORITHM = "HS256"


class RefreshReused(Unauthenticated):
    """A refresh token used a second time: its family must be revoked, in a transaction that commits
    although the request fails (:func:`revoke_family`)."""

    def __init__(self, family: str) -> None:
        super().__init__("the refresh token was used before: every token of this login is revoked")
        self.family = family


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int = ACCESS_SECONDS
    token_type: str = "bearer"


MIN_KEY_CHARS = 32


def signing_key(home: Path) -> str:
    configured = os.environ.get("DSGEN_SECRET_KEY")
    if configured is not None:
        if len(configured) < MIN_KEY_CHARS:
            raise DsgenError(f"DSGEN_SECRET_KEY must have at least {MIN_KEY_CHARS} characters")
        return configured
    path = home / "secret.key"
    if not path.is_file():
        # Written whole, then linked into place: two servers starting at once agree on one key.
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".secret.key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if len(key) < MIN_KEY_CHARS:
        raise DsgenError(f"{path} holds no usable signing key: remove it and start again")
    return key


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _access(user: User, key: str, family: str) -> str:
    now = datetime.now(UTC)
    return jwt.encode({"sub": str(user.id), "jti": secrets.token_hex(16), "fam": family, "typ": "access",
                       "iat": now, "exp": now + timedelta(seconds=ACCESS_SECONDS)}, key, algorithm=_ALGORITHM)


def issue_pair(session: Session, user: User, key: str, *, family: str | None = None) -> TokenPair:
    """A new login (or the next pair of ``family``): the access token names its family, so revoking
    the family (logout, a reused refresh token) ends its access tokens too."""
    family = family or secrets.token_hex(16)
    refresh = secrets.token_urlsafe(32)
    session.add(RefreshToken(user_id=user.id, family=family, token_hash=_hash(refresh),
                             expires_at=utcnow() + timedelta(days=REFRESH_DAYS)))
    session.flush()
    return TokenPair(_access(user, key, family), refresh)


def read_access(session: Session, token: str, key: str) -> Principal:
    try:
        claims = jwt.decode(token, key, algorithms=[_ALGORITHM], options={"require": ["exp", "sub", "jti"]})
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the access token has expired: refresh it") from None
    except jwt.InvalidTokenError:
        raise Unauthenticated("not a valid access token") from None
    if claims.get("typ") != "access" or not claims.get("fam"):
        raise Unauthenticated("not an access token")
    # Redis, when configured: no database lookups
    known = fast_state.revoked(session, claims["jti"], claims["fam"], family_ttl_s=ACCESS_SECONDS)
    if known or (known is None and (session.get(RevokedAccessToken, claims["jti"]) is not None or session.scalar(
            select(RefreshToken.id).where(RefreshToken.family == claims["fam"], RefreshToken.revoked_at.is_not(None))
            .limit(1)) is not None)):
        raise Unauthenticated("the access token was revoked (logged out)")
    user = session.get(User, int(claims["sub"]))
    if user is None or user.deleted_at is not None:
        raise Unauthenticated("the token's user no longer exists")
    return Principal(user.id, user.email, bool(user.is_admin))


def rotate(session: Session, refresh: str, key: str) -> TokenPair:
    row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == _hash(refresh)))
    if row is None:
        raise Unauthenticated("unknown refresh token")
    if row.revoked_at is not None:
        raise Unauthenticated("the refresh token was revoked")
    if row.used_at is not None:  # a second use: someone else has it; nothing of its family is good any more
        raise RefreshReused(row.family)
    if as_utc(row.expires_at) <= utcnow():
        raise Unauthenticated("the refresh token has expired: log in again")
    user = session.get(User, row.user_id)
    if user is None or user.deleted_at is not None:
        raise Unauthenticated("the token's user no longer exists")
    # Taken by one request only: two at once with the same token is the reuse it must catch.
    taken = session.execute(update(RefreshToken).where(
        RefreshToken.id == row.id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
        .values(used_at=utcnow()))
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise RefreshReused(row.family)
    return issue_pair(session, user, key, family=row.family)


def logout(session: Session, access_token: str | None, refresh: str | None, key: str) -> None:
    """End a login: by its access token (even expired: the signature is enough) and/or its refresh
    token. The family is revoked, so every access and refresh token of that login stops working."""
    families: set[str] = set()
    if access_token:
        try:
            claims = jwt.decode(access_token, key, algorithms=[_ALGORITHM], options={"verify_exp": False})
        except jwt.InvalidTokenError:
            raise Unauthenticated("not a valid access token") from None
        if claims.get("fam"):
            families.add(str(claims["fam"]))
        if claims.get("jti") and session.get(RevokedAccessToken, claims["jti"]) is None:
            session.add(RevokedAccessToken(jti=claims["jti"], expires_at=datetime.fromtimestamp(claims["exp"], UTC)))
            fast_state.mark_revoked(jti=claims["jti"], expires_at=datetime.fromtimestamp(claims["exp"], UTC))
    if refresh:
        row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == _hash(refresh)))
        if row is None:
            raise Unauthenticated("unknown refresh token")
        families.add(row.family)
    if not families:
        raise DsgenError("log out with the login's access token (Authorization: Bearer) or its refresh token")
    for family in families:
        revoke_family(session, family)
    session.execute(delete(RevokedAccessToken).where(RevokedAccessToken.expires_at < utcnow()))
    session.flush()


def revoke_family(session: Session, family: str) -> None:
    # Mirrored as long as an access token of the family can live: after that none is left to refuse.
    fast_state.mark_revoked(family=family, family_ttl_s=ACCESS_SECONDS)
    session.execute(update(RefreshToken).where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))
