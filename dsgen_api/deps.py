"""Who calls, and what they may do: every route declares it with :func:`requires`.

Credentials: ``Authorization: Bearer <access token>`` (a login) or ``Authorization: Bearer dsg_...``
/ ``X-API-Key: dsg_...`` (an API key, capped by its scopes). Levels: ``public`` (anyone),
``user`` (any valid credentials), ``site-admin`` (an admin user, not through a key that lacks the
admin scope), and the project roles ``viewer`` < ``editor`` < ``admin`` < ``owner`` for routes
under ``/api/projects/{project}``. A project the caller has no role in answers 404, as one that
does not exist: ids are not a way to learn what others have.

    @router.get("/projects/{project}/assets", **requires("viewer"))
    def assets(ctx: ProjectCtx = Depends(project_ctx)) -> ...
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from dsgen_api.limits import admit, limit_anonymous
from dsgen_core.accounts.access import Forbidden, Principal, Unauthenticated, project_role, require
from dsgen_core.accounts.keys import PREFIX, check_key
from dsgen_core.accounts.signing import sign_path, verify_path
from dsgen_core.accounts.tokens import read_access
from dsgen_core.errors import NotFound
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Project, User

LEVELS = ("public", "user", "site-admin", "viewer", "editor", "admin", "owner")
PROJECT_LEVELS = ("viewer", "editor", "admin", "owner")


def registry(request: Request) -> Registry:
    reg: Registry = request.app.state.registry
    return reg


def _session(request: Request) -> Iterator[Session]:
    with registry(request).steps() as s:
        yield s


# One transaction per request, committed when the route function returns, before the response is
# sent: a client told "done" finds it done, and no lock is held while a response streams.
session: Any = Depends(_session, scope="function")


def _credential(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if auth and scheme.lower() != "bearer":
        raise Unauthenticated("use Authorization: Bearer <token or API key>")
    return value.strip() or None


def principal(request: Request, s: Session = session) -> Principal:
    cred = _credential(request)
    if not cred:
        raise Unauthenticated("log in (POST /api/auth/login) or send an API key")
    if cred.startswith(PREFIX):
        key = check_key(s, cred, count=False)
        user = s.get(User, key.user_id)
        if user is None or user.deleted_at is not None:
            raise Unauthenticated("the key's user no longer exists")
        p = Principal(user.id, user.email, bool(user.is_admin), key.id, tuple(key.scopes or ()))
    else:
        p = read_access(s, cred, request.app.state.signing_key)
    request.state.principal = p
    admit(request, s, p)  # rate limits (429), the key's count, usage
    return p


@dataclass(frozen=True)
class ProjectCtx:
    project: Project
    role: str
    principal: Principal
    session: Session


def _in_project(level: str, project: str, p: Principal, s: Session) -> ProjectCtx:
    try:
        found: Project | None = get_project(s, project)
    except NotFound:  # answered as a project one may not see: the same 404
        found = None
    role = project_role(s, p, found) if found is not None else None
    require(role, level, project=project)
    assert found is not None and role is not None
    return ProjectCtx(found, role, p, s)


def _project_check(level: str) -> Any:
    def check(project: str, p: Principal = Depends(principal), s: Session = session) -> ProjectCtx:
        return _in_project(level, project, p, s)

    check.__name__ = f"needs_{level}"
    return check


def _signed_viewer(project: str, request: Request, s: Session = session) -> ProjectCtx:
    """Viewer by credentials, or by a URL signed for a user who is (still) a viewer: ``<img src>``."""
    if "sig" not in request.query_params:
        return _in_project("viewer", project, principal(request, s), s)
    uid = verify_path(request.app.state.signing_key, request.scope["path"], request.query_params)  # decoded
    user = s.get(User, uid)
    if user is None or user.deleted_at is not None:
        raise Unauthenticated("the signed URL's user no longer exists")
    return _in_project("viewer", project, Principal(user.id, user.email, bool(user.is_admin)), s)


def project_path(project: str, *parts: str | int) -> str:
    """``/api/projects/<project>/<parts>``, each part percent-encoded."""
    return "/".join(["/api/projects", *(quote(str(p), safe="") for p in (project, *parts))])


def signed_url(ctx: ProjectCtx, request: Request, path: str) -> str:
    """``path`` (percent-encoded, as :func:`project_path` makes it) with a signature for the caller, for
    ``<img src>`` (see :mod:`dsgen_core.accounts.signing`). The signature covers the decoded path: the
    one the server sees when the URL comes back."""
    return f"{path}?{sign_path(request.app.state.signing_key, unquote(path), ctx.principal.user_id)}"


@dataclass(frozen=True)
class Access:
    """A checked caller and project, held without a database session (see :func:`check_access`)."""

    project_id: int
    project: str
    owner_id: int | None
    role: str
    principal: Principal


def check_access(request: Request, project: str, level: str) -> Access:
    """The check ``requires(level)`` makes, in a session of its own that is closed when it returns: for a
    route that then waits on its client (a streamed upload) without holding a connection."""
    with registry(request).steps() as s:
        ctx = _in_project(level, project, principal(request, s), s)
        return Access(ctx.project.id, ctx.project.name, ctx.project.owner_id, ctx.role, ctx.principal)


def _site_admin(p: Principal = Depends(principal)) -> Principal:
    if not p.is_admin or (p.scopes is not None and "admin" not in p.scopes):
        raise Forbidden("this needs an administrator")
    return p


_CHECKS: dict[str, Any] = {"user": principal, "site-admin": _site_admin,
                           **{lvl: _project_check(lvl) for lvl in PROJECT_LEVELS}}


def requires(level: str, *, signed: bool = False, in_route: bool = False) -> dict[str, Any]:
    """The route keywords that declare and enforce ``level``; ``signed``: a viewer route that also
    takes a signed URL in place of credentials (media for ``<img src>``); ``in_route``: declared here,
    enforced by the route itself with :func:`check_access` (the access test holds it to the declaration)."""
    if level not in LEVELS or (signed and level != "viewer") or (in_route and level not in PROJECT_LEVELS):
        raise ValueError(f"unknown access level {level!r}")
    if in_route:
        deps = []
    elif level == "public":
        deps = [Depends(limit_anonymous)]
    else:
        deps = [Depends(_signed_viewer if signed else _CHECKS[level])]
    return {"dependencies": deps, "openapi_extra": {"x-dsgen-access": level, **({"x-dsgen-signed": True} if signed else {})}}


def project_ctx(level: str, *, signed: bool = False) -> Any:
    """The dependency that gives a route its checked project (the same check ``requires`` declares)."""
    return Depends(_signed_viewer if signed else _CHECKS[level])


class CommitFirst(APIRoute):
    """Routes whose request transaction commits in the route's own worker thread, as soon as it returns.

    FastAPI validates a sync route's response in another worker thread and only then ends its
    dependencies. Committing there would hold SQLite's one write lock across that wait; under load,
    every worker can be blocked waiting for the lock while the holder waits for a worker, until the
    30 s busy timeout breaks the tie. Committing here releases the lock before any further wait.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            inner = endpoint

            @functools.wraps(inner)
            def endpoint(*args: Any, **kw: Any) -> Any:
                result = inner(*args, **kw)
                for value in kw.values():
                    s = value.session if isinstance(value, ProjectCtx) else value
                    if isinstance(s, Session) and s.in_transaction():
                        s.commit()
                return result

        super().__init__(path, endpoint, **kwargs)
