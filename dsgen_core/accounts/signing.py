"""Signed media URLs: an ``<img src>`` cannot send an Authorization header, so the API hands out
thumbnail and image URLs that carry their own short-lived proof of who asked.

The signature covers the path, the user and the expiry; expiries are rounded up to the hour so a
page reloaded within the hour gets the same URLs and the browser's cache answers. The server still
checks the user's role in the project when the URL is used: a removed member's URLs stop working.

    qs = sign_path(key, "/api/projects/p/assets/7/thumbnail", user_id=3)   # "u=3&exp=...&sig=..."
    user_id = verify_path(key, "/api/projects/p/assets/7/thumbnail", {"u": "3", "exp": ..., "sig": ...})
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from dsgen_core.accounts.access import Unauthenticated

VALID_S = 3600


def _mac(key: str, path: str, user_id: int, exp: int) -> str:
    msg = f"media|{path}|{user_id}|{exp}".encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()[:32]


def sign_path(key: str, path: str, user_id: int, *, now: float | None = None) -> str:
    """The query string that lets ``user_id``'s browser fetch ``path`` for one to two hours."""
    t = int(now if now is not None else time.time())
    exp = (t // VALID_S + 2) * VALID_S
    return f"u={user_id}&exp={exp}&sig={_mac(key, path, user_id, exp)}"


def verify_path(key: str, path: str, params: Mapping[str, str], *, now: float | None = None) -> int:
    """The user a signed URL was made for; :class:`Unauthenticated` if forged, altered or expired."""
    try:
        user_id, exp, sig = int(params["u"]), int(params["exp"]), str(params["sig"])
    except (KeyError, ValueError):
        raise Unauthenticated("a signed URL needs u, exp and sig") from None
    if not hmac.compare_digest(sig, _mac(key, path, user_id, exp)):
        raise Unauthenticated("the URL's signature does not match")
    if exp < (now if now is not None else time.time()):
        raise Unauthenticated("the signed URL has expired; reload the page")
    return user_id
