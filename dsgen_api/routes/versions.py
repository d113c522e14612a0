"""``/api/projects/{p}/versions``: dataset versions — list, create a draft, freeze it (a Dagster run:
freeze, checks, COCO and YOLO exports, insights), show, diff, and download an export as a ZIP."""

from __future__ import annotations

import uuid
import zipfile
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from dsgen_api.deps import CommitFirst, ProjectCtx, project_ctx, registry, requires
from dsgen_api.routes.runs import Started, launcher, started
from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.versions.lifecycle import (
    VersionDiff,
    VersionSummary,
    create_version,
    diff_versions,
    get_version,
    list_versions,
    version_summary,
)

router = APIRouter(tags=["versions"], route_class=CommitFirst)
EXPORT_FORMATS = ("coco", "yolo")  # the formats the pipeline's export assets write


class VersionIn(BaseModel):
    tag: str = Field(min_length=1, max_length=50)
    query: str = Field(default="", max_length=4000)
    split: str | dict[str, float] | None = Field(default=None, description='"train=0.8,val=0.1,test=0.1" or {"train": 0.8, ...}')
    seed: int = 0


class ExportIn(BaseModel):
    format: Literal["coco", "yolo"]


@router.get("/api/projects/{project}/versions", **requires("viewer"))
def versions(ctx: ProjectCtx = project_ctx("viewer")) -> list[VersionSummary]:
    return [version_summary(ctx.session, v) for v in list_versions(ctx.session, ctx.project)]


@router.post("/api/projects/{project}/versions", status_code=201, **requires("editor"))
def new_version(body: VersionIn, ctx: ProjectCtx = project_ctx("editor")) -> VersionSummary:
    v = create_version(ctx.session, ctx.project, body.tag, query=body.query, split=body.split, seed=body.seed,
                       actor=ctx.principal.actor)
    return version_summary(ctx.session, v)


@router.get("/api/projects/{project}/versions/{tag}", **requires("viewer"))
def version(tag: str, ctx: ProjectCtx = project_ctx("viewer")) -> VersionSummary:
    return version_summary(ctx.session, get_version(ctx.session, ctx.project, tag))


@router.post("/api/projects/{project}/versions/{tag}/freeze", status_code=202, **requires("editor"))
def freeze(tag: str, request: Request, ctx: ProjectCtx = project_ctx("editor")) -> Started:
    """Freeze the draft in a Dagster run (its checks, exports and insights follow in the same run).

    Not through ``request_freeze``: its change record is what the registry sensor launches a freeze
    for, and this run is that freeze."""
    if get_version(ctx.session, ctx.project, tag).is_frozen:
        raise DsgenError(f"version {tag!r} is already frozen")
    return started(ctx, launcher(request).launch("dataset_version_job", project=ctx.project.name,
                                                 principal=ctx.principal, partition=tag))


@router.get("/api/projects/{project}/versions/{a}/diff/{b}", **requires("viewer"))
def diff(a: str, b: str, ctx: ProjectCtx = project_ctx("viewer")) -> dict[str, Any]:
    d: VersionDiff = diff_versions(ctx.session, ctx.project, a, b)
    return d.to_dict()


@router.post("/api/projects/{project}/versions/{tag}/exports", status_code=202, **requires("editor"))
def export(tag: str, body: ExportIn, request: Request, ctx: ProjectCtx = project_ctx("editor")) -> Started:
    """Write the frozen version in ``format`` again (a Dagster run of its export asset)."""
    if not get_version(ctx.session, ctx.project, tag).is_frozen:
        raise DsgenError(f"version {tag!r} is not frozen; freeze it first")
    return started(ctx, launcher(request).launch("dataset_version_job", project=ctx.project.name,
                                                 principal=ctx.principal, partition=tag,
                                                 assets=[f"{body.format}_export"]))


@router.get("/api/projects/{project}/versions/{tag}/exports/{fmt}", **requires("viewer"),
            response_class=FileResponse, responses={200: {"content": {"application/zip": {}}}})
def download(tag: str, fmt: str, request: Request, ctx: ProjectCtx = project_ctx("viewer")) -> FileResponse:
    """The export as one ZIP (made once per export, kept beside it)."""
    if fmt not in EXPORT_FORMATS:
        raise NotFound(f"no export format {fmt!r}; formats: {', '.join(EXPORT_FORMATS)}")
    get_version(ctx.session, ctx.project, tag)
    folder = registry(request).settings.export_dir(ctx.project.name, tag, fmt)
    if not folder.is_dir():
        raise NotFound(f"version {tag!r} has no {fmt} export yet; POST .../versions/{tag}/exports to make one")
    return FileResponse(_zipped(folder), media_type="application/zip",
                        filename=f"{ctx.project.name}-{tag}-{fmt}.zip")


def _zipped(folder: Path) -> Path:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    newest = max((p.stat().st_mtime for p in files), default=0.0)
    out = folder.with_name(f"{folder.name}.zip")
    if out.is_file() and out.stat().st_mtime >= newest:
        return out
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:  # images are compressed already
        for p in files:
            zf.write(p, p.relative_to(folder).as_posix())
    tmp.replace(out)
    return out
