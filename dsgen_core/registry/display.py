"""Objects as a viewer draws them: boxes, polygons (masks traced to outlines) and keypoints, in
image pixels, for many images in one query (a gallery page of 100 thumbnails is one round trip).

    shapes = display_shapes(session, [asset_id, ...], masks=MaskStore(storage))
    shapes[asset_id][0].bbox          # [x, y, w, h] in pixels, or None for an image-level label
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.registry.schema import Annotation, Asset, LabelClass
from dsgen_core.storage.masks import MaskStore, mask_outlines

KINDS = {"bbox": "box", "polygon": "polygon", "mask": "mask", "keypoints": "keypoints", "polyline": "polyline",
         "label": "label", "caption": "caption"}


@dataclass(slots=True)
class Shape:
    id: int
    category: str | None
    kind: str  # box | polygon | mask | keypoints | polyline | label | caption
    bbox: list[float] | None
    polygons: list[list[float]] | None  # parts [x, y, x, y, ...]; a mask's outlines
    points: list[list[float]] | None  # keypoints [[x, y, v], ...]
    source: str
    confidence: float | None


def display_shapes(session: Session, asset_ids: Sequence[int], *, masks: MaskStore | None,
                   sizes: dict[int, tuple[int | None, int | None]] | None = None) -> dict[int, list[Shape]]:
    """Every object of ``asset_ids`` in pixels, by image, in id order. Without ``masks`` a mask is its box.
    ``sizes`` (image id -> width, height), when the caller has them, saves reading them again.

    A gallery page draws a few thousand objects: one narrow query over the annotations' image index,
    class names from a dictionary rather than a join, plain rows rather than ORM objects."""
    if not asset_ids:
        return {}
    # Plain tuples, unpacked: a Row's attribute lookup costs microseconds, and a page has thousands.
    rows = [tuple(r) for r in session.execute(
        select(Annotation.id, Annotation.asset_id, Annotation.label_class_id, Annotation.geometry_type,
               Annotation.bbox_x, Annotation.bbox_y, Annotation.bbox_w, Annotation.bbox_h, Annotation.polygon,
               Annotation.mask_uri, Annotation.keypoints, Annotation.is_normalized, Annotation.source,
               Annotation.confidence, Annotation.updated_at)
        .where(Annotation.asset_id.in_(asset_ids)).order_by(Annotation.asset_id, Annotation.id))]
    class_ids = {r[2] for r in rows} - {None}
    keys = dict(session.execute(select(LabelClass.id, LabelClass.key).where(LabelClass.id.in_(class_ids))).all()) \
        if class_ids else {}
    if sizes is None and any(r[11] for r in rows):
        sizes = {i: (w, h) for i, w, h in session.execute(
            select(Asset.id, Asset.width, Asset.height).where(Asset.id.in_(asset_ids)))}
    out: dict[int, list[Shape]] = defaultdict(list)
    for oid, aid, class_id, gtype, bx, by, bw, bh, polygon, mask_uri, kp, normalized, source, conf, changed in rows:
        if normalized:
            w, h = (sizes or {}).get(aid, (None, None))
            sx, sy = float(w or 1), float(h or 1)
            bbox = [bx * sx, by * sy, bw * sx, bh * sy] if bw is not None else None
        else:
            sx = sy = 1.0
            bbox = [bx, by, bw, bh] if bw is not None else None
        polygons: list[list[float]] | None = None
        if polygon:
            polygons = [_scaled(p, sx, sy) for p in polygon]
        elif mask_uri and masks is not None:
            polygons = _outlines(masks, mask_uri, changed)
        points = [[kp[i] * sx, kp[i + 1] * sy, kp[i + 2]] for i in range(0, len(kp) - 2, 3)] if kp else None
        out[aid].append(Shape(oid, keys.get(class_id), KINDS.get(gtype, gtype), bbox, polygons, points, source, conf))
    return dict(out)


_OUTLINES: OrderedDict[tuple[str, Any], list[list[float]]] = OrderedDict()
_OUTLINES_MAX = 20_000
_outlines_lock = threading.Lock()


def _outlines(masks: MaskStore, uri: str, changed: Any) -> list[list[float]]:
    """A mask's outlines, traced once per version of the object (its ``updated_at``): a gallery page
    of segmentation data would otherwise read and trace every mask on every request."""
    key = (uri, changed)
    with _outlines_lock:
        found = _OUTLINES.get(key)
        if found is not None:
            _OUTLINES.move_to_end(key)
            return found
    traced = mask_outlines(masks.get(uri))
    with _outlines_lock:
        _OUTLINES[key] = traced
        if len(_OUTLINES) > _OUTLINES_MAX:
            _OUTLINES.popitem(last=False)
    return traced


def _scaled(part: list[Any], sx: float, sy: float) -> list[float]:
    return [float(v) * (sx if i % 2 == 0 else sy) for i, v in enumerate(part)]
