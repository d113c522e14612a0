"""``/api/projects``: the projects one can see, and a project's images by query with keyset pages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dsgen_api.deps import ProjectCtx, principal, project_ctx, requires, session
from dsgen_core.accounts.access import Principal, visible_projects
from dsgen_core.errors import NotFound
from dsgen_core.query import count_query, run_query
from dsgen_core.registry.schema import Annotation, Asset, LabelClass
from dsgen_core.registry.tagging import get_metadata, get_tags

router = APIRouter(tags=["projects"])
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


class AssetPage(BaseModel):
    items: list[AssetOut]
    next_after: int | None  # pass as ``after`` for the next page; None: this was the last
    total: int | None


class ObjectOut(BaseModel):
    id: int
    category: str | None
    geometry_type: str
    bbox: list[float] | None
    source: str
    confidence: float | None
    attributes: dict[str, Any] | None


class AssetDetail(AssetOut):
    objects_list: list[ObjectOut]
    tags: list[str]
    metadata: dict[str, Any]


@router.get("/api/projects", **requires("user"))
def projects(p: Principal = Depends(principal), s: Session = session) -> list[ProjectOut]:
    return [ProjectOut(name=proj.name, role=role, description=getattr(proj, "description", None))
            for proj, role in visible_projects(s, p)]


@router.get("/api/projects/{project}/assets", **requires("viewer"))
def assets(ctx: ProjectCtx = project_ctx("viewer"), q: str = Query("", max_length=4000),
           limit: int = Query(100, ge=1, le=MAX_PAGE), after: int | None = Query(None, ge=0),
           count: bool = Query(False)) -> AssetPage:
    """Images matching the query ``q`` (the CLI's language), ``limit`` per page, in id order after ``after``."""
    ids = run_query(ctx.session, ctx.project, q, limit=limit + 1, after=after)
    more = len(ids) > limit
    ids = ids[:limit]
    rows = {a.id: a for a in ctx.session.execute(select(Asset.id, Asset.file_name, Asset.width, Asset.height)
                                                 .where(Asset.id.in_(ids)))} if ids else {}
    counts: dict[int, int] = {}
    if ids:
        counts = dict(ctx.session.execute(select(Annotation.asset_id, func.count()).where(
            Annotation.asset_id.in_(ids)).group_by(Annotation.asset_id)).all())
    items = [AssetOut(id=i, file_name=rows[i].file_name, width=rows[i].width, height=rows[i].height,
                      objects=counts.get(i, 0)) for i in ids if i in rows]
    return AssetPage(items=items, next_after=ids[-1] if more and ids else None,
                     total=count_query(ctx.session, ctx.project, q) if count else None)


@router.get("/api/projects/{project}/assets/{asset_id}", **requires("viewer"))
def asset(asset_id: int, ctx: ProjectCtx = project_ctx("viewer")) -> AssetDetail:
    a = ctx.session.get(Asset, asset_id)
    if a is None or a.project_id != ctx.project.id or a.deleted_at is not None:  # not found, not forbidden
        raise NotFound(f"no image {asset_id} in project {ctx.project.name!r}")
    objs = list(ctx.session.execute(select(Annotation, LabelClass.key).outerjoin(
        LabelClass, LabelClass.id == Annotation.label_class_id).where(Annotation.asset_id == a.id)
        .order_by(Annotation.id)).all())
    return AssetDetail(id=a.id, file_name=a.file_name, width=a.width, height=a.height, objects=len(objs),
                       tags=get_tags(ctx.session, a.id), metadata=get_metadata(ctx.session, a.id),
                       objects_list=[ObjectOut(
                           id=o.id, category=key, geometry_type=o.geometry_type,
                           bbox=[o.bbox_x, o.bbox_y, o.bbox_w, o.bbox_h] if o.bbox_w is not None else None,
                           source=o.source, confidence=o.confidence, attributes=o.attributes) for o, key in objs])
