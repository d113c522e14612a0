"""``POST /api/projects/{p}/uploads``: a COCO (or Datamaker) export sent as the request body — a JSON
file, or a ZIP of annotations and images such as CVAT's "COCO 1.0" export — imported by a Dagster run
whose progress the caller follows (``events_url``).

The body is streamed to ``$DSGEN_HOME/uploads/<id>/`` and refused past ``DSGEN_MAX_UPLOAD_BYTES``
(default 2 GiB) with 413, or when the client sends nothing for a minute; a ZIP is checked entry by
entry before anything is unpacked (the importer's ZIP-slip and bomb checks). No database connection
is held while the body arrives: a slow client must not hold one of the pool's few connections. The
folder stays when the import succeeds (the registry's images point into it, as into any import
source) and is removed when it fails. A refused upload leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from dsgen_api.deps import Access, CommitFirst, check_access, registry, requires
from dsgen_api.routes.runs import Started, launcher, started_for
from dsgen_core.accounts.plans import check_storage, storage_payer
from dsgen_core.accounts.usage import record_usage
from dsgen_core.errors import DsgenError, UploadTooLarge
from dsgen_core.formats.images import unpack_zip

router = APIRouter(tags=["uploads"], route_class=CommitFirst)
MAX_UPLOAD_ENV, MAX_UPLOAD = "DSGEN_MAX_UPLOAD_BYTES", 2 << 30
STALL_S = 60.0
_ACCESS = requires("editor", in_route=True)
_ACCESS["openapi_extra"]["requestBody"] = {"content": {  # the body is read raw, so OpenAPI is told here
    "application/zip": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": {"type": "string", "format": "binary"}}}}


def max_upload_bytes() -> int:
    return int(os.environ.get(MAX_UPLOAD_ENV) or MAX_UPLOAD)


@router.post("/api/projects/{project}/uploads", status_code=202, **_ACCESS)
async def upload(project: str, request: Request, format: Literal["coco", "datamaker"] = Query("coco"),
                 skip_invalid: bool = Query(False),
                 on_conflict: Literal["error", "keep", "replace"] = Query("error")) -> Started:
    who = await run_in_threadpool(check_access, request, project, "editor")
    limit = max_upload_bytes()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(f"the upload is {int(declared)} bytes; the limit is {limit} ({MAX_UPLOAD_ENV})")
    folder = registry(request).settings.home / "uploads" / uuid.uuid4().hex
    await run_in_threadpool(folder.mkdir, parents=True)
    try:
        body = folder / "upload.bin"
        await _receive(request, body, limit)
        annotations, images = await run_in_threadpool(_unpacked, body, folder, format)
        size = await run_in_threadpool(lambda: sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()))
        await run_in_threadpool(_charge_storage, request, who, size)
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
    run_id = await run_in_threadpool(lambda: launcher(request).launch(
        job, project=who.project, principal=who.principal, run_config={"ops": {op: {"config": config}}},
        remove_on_failure=folder))
    return started_for(who.project, run_id)


async def _receive(request: Request, path: Path, limit: int) -> None:
    size = 0
    chunks = request.stream().__aiter__()
    with open(path, "wb") as f:
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), STALL_S)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise DsgenError(f"the upload stalled: nothing arrived for {STALL_S:.0f} s") from None
            size += len(chunk)
            if size > limit:
                raise UploadTooLarge(f"the upload is over the {limit} byte limit ({MAX_UPLOAD_ENV})")
            await run_in_threadpool(f.write, chunk)
    if size == 0:
        raise DsgenError("the request body is empty: send the JSON file or the ZIP as the body")


def _charge_storage(request: Request, who: Access, size: int) -> None:
    with registry(request).session() as s:
        payer = storage_payer(s, who.project_id, who.owner_id, fallback_user_id=who.principal.user_id)
        check_storage(s, payer, size)
        record_usage(s, payer.id, "storage", size, project_id=who.project_id, api_key_id=who.principal.api_key_id)


def _ignored(p: Path) -> bool:
    """What archivers add besides the files: macOS resource forks and Finder metadata."""
    return "__MACOSX" in p.parts or p.name.startswith("._") or p.name == ".DS_Store"


def _unpacked(body: Path, folder: Path, fmt: str) -> tuple[Path, Path | None]:
    """(annotations file or folder, image folder) of a saved upload."""
    with open(body, "rb") as f:
        magic = f.read(8)
    if magic[:4] != b"PK\x03\x04":
        if magic.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] not in (b"{", b"["):
            raise DsgenError("the upload is neither a ZIP nor a JSON file")
        return body.rename(folder / "annotations.json"), None
    files = folder / "files"
    unpack_zip(body, files)
    body.unlink()
    for p in sorted(files.rglob("*"), reverse=True):  # deepest first: a folder after what it holds
        if _ignored(p.relative_to(files)):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    found = sorted(p for p in files.rglob("*.json") if p.is_file())
    if not found:
        raise DsgenError("the ZIP holds no annotation file (*.json)")
    if fmt == "datamaker":
        return files, files  # every annotatorData file in it, one batch
    preferred = [p for p in found if p.parent.name == "annotations"]
    if len(found) == 1 or len(preferred) == 1:
        return (preferred or found)[0], files
    names = ", ".join(p.relative_to(files).as_posix() for p in found[:10])
    raise DsgenError(f"the ZIP holds several COCO files ({names}); upload one export at a time")
