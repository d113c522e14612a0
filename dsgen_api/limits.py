"""Rate limits and usage counting for every request, run by :func:`dsgen_api.deps.principal` once
it knows who calls (and, for routes without credentials, per client address).

A caller's request counts in their user's bucket and, through a key, in the key's (limits from the
plan, see :mod:`dsgen_core.accounts.plans`); past a limit it is answered 429 with ``Retry-After``
before the route runs, so a refused request writes nothing but its count. An admitted request is
tallied in memory for the usage records (:class:`~dsgen_core.accounts.usage.RequestTally`) and a
key's use is counted on the key, in one transaction of its own with the database's counters.

Behind a reverse proxy, run uvicorn with ``--proxy-headers --forwarded-allow-ips=<proxy>``: the
client address is then the caller's, not the proxy's, and callers do not share one bucket.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy.orm import Session

from dsgen_core.accounts import fast_state
from dsgen_core.accounts.access import Principal
from dsgen_core.accounts.keys import count_use
from dsgen_core.accounts.plans import anonymous_per_window, plan_of, window_s
from dsgen_core.accounts.ratelimit import Hit, RateLimited, count, forget_old
from dsgen_core.accounts.tokens import ACCESS_SECONDS
from dsgen_core.accounts.usage import RequestTally
from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import User

log = logging.getLogger("dsgen.api.limits")


def install(app: FastAPI) -> RequestTally:
    """Give the app its request tally (written when due and when the app stops) and copy the
    database's revocations into Redis when one is configured."""
    tally = RequestTally()
    app.state.usage_tally = tally
    reg: Registry = app.state.registry
    if fast_state.redis_client() is not None:
        with reg.session() as s:
            fast_state.sync_revocations(s, ACCESS_SECONDS)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            yield state
        flush(reg, tally)

    app.router.lifespan_context = lifespan
    return tally


def flush(reg: Registry, tally: RequestTally) -> None:
    with reg.session() as s:
        tally.flush(s)
        if fast_state.redis_client() is None:
            forget_old(s, window_s=window_s())


def _count(request: Request, hits: list[Hit], after: Any = None, session: Session | None = None) -> None:
    """Count ``hits`` in a transaction committed before the route runs, even when the request is refused
    (its count stands, as it does in Redis); ``after(session)`` runs in it for an admitted request.

    ``session``: the request's own, which has written nothing yet: its transaction is committed here
    and the route's begins after. A second connection per request would deadlock the pool under load:
    every connection held by a request waiting for one more."""
    reg: Registry = request.app.state.registry
    tally: RequestTally = request.app.state.usage_tally
    refused: RateLimited | None = None
    with nullcontext(session) if session is not None else reg.session() as own:
        try:
            count(own, hits, window_s=window_s())
        except RateLimited as exc:
            refused = exc
        else:
            if after is not None:
                after(own)
            if tally.due():
                tally.flush(own)
                if fast_state.redis_client() is None:
                    forget_old(own, window_s=window_s())
        if session is not None:
            session.commit()
    if refused is not None:
        raise refused


def admit(request: Request, session: Session, p: Principal) -> None:
    """Count the caller's request against their plan's rates (429 past them) and tally it as usage."""
    if getattr(request.state, "admitted", False):  # principal() ran twice for one request
        return
    user = session.get(User, p.user_id)  # already loaded by the authentication: no query
    if user is None:
        return
    plan = plan_of(user)
    hits = [Hit(f"u:{p.user_id}", plan.requests_per_minute, f"user {p.email} ({plan.name} plan)")]
    if p.api_key_id is not None:
        hits.append(Hit(f"k:{p.api_key_id}", plan.key_requests_per_minute, f"API key {p.api_key_id}"))
    key_id = p.api_key_id

    def counted(own: Session) -> None:
        if key_id is not None:
            count_use(own, key_id)

    _count(request, hits, counted, session)
    request.app.state.usage_tally.add(p.user_id, p.api_key_id)
    request.state.admitted = True


def limit_anonymous(request: Request) -> None:
    """Routes without credentials (log in, refresh, health) count per client address: password
    guessing gets a few dozen tries a minute."""
    ip = request.client.host if request.client else "unknown"
    _count(request, [Hit(f"ip:{ip}", anonymous_per_window(), f"address {ip}")])
