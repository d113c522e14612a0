"""Thumbnails (longest side 512 px), made as their own step after an import, not inside it."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

from PIL import Image
from sqlalchemy import select, update
from tqdm import tqdm

from dsgen_core.registry.changes import record_change
from dsgen_core.registry.db import Registry
from dsgen_core.registry.models import Asset
from dsgen_core.storage.base import Storage, open_storage

THUMBNAIL_SIZE = 512


def thumbnail_key(sha256: str) -> str:
    return f"thumbnails/{sha256[:2]}/{sha256}.jpg"


def make_thumbnail(path: str, size: int = THUMBNAIL_SIZE) -> bytes:
    with Image.open(path) as im:
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "JPEG", quality=85)
        return buf.getvalue()


def make_thumbnails(registry: Registry, project_id: int, *, size: int = THUMBNAIL_SIZE, progress: bool = False,
                    storage: Storage | None = None) -> dict[str, int]:
    """Thumbnails for every image of the project that has a file and none yet; failures are counted, not fatal."""
    store = storage or open_storage(registry.settings.storage_root)
    with registry.session() as s:
        todo = s.execute(
            select(Asset.id, Asset.storage_uri, Asset.sha256).where(
                Asset.project_id == project_id, Asset.thumbnail_uri.is_(None), Asset.storage_uri.is_not(None),
                Asset.sha256.is_not(None), Asset.deleted_at.is_(None),
            )
        ).all()

    def one(row) -> tuple[int, str | None]:  # noqa: ANN001
        try:
            return row.id, store.write_bytes(thumbnail_key(row.sha256), make_thumbnail(row.storage_uri, size))
        except OSError:
            return row.id, None

    done: list[tuple[int, str]] = []
    failed = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        for asset_id, uri in tqdm(pool.map(one, todo), total=len(todo), desc="thumbnails", unit="img", disable=not progress):
            if uri is None:
                failed += 1
            else:
                done.append((asset_id, uri))
    with registry.session() as s:
        for asset_id, uri in done:
            s.execute(update(Asset).where(Asset.id == asset_id).values(thumbnail_uri=uri))
        if done:
            record_change(s, project_id=project_id, entity="thumbnails", op="create", count=len(done))
    return {"created": len(done), "failed": failed, "skipped": 0}
