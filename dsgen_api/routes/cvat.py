"""``/api/projects/{p}/cvat``: push a query's images to CVAT as tasks and pull them back (Dagster runs of
``cvat_push_job`` / ``cvat_pull_job``, with the server's credentials from the API server's environment),
the pushed tasks, and seed 001's export jobs (``/export-jobs``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from dsgen_api.deps import CommitFirst, ProjectCtx, project_ctx, requires
from dsgen_api.routes.runs import Started, launcher, started
from dsgen_core.cvat.status import TaskStatus, cvat_status
from dsgen_core.errors import NotFound
from dsgen_core.query.parser import parse
from dsgen_core.registry.schema import ExportJob

router = APIRouter(tags=["cvat"], route_class=CommitFirst)


class PushIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    query: str = Field(default="", max_length=4000)
    annotations: Literal["human", "model", "all", "none"] = "all"
    max_images_per_task: int | None = Field(default=None, ge=1)
    segment_size: int | None = Field(default=None, ge=1)
    cvat_project: int | None = Field(default=None, ge=1)


class PullIn(BaseModel):
    task_id: int = Field(ge=1)
    on_conflict: Literal["cvat", "registry"] = "cvat"
    changed_jobs_only: bool = True


class ExportJobOut(BaseModel):
    id: int
    target: str
    status: str
    filter_snapshot: dict[str, Any] | None
    external_url: str | None
    log: str
    created_at: datetime
    updated_at: datetime


@router.post("/api/projects/{project}/cvat/push", status_code=202, **requires("editor"))
def push(body: PushIn, request: Request, ctx: ProjectCtx = project_ctx("editor")) -> Started:
    parse(body.query)  # a bad query is a 400 now, not a failed run later
    return started(ctx, launcher(request).launch("cvat_push_job", project=ctx.project.name, principal=ctx.principal,
                                                 run_config={"ops": {"cvat_push": {"config": body.model_dump()}}}))


@router.post("/api/projects/{project}/cvat/pull", status_code=202, **requires("editor"))
def pull(body: PullIn, request: Request, ctx: ProjectCtx = project_ctx("editor")) -> Started:
    if body.task_id not in {t.task_id for t in cvat_status(ctx.session, ctx.project, live=False)}:
        raise NotFound(f"CVAT task {body.task_id} was not pushed from project {ctx.project.name!r}")
    return started(ctx, launcher(request).launch("cvat_pull_job", project=ctx.project.name, principal=ctx.principal,
                                                 run_config={"ops": {"cvat_pull": {"config": body.model_dump()}}}))


@router.get("/api/projects/{project}/cvat/tasks", **requires("viewer"))
def tasks(ctx: ProjectCtx = project_ctx("viewer"), live: bool = Query(False)) -> list[TaskStatus]:
    """The tasks pushed from this project; ``live``: with CVAT's own state of each (asks the server)."""
    return cvat_status(ctx.session, ctx.project, live=live)


@router.get("/api/projects/{project}/export-jobs", **requires("viewer"))
def export_jobs(ctx: ProjectCtx = project_ctx("viewer"), limit: int = Query(50, ge=1, le=500)) -> list[ExportJobOut]:
    rows = ctx.session.scalars(select(ExportJob).where(ExportJob.project_id == ctx.project.id)
                               .order_by(ExportJob.id.desc()).limit(limit))
    return [ExportJobOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/api/projects/{project}/export-jobs/{job_id}", **requires("viewer"))
def export_job(job_id: int, ctx: ProjectCtx = project_ctx("viewer")) -> ExportJobOut:
    job = ctx.session.get(ExportJob, job_id)
    if job is None or job.project_id != ctx.project.id:
        raise NotFound(f"no export job {job_id} in project {ctx.project.name!r}")
    return ExportJobOut.model_validate(job, from_attributes=True)
