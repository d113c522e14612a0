"""Inference endpoints: ``POST /api/infer/{endpoint}`` runs a deployed model on an image; a project's
admins deploy, list and remove its endpoints under ``/api/projects/{project}/endpoints``.

``/api/infer/{endpoint}`` is not under a project, so it declares ``user`` and checks the role in the
endpoint's own project itself: viewer to infer, editor to write the detections back. An endpoint
in a project the caller has no role in answers 404, as one that does not exist.

The image is read by an async dependency (streamed, refused past :data:`MAX_BYTES` without reading
on); the route itself is a plain function, so FastAPI runs it in its threadpool and the model's
CPU work never blocks the event loop: concurrent requests run side by side on one shared model.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from dsgen_api.deps import CommitFirst, ProjectCtx, principal, project_ctx, registry, requires, session
from dsgen_api.problems import problem
from dsgen_core.accounts.access import Principal, project_role, require
from dsgen_core.errors import NotFound
from dsgen_core.inference import endpoints as eps
from dsgen_core.storage import open_storage

router = APIRouter(tags=["inference"], route_class=CommitFirst)
MAX_BYTES_ENV, MAX_BYTES_DEFAULT = "DSGEN_INFER_MAX_BYTES", 32 * 1024 * 1024
IMAGE_TYPES = ("application/octet-stream", "image/jpeg", "image/png")


class DetectionOut(BaseModel):
    class_: str = Field(alias="class", serialization_alias="class")
    name: str
    box: list[float]  # x, y, width, height in the image's pixels
    score: float


class InferenceOut(BaseModel):
    endpoint: str
    model_version: str
    width: int
    height: int
    detections: list[DetectionOut]
    ms: float  # decode + model + decoding of its output on the server
    written: int | None = None  # model annotations written back


class EndpointOut(BaseModel):
    name: str
    project: str
    model_version: str
    status: str
    url: str | None
    total_requests: int
    last_request_at: str | None
    deployed_at: str
    actor: str | None
    error: str | None = None


class DeployIn(BaseModel):
    name: str = Field(max_length=50)
    model: str | None = Field(default=None, max_length=64)  # m3 or its id; None: the production model


def max_bytes() -> int:
    try:
        return int(os.environ.get(MAX_BYTES_ENV) or MAX_BYTES_DEFAULT)
    except ValueError:
        return MAX_BYTES_DEFAULT


class _TooLarge(Exception):
    pass


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def image_bytes(request: Request) -> bytes | JSONResponse:
    """The request's image: the raw body (``application/octet-stream`` or ``image/*``) or the
    ``file`` part of a ``multipart/form-data`` body."""
    limit = max_bytes()
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        body = await _read_limited(request, limit)
    except _TooLarge:
        return problem(413, "Content Too Large", f"the upload is over {limit:,} bytes ({MAX_BYTES_ENV})")
    if kind == "multipart/form-data":
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(request.scope, receive).form(max_files=1, max_fields=8, max_part_size=limit)
        part = form.get("file")
        if part is None or isinstance(part, str):
            return problem(400, "Bad Request", "the multipart body has no file part named 'file'")
        return await part.read()
    if kind and kind not in IMAGE_TYPES and not kind.startswith("image/"):
        return problem(415, "Unsupported Media Type",
                       f"send the image as application/octet-stream, image/* or multipart/form-data (file), not {kind}")
    return body


def _cache_dir(request: Request) -> Path:
    return registry(request).settings.home / "cache" / "endpoints"


@router.post("/api/infer/{endpoint}", response_model=InferenceOut, **requires("user"))
def infer(endpoint: str, request: Request, data: bytes | JSONResponse = Depends(image_bytes),
          conf: float = Query(0.25, ge=0.0, le=1.0), iou: float = Query(0.7, ge=0.0, le=1.0),
          write_back_asset_id: int | None = Query(None, ge=1),
          p: Principal = Depends(principal), s: Session = session) -> InferenceOut | JSONResponse:
    """Detections of the endpoint's model on the image: class, box (x, y, w, h pixels), score."""
    if isinstance(data, JSONResponse):
        return data
    d, project = eps.find_endpoint(s, endpoint)
    role = project_role(s, p, project)
    if role is None:
        raise NotFound(f"no endpoint {endpoint!r}")  # the same answer as one that does not exist
    require(role, "editor" if write_back_asset_id is not None else "viewer", project=project.name)
    reg = registry(request)
    try:
        r = eps.infer(s, d, data, storage=open_storage(reg.settings.storage_root), cache_dir=_cache_dir(request),
                      conf=conf, iou=iou, write_back_asset_id=write_back_asset_id, actor=p.actor)
    except eps.BadImage as exc:
        return problem(413 if exc.too_large else 400, "Bad image", str(exc))
    except eps.EndpointConflict as exc:
        return problem(409, "Conflict", str(exc))
    return InferenceOut(endpoint=r.endpoint, model_version=r.model_version, width=r.width, height=r.height, ms=r.ms,
                        written=r.written, detections=[DetectionOut.model_validate(
                            {"class": d.class_key, "name": d.name, "box": list(d.box), "score": d.score})
                            for d in r.detections])


def _out(e: eps.Endpoint) -> EndpointOut:
    return EndpointOut(name=e.name, project=e.project, model_version=e.model_version, status=e.status, url=e.url,
                       total_requests=e.total_requests, deployed_at=e.deployed_at.isoformat(), actor=e.actor,
                       last_request_at=e.last_request_at.isoformat() if e.last_request_at else None, error=e.error)


@router.get("/api/projects/{project}/endpoints", **requires("viewer"))
def list_endpoints(ctx: ProjectCtx = project_ctx("viewer"), history: bool = Query(False)) -> list[EndpointOut]:
    """The project's endpoints with their model, status and request counts (``history``: undeployed ones too)."""
    return [_out(e) for e in eps.list_endpoints(ctx.session, ctx.project, history=history)]


@router.post("/api/projects/{project}/endpoints", status_code=201, response_model=EndpointOut, **requires("admin"))
def deploy(body: DeployIn, request: Request, ctx: ProjectCtx = project_ctx("admin")) -> EndpointOut | JSONResponse:
    """Deploy a model version's ONNX artifact (default: the production model) as endpoint ``name``;
    deploying a name of the project again replaces its model."""
    reg = registry(request)
    try:
        e = eps.deploy_endpoint(ctx.session, ctx.project, body.name, body.model,
                                storage=open_storage(reg.settings.storage_root), cache_dir=_cache_dir(request),
                                actor=ctx.principal.actor)
    except eps.EndpointConflict as exc:
        return problem(409, "Conflict", str(exc))
    return _out(e)


@router.delete("/api/projects/{project}/endpoints/{name}", **requires("admin"))
def undeploy(name: str, ctx: ProjectCtx = project_ctx("admin")) -> EndpointOut:
    """Stop serving endpoint ``name``; its row and counts stay as history."""
    return _out(eps.undeploy_endpoint(ctx.session, ctx.project, name, actor=ctx.principal.actor))
