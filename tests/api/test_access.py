"""Every route declares who may call it, and gets exactly that (issue 13): anonymous callers, another
project's members and each role of the project, on both databases; ids do not cross projects."""

from __future__ import annotations

import re

from sqlalchemy import select

from api_world import World
from dsgen_api.deps import LEVELS, PROJECT_LEVELS
from dsgen_core.accounts.access import RANK
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Asset

ROLES = ("viewer", "editor", "padmin", "owner")  # alpha's members, in rank order
ROLE_OF = {"viewer": "viewer", "editor": "editor", "padmin": "admin", "owner": "owner"}


def _routes(world: World) -> list[tuple[str, str, str]]:
    """Every operation of the app, from its OpenAPI document (which lists every route it serves)."""
    out = []
    for path, ops in world.client.app.openapi()["paths"].items():
        for method, op in ops.items():
            level = op.get("x-dsgen-access")
            assert level in LEVELS, f"{method.upper()} {path} declares no access level"
            out.append((method.upper(), path, level))
    return out


BUILT_IN = {("GET", "/api/openapi.json"), ("HEAD", "/api/openapi.json"), ("GET", "/api/docs"),
            ("HEAD", "/api/docs"), ("GET", "/docs/oauth2-redirect"), ("HEAD", "/docs/oauth2-redirect")}


def _served(routes: list[object]) -> set[tuple[str, str]]:
    """Every (method, path) the app serves, walking into included routers."""
    out: set[tuple[str, str]] = set()
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            out |= _served(list(inner.routes))
        elif hasattr(r, "methods") and hasattr(r, "path"):
            # OpenAPI writes a converter's parameter without its type: /{path:path} is /{path}
            out |= {(m, re.sub(r"\{(\w+):\w+\}", r"{\1}", r.path)) for m in r.methods}
        else:
            raise AssertionError(f"a route dsgen cannot classify: {r!r}")  # a mount or websocket: declare it
    return out


def test_the_openapi_document_lists_every_route_the_app_serves(world: World) -> None:
    documented = {(m, p) for m, p, _lvl in _routes(world)}
    served = {(m, p) for m, p in _served(list(world.client.app.routes)) if m != "HEAD"}
    assert served - documented <= {(m, p) for m, p in BUILT_IN}
    assert documented <= served


def _asset(world: World, project: str) -> int:
    with world.registry.session() as s:
        return s.scalar(select(Asset.id).where(Asset.project_id == get_project(s, project).id).order_by(Asset.id))


def _call(world: World, method: str, path: str, who: str | None, asset: int) -> int:
    url = re.sub(r"\{asset_id\}", str(asset), path.replace("{project}", "alpha"))
    return world.client.request(method, url, headers=world.as_(who), json={}).status_code


def test_every_route_declares_its_level_and_anonymous_callers_get_401(world: World) -> None:
    asset = _asset(world, "alpha")
    routes = _routes(world)
    assert {lvl for _m, _p, lvl in routes} >= {"public", "user", "viewer"}
    for method, path, level in routes:
        status = _call(world, method, path, None, asset)
        if level == "public":
            assert status != 401, (method, path)
        else:
            assert status == 401, (method, path, status)


# A path naming something besides the project and an image ({name}) gets the placeholder as that name:
# once the role is checked, "no such thing" (404) is the right answer.
OTHER_PARAM = re.compile(r"\{(?!project\}|asset_id\})\w+\}")


def test_project_routes_answer_each_role_as_declared_and_others_not_at_all(world: World) -> None:
    asset = _asset(world, "alpha")
    for method, path, level in _routes(world):
        if level not in PROJECT_LEVELS:
            continue
        refused = (401, 403) if OTHER_PARAM.search(path) else (401, 403, 404)
        # beta's owner is nobody in alpha: alpha does not exist for them
        assert _call(world, method, path, "outsider", asset) == 404, (method, path)
        for who in ROLES:
            status = _call(world, method, path, who, asset)
            if RANK[ROLE_OF[who]] >= RANK[level]:
                assert status not in refused, (method, path, who, status)
            else:
                assert status == 403, (method, path, who, status)
        assert _call(world, method, path, "root", asset) not in refused  # an admin user owns every project


def test_ids_do_not_cross_projects(world: World) -> None:
    alpha_asset, beta_asset = _asset(world, "alpha"), _asset(world, "beta")
    assert world.get(f"/api/projects/alpha/assets/{alpha_asset}", "viewer").status_code == 200
    # alpha's viewer asking for beta's image through alpha, and beta's owner asking for alpha's through beta
    assert world.get(f"/api/projects/alpha/assets/{beta_asset}", "viewer").status_code == 404
    assert world.get(f"/api/projects/beta/assets/{alpha_asset}", "outsider").status_code == 404
    assert world.get(f"/api/projects/beta/assets/{beta_asset}", "viewer").status_code == 404
    nowhere = world.get("/api/projects/nowhere/assets", "viewer")
    assert nowhere.status_code == 404 and nowhere.json()["detail"] == "project 'nowhere' does not exist"
    assert world.get("/api/projects/beta/assets", "viewer").json()["detail"] == "project 'beta' does not exist"
