"""The colour-histogram vector of an object: the baseline any learned embedding has to beat at re-identification.

8 bins per RGB channel of the object's box crop, each channel's histogram normalised to sum 1,
concatenated (24 numbers). It needs no model and no GPU, and tells a red object from a blue one;
it cannot tell two objects of one colour apart, which is what an embedding is for.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError
from dsgen_core.formats.images import open_image
from dsgen_core.registry.schema import Annotation, Asset, Project
from dsgen_core.storage.base import Storage
from dsgen_core.tracking.objects import ID_CHUNK

BINS = 8


def histogram_vectors(session: Session, project: Project, storage: Storage, ids: Sequence[int]) -> dict[int, np.ndarray]:
    """A 24-number vector per object of ``ids`` in ``project`` that has a box and a readable image.

    Objects without either are left out (the linker then scores them by overlap alone); each image
    is read once however many of its objects are asked for.
    """
    by_image: dict[int, list[tuple[int, float, float, float, float]]] = defaultdict(list)
    uris: dict[int, str | None] = {}
    wanted = sorted(set(ids))
    a = Annotation
    for i in range(0, len(wanted), ID_CHUNK):
        for r in session.execute(
            select(a.id, a.asset_id, a.bbox_x, a.bbox_y, a.bbox_w, a.bbox_h, Asset.storage_uri)
            .join(Asset, Asset.id == a.asset_id)
            .where(a.id.in_(wanted[i:i + ID_CHUNK]), Asset.project_id == project.id, a.bbox_w.is_not(None))
        ):
            by_image[r.asset_id].append((r.id, r.bbox_x, r.bbox_y, r.bbox_w, r.bbox_h))
            uris[r.asset_id] = r.storage_uri
    out: dict[int, np.ndarray] = {}
    for asset_id, boxes in by_image.items():
        pixels = _pixels(storage, uris[asset_id])
        if pixels is None:
            continue
        for oid, x, y, w, h in boxes:
            vec = crop_histogram(pixels, (x, y, w, h))
            if vec is not None:
                out[oid] = vec
    return out


def crop_histogram(pixels: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    """The vector of the ``box`` (x, y, w, h) crop of an H x W x 3 uint8 image; None when the box lies outside it."""
    h, w = pixels.shape[:2]
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[0] + box[2]))), min(h, int(np.ceil(box[1] + box[3])))
    if x1 <= x0 or y1 <= y0:
        return None
    crop = pixels[y0:y1, x0:x1].reshape(-1, 3)
    bins = (crop.astype(np.int64) * BINS) >> 8  # 0..255 -> 0..7
    counts = np.stack([np.bincount(bins[:, c], minlength=BINS) for c in range(3)]).astype(np.float32)
    return (counts / len(crop)).ravel()


def _pixels(storage: Storage, uri: str | None) -> np.ndarray | None:
    if uri is None:
        return None
    try:
        # Imported images are local files (the storage_uri is their path); anything else is in the storage.
        data = Path(uri).read_bytes() if Path(uri).is_absolute() else storage.read_bytes(storage.key_of(uri))
        with open_image(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, DsgenError):
        return None  # an unreadable image costs its objects their vectors, not the run


def joined(*providers: Callable[[Sequence[int]], dict[int, np.ndarray]]) -> Callable[[Sequence[int]],
                                                                                 dict[int, np.ndarray]]:
    """One provider whose vectors are the others' side by side, each scaled to unit length (equal say).

    Objects some provider has no vector for are left out (the linker scores them by overlap).
    """
    def provider(ids: Sequence[int]) -> dict[int, np.ndarray]:
        parts = [p(ids) for p in providers]
        out: dict[int, np.ndarray] = {}
        for i in ids:
            vs = [np.asarray(part[i], dtype=np.float64).ravel() for part in parts if i in part]
            if len(vs) == len(parts):
                out[i] = np.concatenate([v / max(float(np.linalg.norm(v)), 1e-12) for v in vs])
        return out

    return provider
