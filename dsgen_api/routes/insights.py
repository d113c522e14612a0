"""``/api/projects/{p}/insights``: the insights of a query's images (what ``dsgen insights`` computes),
and saved views (a named query and the charts to show for it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from dsgen_api.deps import CommitFirst, ProjectCtx, project_ctx, requires
from dsgen_core.insights.compute import INSIGHTS, compute_insights
from dsgen_core.insights.views import delete_view, get_view, list_views, save_view, view_to_dict

router = APIRouter(tags=["insights"], route_class=CommitFirst)


class ViewIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    query: str = Field(default="", max_length=4000)
    charts: list[str] | None = Field(default=None, max_length=len(INSIGHTS))
    visualization: dict[str, Any] | None = None


class ViewOut(BaseModel):
    id: int
    name: str
    query: str
    charts: list[str]
    visualization: dict[str, Any]
    saved_by: str | None
    created_at: str | None
    updated_at: str | None


def _view(v: Any) -> ViewOut:
    d = view_to_dict(v)
    d.pop("project_id")
    return ViewOut(**d)


@router.get("/api/projects/{project}/insights", **requires("viewer"))
def insights(ctx: ProjectCtx = project_ctx("viewer"), q: str = Query("", max_length=4000),
             which: str | None = Query(None, max_length=500, description=f"comma-separated: {', '.join(INSIGHTS)}"),
             top: int = Query(20, ge=1, le=1000)) -> dict[str, Any]:
    """Class distribution, tags, metadata values, resolutions, box sizes, ... of the images ``q`` selects."""
    return compute_insights(ctx.session, ctx.project, q, which, top=top)


@router.get("/api/projects/{project}/insights/views", **requires("viewer"))
def views(ctx: ProjectCtx = project_ctx("viewer")) -> list[ViewOut]:
    return [_view(v) for v in list_views(ctx.session, ctx.project)]


@router.get("/api/projects/{project}/insights/views/{name}", **requires("viewer"))
def view(name: str, ctx: ProjectCtx = project_ctx("viewer")) -> dict[str, Any]:
    """The view and its insights, computed now."""
    v = get_view(ctx.session, ctx.project, name)
    return {"view": _view(v).model_dump(), "insights": compute_insights(ctx.session, ctx.project, v.query,
                                                                       v.charts or None)}


@router.put("/api/projects/{project}/insights/views/{name}", **requires("editor"))
def put_view(name: str, body: ViewIn, ctx: ProjectCtx = project_ctx("editor")) -> ViewOut:
    return _view(save_view(ctx.session, ctx.project, name, query=body.query, charts=body.charts,
                           visualization=body.visualization, saved_by=ctx.principal.email, actor=ctx.principal.actor))


@router.post("/api/projects/{project}/insights/views", status_code=201, **requires("editor"))
def post_view(body: ViewIn, ctx: ProjectCtx = project_ctx("editor")) -> ViewOut:
    return put_view(body.name, body, ctx)


@router.delete("/api/projects/{project}/insights/views/{name}", status_code=204, **requires("editor"))
def remove_view(name: str, ctx: ProjectCtx = project_ctx("editor")) -> None:
    delete_view(ctx.session, ctx.project, name, actor=ctx.principal.actor)
