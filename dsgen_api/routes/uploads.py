"""``POST /api/projects/{p}/uploads``: a COCO (or Datamaker) export sent as the request body — a JSON
file, or a ZIP of annotations and images such as CVAT's "COCO 1.0" export — imported by a Dagster run
whose progress the caller follows (``events_url``).

The body is streamed to ``$DSGEN_HOME/uploads/<id>/`` and refused past ``DSGEN_MAX_UPLOAD_BYTES``
(default 2 GiB) with 413; a ZIP is checked entry by entry before anything is unpacked (the importer's
ZIP-slip and bomb checks). The folder stays: the registry's images point into it, as into any import
source. A refused upload leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from dsgen_api.deps import ProjectCtx, project_ctx, registry, requires
from dsgen_api.routes.runs import Started, launcher, started
from dsgen_core.accounts.plans import check_storage
from dsgen_core.accounts.usage import record_usage
from dsgen_core.errors import DsgenError, UploadTooLarge
from dsgen_core.formats.images import unpack_zip
from dsgen_core.registry.schema import User

router = APIRouter(tags=["uploads"])
MAX_UPLOAD_ENV, MAX_UPLOAD = "DSGEN_MAX_UPLOAD_BYTES", 2 << 30


def max_upload_bytes() -> int:
    return int(os.environ.get(MAX_UPLOAD_ENV) or MAX_UPLOAD)


_ACCESS = requires("editor")
_ACCESS["openapi_extra"]["requestBody"] = {"content": {  # the body is read raw, so OpenAPI is told here
    "application/zip": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": {"type": "string", "format": "binary"}}}}


@router.post("/api/projects/{project}/uploads", status_code=202, **_ACCESS)
async def upload(request: Request, ctx: ProjectCtx = project_ctx("editor"),
                 format: Literal["coco", "datamaker"] = Query("coco"), skip_invalid: bool = Query(False),
                 on_conflict: Literal["error", "keep", "replace"] = Query("error")) -> Started:
    limit = max_upload_bytes()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(f"the upload is {int(declared)} bytes; the limit is {limit} ({MAX_UPLOAD_ENV})")
    folder = registry(request).settings.home / "uploads" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        body = folder / "upload.bin"
        size = 0
        with open(body, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(f"the upload is over the {limit} byte limit ({MAX_UPLOAD_ENV})")
                f.write(chunk)
        if size == 0:
            raise DsgenError("the request body is empty: send the JSON file or the ZIP as the body")
        annotations, images = await run_in_threadpool(_unpacked, body, folder, format)
        # The project's owner's plan pays for what it stores (the uploader's, where it has no owner).
        await run_in_threadpool(_charge_storage, ctx, sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if format == "coco":
        job, op = "import_coco_job", "import_coco_export"
        config: dict[str, object] = {"annotations": str(annotations), "images": str(images) if images else None}
    else:
        job, op = "import_datamaker_job", "import_datamaker_export"
        config = {"path": str(annotations), "images": str(images) if images else None}
    config |= {"skip_invalid": skip_invalid, "on_conflict": on_conflict}
    return started(ctx, launcher(request).launch(job, project=ctx.project.name, principal=ctx.principal,
                                                 run_config={"ops": {op: {"config": config}}}))


def _charge_storage(ctx: ProjectCtx, size: int) -> None:
    s = ctx.session
    payer = s.get(User, ctx.project.owner_id or ctx.principal.user_id)
    assert payer is not None  # the caller exists: they were just authenticated
    check_storage(s, payer, size)
    record_usage(s, payer.id, "storage", size, project_id=ctx.project.id, api_key_id=ctx.principal.api_key_id)
    s.commit()


def _unpacked(body: Path, folder: Path, fmt: str) -> tuple[Path, Path | None]:
    """(annotations file or folder, image folder) of a saved upload."""
    with open(body, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        if magic.lstrip()[:1] not in (b"{", b"["):
            raise DsgenError("the upload is neither a ZIP nor a JSON file")
        return body.rename(folder / "annotations.json"), None
    files = folder / "files"
    unpack_zip(body, files)
    body.unlink()
    found = sorted(p for p in files.rglob("*.json") if p.is_file())
    if not found:
        raise DsgenError("the ZIP holds no annotation file (*.json)")
    preferred = [p for p in found if p.parent.name == "annotations"]
    if fmt == "datamaker":
        return files, files  # every annotatorData file in it, one batch
    if len(found) == 1 or len(preferred) == 1:
        return (preferred or found)[0], files
    names = ", ".join(p.relative_to(files).as_posix() for p in found[:10])
    raise DsgenError(f"the ZIP holds several COCO files ({names}); upload one export at a time")
