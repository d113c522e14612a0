"""Users: made from the CLI (there is no default password), found by email, checked at login.

    user = add_user(session, "ana@example.com", "Ana", password="long enough pw", admin=True, actor="cli")
    user = authenticate(session, "ana@example.com", "long enough pw")
"""

from __future__ import annotations

import secrets
from functools import cache

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dsgen_core.accounts.access import Unauthenticated
from dsgen_core.accounts.passwords import MIN_LENGTH, hash_password, needs_rehash, verify_password
from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.registry.changes import audit
from dsgen_core.registry.schema import User, utcnow


def add_user(session: Session, email: str, name: str, *, password: str, admin: bool = False,
             actor: str | None = None) -> User:
    email = email.strip().lower()
    if "@" not in email or len(email) > 255:
        raise DsgenError(f"{email!r} is not an email address")
    if len(password) < MIN_LENGTH:
        raise DsgenError(f"the password must have at least {MIN_LENGTH} characters")
    if session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise DsgenError(f"a user {email!r} exists already")
    user = User(email=email, name=name or email, hashed_password=hash_password(password), is_admin=admin)
    session.add(user)
    session.flush()
    audit(session, "user.add", project_id=None, entity_type="user", entity_ids=[user.id],
          detail={"email": email, "admin": admin}, actor=actor)
    return user


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def get_user(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower(), User.deleted_at.is_(None)))
    if user is None:
        raise NotFound(f"no user {email!r} (see dsgen users list)")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).where(User.deleted_at.is_(None)).order_by(User.id)))


def authenticate(session: Session, email: str, password: str) -> User:
    """The user whose password this is; one message for a wrong email and a wrong password alike."""
    user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower(), User.deleted_at.is_(None)))
    stored = user.hashed_password if user is not None and user.hashed_password else _dummy_hash()
    # A hash is checked either way: an unknown email takes as long as a wrong password.
    if not verify_password(stored, password) or user is None or not user.hashed_password:
        raise Unauthenticated("wrong email or password")
    if user.hashed_password and needs_rehash(user.hashed_password):
        user.hashed_password = hash_password(password)
    user.last_login_at = utcnow()
    return user
