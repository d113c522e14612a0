"""An image's bytes and its thumbnail, streamed with HTTP caching and range requests (viewer).

Both take credentials or a signed URL (the asset list hands those out, for ``<img src>``).
Only files the registry recorded are served: the path comes from the asset's row, never from
the request, so no URL can name another file. A thumbnail is made on first request if the
image has none yet (``dsgen thumbnails`` makes them in bulk).
"""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from dsgen_api.deps import CommitFirst, ProjectCtx, project_ctx, registry, requires
from dsgen_core.errors import NotFound
from dsgen_core.registry.schema import Asset

router = APIRouter(tags=["media"], route_class=CommitFirst)
CACHE = "private, max-age=86400"


def _asset(ctx: ProjectCtx, asset_id: int) -> Asset:
    a = ctx.session.get(Asset, asset_id)
    if a is None or a.project_id != ctx.project.id or a.deleted_at is not None:
        raise NotFound(f"no image {asset_id} in project {ctx.project.name!r}")
    return a


@router.get("/api/projects/{project}/assets/{asset_id}/image", **requires("viewer", signed=True))
def image(asset_id: int, ctx: ProjectCtx = project_ctx("viewer", signed=True)) -> FileResponse:
    a = _asset(ctx, asset_id)
    if not a.storage_uri or not os.path.isfile(a.storage_uri):
        raise NotFound(f"image {asset_id} has no file (imported without its images)")
    return FileResponse(a.storage_uri, headers={"Cache-Control": CACHE, "ETag": f'"{a.sha256}"'} if a.sha256 else
                        {"Cache-Control": CACHE})


@router.get("/api/projects/{project}/assets/{asset_id}/thumbnail", **requires("viewer", signed=True))
def thumbnail(asset_id: int, request: Request, ctx: ProjectCtx = project_ctx("viewer", signed=True)) -> Response:
    from dsgen_core.storage import open_storage
    from dsgen_core.thumbnails import make_thumbnail, thumbnail_key

    a = _asset(ctx, asset_id)
    etag = f'"t-{a.sha256}"' if a.sha256 else None
    if etag and request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE})
    storage = open_storage(registry(request).settings.storage_root)
    if a.thumbnail_uri:
        data = storage.read_bytes(storage.key_of(a.thumbnail_uri))
    elif a.storage_uri and a.sha256 and os.path.isfile(a.storage_uri):
        data = make_thumbnail(a.storage_uri)
        a.thumbnail_uri = storage.write_bytes(thumbnail_key(a.sha256), data)
    else:
        raise NotFound(f"image {asset_id} has no file to make a thumbnail of")
    headers = {"Cache-Control": CACHE, **({"ETag": etag} if etag else {})}
    return Response(data, media_type="image/jpeg", headers=headers)
