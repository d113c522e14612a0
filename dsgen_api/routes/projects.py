"""``/api/projects``: the projects one can see, and a project's images by query with keyset pages."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dsgen_api.deps import (
    CommitFirst,
    ProjectCtx,
    principal,
    project_ctx,
    project_path,
    registry,
    requires,
    session,
    signed_url,
)
from dsgen_core.accounts.access import Principal, visible_projects
from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.query import SORTS, count_query, run_query, run_query_page
from dsgen_core.registry.display import Shape, display_shapes
from dsgen_core.registry.schema import Annotation, Asset
from dsgen_core.registry.tagging import get_metadata, get_tags, object_metadata, object_tags
from dsgen_core.storage import open_storage
from dsgen_core.storage.masks import MaskStore

router = APIRouter(tags=["projects"], route_class=CommitFirst)
MAX_PAGE = 500


class ProjectOut(BaseModel):
    name: str
    role: str
    description: str | None = None


class AssetOut(BaseModel):
    id: int
    file_name: str
    width: int | None
    height: int | None
    objects: int
    thumbnail_url: str  # signed: usable as <img src> without a header
    image_url: str
    shapes: list[Shape] | None = None


class AssetPage(BaseModel):
    items: list[AssetOut]
    next_after: int | None  # id order: pass as ``after`` for the next page; None: this was the last
    next_cursor: str | None  # any order: pass as ``cursor`` for the next page
    total: int | None


@dataclass(slots=True)
class ObjectOut(Shape):
    """An object as the image detail shows it: its shape, and what else it carries."""

    geometry_type: str
    attributes: dict[str, Any] | None
    tags: list[str]
    metadata: dict[str, Any]


class AssetDetail(AssetOut):
    objects_list: list[ObjectOut]
    tags: list[str]
    metadata: dict[str, Any]


@router.get("/api/projects", **requires("user"))
def projects(p: Principal = Depends(principal), s: Session = session) -> list[ProjectOut]:
    return [ProjectOut(name=proj.name, role=role, description=getattr(proj, "description", None))
            for proj, role in visible_projects(s, p)]


def _urls(ctx: ProjectCtx, request: Request, asset_id: int) -> dict[str, str]:
    return {"thumbnail_url": signed_url(ctx, request, project_path(ctx.project.name, "assets", asset_id, "thumbnail")),
            "image_url": signed_url(ctx, request, project_path(ctx.project.name, "assets", asset_id, "image"))}


def _masks(request: Request) -> MaskStore:
    return MaskStore(open_storage(registry(request).settings.storage_root))


@router.get("/api/projects/{project}/assets", response_model=AssetPage, **requires("viewer"))
def assets(request: Request, ctx: ProjectCtx = project_ctx("viewer"), q: str = Query("", max_length=4000),
           limit: int = Query(100, ge=1, le=MAX_PAGE), after: int | None = Query(None, ge=0),
           count: bool = Query(False), shapes: bool = Query(False),
           sort: str = Query("id", max_length=20, description=f"one of {', '.join(SORTS)}; -field: descending"),
           cursor: str | None = Query(None, max_length=1000)) -> Response:
    """Images matching the query ``q`` (the CLI's language), ``limit`` per page, sorted by ``sort``: pages
    follow ``next_cursor`` (or, in id order, ``next_after`` as ``after``); ``shapes``: with each image's
    objects in pixels, to draw over its thumbnail."""
    if after is not None and (sort != "id" or cursor is not None):
        raise DsgenError("after pages in id order; with sort or cursor, page with cursor")
    next_cursor = None
    if after is not None:
        ids = run_query(ctx.session, ctx.project, q, limit=limit + 1, after=after)
        more = len(ids) > limit
        ids = ids[:limit]
    else:
        found = run_query_page(ctx.session, ctx.project, q, sort=sort, limit=limit, cursor=cursor)
        ids, next_cursor, more = found.ids, found.next_cursor, found.next_cursor is not None
    rows = {a.id: a for a in ctx.session.execute(select(Asset.id, Asset.file_name, Asset.width, Asset.height)
                                                 .where(Asset.id.in_(ids)))} if ids else {}
    if shapes:
        drawn = display_shapes(ctx.session, ids, masks=_masks(request),
                               sizes={i: (r.width, r.height) for i, r in rows.items()})
        counts = {i: len(v) for i, v in drawn.items()}
    elif ids:
        counts = dict(ctx.session.execute(select(Annotation.asset_id, func.count()).where(
            Annotation.asset_id.in_(ids)).group_by(Annotation.asset_id)).all())
    else:
        counts = {}
    items = [{"id": i, "file_name": rows[i].file_name, "width": rows[i].width, "height": rows[i].height,
              "objects": counts.get(i, 0), **_urls(ctx, request, i),
              "shapes": drawn.get(i, []) if shapes else None} for i in ids if i in rows]
    page = {"items": items, "next_after": ids[-1] if more and ids and sort == "id" else None,
            "next_cursor": next_cursor,
            "total": count_query(ctx.session, ctx.project, q) if count else None}
    # Serialized once by orjson, not validated again through AssetPage: a gallery page holds thousands
    # of shapes, and that second pass cost more than the query (the schema above still documents it).
    return Response(orjson.dumps(page), media_type="application/json")


@router.get("/api/projects/{project}/assets/{asset_id}", **requires("viewer"))
def asset(asset_id: int, request: Request, ctx: ProjectCtx = project_ctx("viewer")) -> AssetDetail:
    a = ctx.session.get(Asset, asset_id)
    if a is None or a.project_id != ctx.project.id or a.deleted_at is not None:  # not found, not forbidden
        raise NotFound(f"no image {asset_id} in project {ctx.project.name!r}")
    drawn = display_shapes(ctx.session, [a.id], masks=_masks(request)).get(a.id, [])
    rows = {o.id: o for o in ctx.session.scalars(select(Annotation).where(Annotation.asset_id == a.id))}
    ids = list(rows)
    tags, meta = object_tags(ctx.session, ids), object_metadata(ctx.session, ids)
    return AssetDetail(id=a.id, file_name=a.file_name, width=a.width, height=a.height, objects=len(drawn),
                       tags=get_tags(ctx.session, a.id), metadata=get_metadata(ctx.session, a.id),
                       **_urls(ctx, request, a.id),
                       objects_list=[ObjectOut(**asdict(sh), geometry_type=rows[sh.id].geometry_type,
                                               attributes=rows[sh.id].attributes, tags=tags.get(sh.id, []),
                                               metadata=meta.get(sh.id, {})) for sh in drawn])
