"""``dsgen users|keys|members|usage``: accounts, API keys, project roles and usage, from the command line.

There is no default password: the first admin is ``dsgen users add EMAIL --admin``, with the
password read from the terminal (or ``--password-stdin`` for scripts).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from dsgen_core.cli.common import cli_actor, emit, json_option, open_registry, project_option


@click.group()
def users() -> None:
    """Accounts of the REST API and web app."""


@users.command("add")
@click.argument("email")
@click.option("--name", default="", help="Display name (default: the email).")
@click.option("--admin", is_flag=True, help="An administrator: every project, the accounts and keys.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (scripts).")
@json_option
def users_add(email: str, name: str, admin: bool, password_stdin: bool, as_json: bool) -> None:
    """Add a user; the password is asked for (twice) unless --password-stdin."""
    from dsgen_core.accounts.users import add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    reg = open_registry()
    with reg.session() as s:
        u = add_user(s, email, name, password=password, admin=admin, actor=cli_actor())
        out = {"id": u.id, "email": u.email, "admin": u.is_admin}
    emit(out, as_json, f"user {out['email']} (id {out['id']}){' admin' if admin else ''} added")


@users.command("list")
@json_option
def users_list(as_json: bool) -> None:
    """Every user, with whether they are an administrator."""
    from dsgen_core.accounts.users import list_users

    reg = open_registry()
    with reg.session() as s:
        rows = [{"id": u.id, "email": u.email, "name": u.name, "admin": bool(u.is_admin),
                 "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None} for u in list_users(s)]
    emit(rows, as_json, "\n".join(f"{r['id']:>4}  {r['email']}{'  (admin)' if r['admin'] else ''}" for r in rows)
         or "no users (dsgen users add EMAIL --admin)")


@click.group()
def keys() -> None:
    """API keys: sent as `Authorization: Bearer dsg_...` or `X-API-Key: dsg_...`."""


@keys.command("create")
@click.argument("name")
@click.option("--user", "email", required=True, help="The key acts as this user.")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(["read", "write", "admin"]), default=("read",),
              show_default=True, help="What the key may do (repeat for several).")
@click.option("--expires-days", type=float, help="The key stops working after this many days.")
@json_option
def keys_create(name: str, email: str, scopes: tuple[str, ...], expires_days: float | None, as_json: bool) -> None:
    """Create a key; it is printed once and only its hash is kept."""
    from dsgen_core.accounts.keys import create_key
    from dsgen_core.accounts.users import get_user

    reg = open_registry()
    with reg.session() as s:
        key, plain = create_key(s, get_user(s, email), name, scopes=list(scopes), expires_days=expires_days,
                                actor=cli_actor())
        scopes_s = ",".join(key.scopes)
        out = {"id": key.id, "name": key.name, "scopes": key.scopes, "key": plain,
               "expires_at": key.expires_at.isoformat() if key.expires_at else None}
    emit(out, as_json, f"key {out['id']} ({scopes_s}): {plain}\n"
                       "it is shown only now: store it; dsgen keeps only its hash")


@keys.command("list")
@click.option("--user", "email", help="Only this user's keys.")
@json_option
def keys_list(email: str | None, as_json: bool) -> None:
    """Keys with their scopes, use and state (never the keys themselves)."""
    from dsgen_core.accounts.keys import list_keys
    from dsgen_core.accounts.users import get_user

    reg = open_registry()
    with reg.session() as s:
        rows: list[dict[str, Any]] = [{"id": k.id, "name": k.name, "user_id": k.user_id, "scopes": k.scopes,
                 "total_requests": k.total_requests,
                 "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                 "revoked": k.revoked_at is not None} for k in list_keys(s, get_user(s, email) if email else None)]
    emit(rows, as_json, "\n".join(f"{r['id']:>4}  {r['name']}  {','.join(r['scopes'])}  "
                                  f"{r['total_requests']} requests{'  REVOKED' if r['revoked'] else ''}"
                                  for r in rows) or "no keys")


@keys.command("revoke")
@click.argument("key_id", type=int)
@json_option
def keys_revoke(key_id: int, as_json: bool) -> None:
    """Revoke a key: it is refused from the next request on."""
    from dsgen_core.accounts.keys import revoke_key

    reg = open_registry()
    with reg.session() as s:
        k = revoke_key(s, key_id, actor=cli_actor())
        out = {"id": k.id, "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None}
    emit(out, as_json, f"key {key_id} revoked")


@click.group()
def members() -> None:
    """Project roles: viewer reads, editor writes, admin manages, owner owns."""


@members.command("grant")
@click.argument("email")
@click.argument("role", type=click.Choice(["viewer", "editor", "admin", "owner"]))
@project_option
@json_option
def members_grant(email: str, role: str, project: str, as_json: bool) -> None:
    """Give a user a role in a project (replacing the one they had)."""
    from dsgen_core.accounts.access import grant
    from dsgen_core.accounts.users import get_user
    from dsgen_core.registry.changes import audit
    from dsgen_core.registry.projects import get_project

    reg = open_registry()
    with reg.session() as s:
        p, u = get_project(s, project), get_user(s, email)
        grant(s, p, u, role)
        audit(s, "member.grant", project_id=p.id, entity_type="user", entity_ids=[u.id], detail={"role": role},
              actor=cli_actor())
    emit({"project": project, "email": email, "role": role}, as_json, f"{email} is {role} of {project}")


@members.command("list")
@project_option
@json_option
def members_list(project: str, as_json: bool) -> None:
    """The project's members and their roles."""
    from sqlalchemy import select

    from dsgen_core.registry.projects import get_project
    from dsgen_core.registry.schema import ProjectMember, User

    reg = open_registry()
    with reg.session() as s:
        p = get_project(s, project)
        rows = [{"email": e, "role": r} for e, r in s.execute(
            select(User.email, ProjectMember.role).join(User, User.id == ProjectMember.user_id)
            .where(ProjectMember.project_id == p.id).order_by(User.email)).all()]
    emit(rows, as_json, "\n".join(f"{r['email']}  {r['role']}" for r in rows) or "no members")


