"""Who may do what in a project: roles (viewer < editor < admin < owner), admins, and API key scopes.

A user's role comes from ``project_members``; an admin user is owner of every project. An API key
acts as its user, capped by its scopes: ``read`` reaches viewer, ``write`` editor, ``admin`` admin.

    role = project_role(session, user, project)          # "editor" or None
    require(role, "editor", project="p")                  # raises Forbidden below it
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.registry.schema import PROJECT_ROLES, Project, ProjectMember, User

RANK = {r: i for i, r in enumerate(PROJECT_ROLES)}
SCOPE_CAP = {"read": "viewer", "write": "editor", "admin": "admin"}
SCOPES = tuple(SCOPE_CAP)


class Unauthenticated(DsgenError):
    """No valid credentials: a missing, expired, forged or revoked token or key (HTTP 401)."""


class Forbidden(DsgenError):
    """Valid credentials without the role or scope the operation needs (HTTP 403)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, through a login token or one of their API keys (then ``scopes`` cap it)."""

    user_id: int
    email: str
    is_admin: bool
    api_key_id: int | None = None
    scopes: tuple[str, ...] | None = None  # None: a login, not capped

    @property
    def actor(self) -> str:
        return f"{self.email} (key {self.api_key_id})" if self.api_key_id else self.email


def project_role(session: Session, principal: Principal, project: Project) -> str | None:
    """The principal's role in ``project`` after its key's scopes; None: the project is not theirs to see."""
    if principal.is_admin:
        role: str | None = "owner"
    else:
        role = session.scalar(select(ProjectMember.role).where(ProjectMember.project_id == project.id,
                                                               ProjectMember.user_id == principal.user_id))
    if role is None or principal.scopes is None:
        return role
    cap = max((SCOPE_CAP[s] for s in principal.scopes if s in SCOPE_CAP), key=RANK.__getitem__, default=None)
    if cap is None:
        return None
    return role if RANK[role] <= RANK[cap] else cap


def require(role: str | None, needed: str, *, project: str) -> None:
    """Raise unless ``role`` reaches ``needed``. No role at all is "not found": a project one may not
    see is not told apart from one that does not exist."""
    if role is None:
        raise NotFound(f"project {project!r} does not exist")
    if RANK[role] < RANK[needed]:
        raise Forbidden(f"this needs the {needed} role in project {project!r}; you are {role}")


def visible_projects(session: Session, principal: Principal) -> list[tuple[Project, str]]:
    """The projects the principal can see, with their role in each."""
    projects = list(session.scalars(select(Project).where(Project.deleted_at.is_(None)).order_by(Project.name)))
    out = []
    for p in projects:
        role = project_role(session, principal, p)
        if role is not None:
            out.append((p, role))
    return out


def grant(session: Session, project: Project, user: User, role: str) -> None:
    """Give ``user`` ``role`` in ``project`` (replacing the one they had)."""
    if role not in RANK:
        raise DsgenError(f"role must be one of {', '.join(PROJECT_ROLES)}, not {role!r}")
    found = session.get(ProjectMember, (project.id, user.id))
    if found is None:
        session.add(ProjectMember(project_id=project.id, user_id=user.id, role=role))
    else:
        found.role = role
    session.flush()
