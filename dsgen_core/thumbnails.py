"""Thumbnails (longest side 512 px), made as their own step after an import, not inside it."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from dsgen_core.formats.images import open_image
from dsgen_core.registry.changes import record_change
from dsgen_core.registry.schema import Asset, Project
from dsgen_core.storage.base import Storage

THUMBNAIL_SIZE = 512


def thumbnail_key(sha256: str) -> str:
    return f"thumbnails/{sha256[:2]}/{sha256}.jpg"


def make_thumbnail(path: str, size: int = THUMBNAIL_SIZE) -> bytes:
    with open_image(path) as im:
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "JPEG", quality=85)
        return buf.getvalue()


@dataclass(frozen=True)
class ThumbnailCounts:
    created: int
    failed: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def make_thumbnails(session: Session, project: Project, *, storage: Storage, size: int = THUMBNAIL_SIZE,
                    progress: bool = False) -> ThumbnailCounts:
    """Thumbnails for every image of the project that has a file and none yet; failures are counted, not fatal.

    Identical images share one thumbnail file (keyed by content).
    """
    todo = session.execute(
        select(Asset.id, Asset.storage_uri, Asset.sha256).where(
            Asset.project_id == project.id, Asset.thumbnail_uri.is_(None), Asset.storage_uri.is_not(None),
            Asset.sha256.is_not(None), Asset.deleted_at.is_(None),
        )
    ).all()

    def one(row: Any) -> tuple[int, str | None]:
        try:
            return row.id, storage.write_bytes(thumbnail_key(row.sha256), make_thumbnail(row.storage_uri, size))
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
    if done:
        t = cast(Table, Asset.__table__)  # a FromClause to the declarative stubs
        session.execute(t.update().where(t.c.id == bindparam("_id")).values(thumbnail_uri=bindparam("uri")),
                        [{"_id": i, "uri": u} for i, u in done])
        record_change(session, project_id=project.id, entity="thumbnails", op="create", count=len(done))
    return ThumbnailCounts(len(done), failed)