def _since(value: str | None) -> datetime | None:
    from dsgen_core.accounts.usage import month_start
    from dsgen_core.registry.schema import utcnow

    if value is None:
        return month_start()
    if value == "all":
        return None
    if value[:-1].isdigit() and value[-1:] in ("d", "h"):
        return utcnow() - timedelta(**{"days" if value[-1] == "d" else "hours": int(value[:-1])})
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO time (2026-12-01T10:00:00Z), Nd, Nh or all",
                                 param_hint="--since") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@click.command()
@click.option("--user", "email", help="Only this user (default: every user).")
@click.option("--since", metavar="WHEN", help="An ISO time, Nd or Nh ago, or all (default: this month, UTC).")
@json_option
def usage(email: str | None, since: str | None, as_json: bool) -> None:
    """What each user used: API requests (per key), training time, and the storage their projects hold,
    against their plan's limits."""
    from dsgen_core.accounts.plans import GB, plan_of
    from dsgen_core.accounts.usage import usage_summary
    from dsgen_core.accounts.users import get_user, list_users

    start = _since(since)
    reg = open_registry()
    rows: list[dict[str, Any]] = []
    with reg.session() as s:
        for u in [get_user(s, email)] if email else list_users(s):
            sm, plan = usage_summary(s, u, since=start), plan_of(u)
            rows.append({
                "user": u.email, "plan": plan.name, "since": start.isoformat() if start else None,
                "api_requests": int(sm.total("api_request")), "training_hours": round(sm.total("training") / 3600, 3),
                "stored_gb": round(sm.stored_bytes / GB, 3),
                "limits": {"requests_per_minute": plan.requests_per_minute,
                           "key_requests_per_minute": plan.key_requests_per_minute,
                           "storage_gb": plan.storage_gb, "training_hours_a_month": plan.training_hours},
                "by_key": [{"api_key_id": line.api_key_id, "name": line.api_key_name, "requests": int(line.amount)}
                           for line in sm.lines if line.resource_type == "api_request"]})

    def limit(v: float | None) -> str:
        return "no limit" if v is None else f"{v:g}"

    human = "\n".join(
        f"{r['user']} ({r['plan']}): {r['api_requests']} API requests, {r['training_hours']:g} h training "
        f"(of {limit(r['limits']['training_hours_a_month'])}), {r['stored_gb']:g} GB stored "
        f"(of {limit(r['limits']['storage_gb'])})"
        + "".join(f"\n  key {k['api_key_id']} {k['name']}: {k['requests']} requests" if k["api_key_id"] else
                  f"\n  logins: {k['requests']} requests" for k in r["by_key"])
        for r in rows) or "no users"
    emit(rows, as_json, human)
