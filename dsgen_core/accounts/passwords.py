"""Password hashing with Argon2id (argon2-cffi): slow to guess, salted, and upgradable in place.

    stored = hash_password("s3cret")
    verify_password(stored, "s3cret")  # True
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
MIN_LENGTH = 10


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from; False for a user without a password."""
    if not stored:
        return False
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with weaker parameters than today's: rehash it at the next login."""
    return _HASHER.check_needs_rehash(stored)
