"""``/api/auth``: log in (a token pair), refresh (rotation), log out (revocation); ``/api/me``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from dsgen_api.deps import CommitFirst, principal, registry, requires, session
from dsgen_core.accounts.access import Principal, visible_projects
from dsgen_core.accounts.keys import PREFIX
from dsgen_core.accounts.tokens import RefreshReused, TokenPair, issue_pair, logout, revoke_family, rotate
from dsgen_core.accounts.users import authenticate
from dsgen_core.errors import DsgenError

router = APIRouter(tags=["auth"], route_class=CommitFirst)


class Login(BaseModel):
    email: str = Field(max_length=255)
    password: str = Field(max_length=1024)


class Refresh(BaseModel):
    refresh_token: str = Field(max_length=512)


class Logout(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=512)


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class Me(BaseModel):
    id: int
    email: str
    is_admin: bool
    api_key_id: int | None
    scopes: list[str] | None
    projects: dict[str, str]  # project -> role


def _tokens(pair: TokenPair) -> Tokens:
    return Tokens(access_token=pair.access_token, refresh_token=pair.refresh_token, token_type=pair.token_type,
                  expires_in=pair.expires_in)


@router.post("/api/auth/login", **requires("public"))
def login(body: Login, request: Request, s: Session = session) -> Tokens:
    user = authenticate(s, body.email, body.password)
    return _tokens(issue_pair(s, user, request.app.state.signing_key))


@router.post("/api/auth/refresh", **requires("public"))
def refresh(body: Refresh, request: Request, s: Session = session) -> Tokens:
    try:
        return _tokens(rotate(s, body.refresh_token, request.app.state.signing_key))
    except RefreshReused as exc:
        s.rollback()  # this request's transaction ends first: it may hold the database's write lock
        with registry(request).session() as own:  # kept although this request fails
            revoke_family(own, exc.family)
        raise


@router.post("/api/auth/logout", status_code=204, **requires("public"))
def log_out(body: Logout, request: Request, s: Session = session) -> None:
    """End a login by its access token (``Authorization: Bearer``, even expired) and/or its refresh token."""
    token = request.headers.get("authorization", "").partition(" ")[2].strip() or None
    if token and token.startswith(PREFIX):
        raise DsgenError("an API key is not a login: revoke it with dsgen keys revoke")
    logout(s, token, body.refresh_token, request.app.state.signing_key)


@router.get("/api/me", **requires("user"))
def me(p: Principal = Depends(principal), s: Session = session) -> Me:
    return Me(id=p.user_id, email=p.email, is_admin=p.is_admin, api_key_id=p.api_key_id,
              scopes=list(p.scopes) if p.scopes is not None else None,
              projects={proj.name: role for proj, role in visible_projects(s, p)})
