"""Objects as a viewer draws them: boxes, polygons (masks traced to outlines) and keypoints, in
image pixels, for many images in one query (a gallery page of 100 thumbnails is one round trip).

    shapes = display_shapes(session, [asset_id, ...], masks=MaskStore(storage))
    shapes[asset_id][0].bbox          # [x, y, w, h] in pixels, or None for an image-level label
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.registry.schema import Annotation, Asset, LabelClass
from dsgen_core.storage.masks import MaskStore, mask_outlines

KINDS = {"bbox": "box", "polygon": "polygon", "mask": "mask", "keypoints": "keypoints", "polyline": "polyline",
         "label": "label", "caption": "caption"}


@dataclass(frozen=True)
class Shape:
    id: int
    category: str | None
    kind: str  # box | polygon | mask | keypoints | polyline | label | caption
    bbox: list[float] | None
    polygons: list[list[float]] | None  # parts [x, y, x, y, ...]; a mask's outlines
    points: list[list[float]] | None  # keypoints [[x, y, v], ...]
    source: str
    confidence: float | None


def display_shapes(session: Session, asset_ids: Sequence[int], *, masks: MaskStore | None) -> dict[int, list[Shape]]:
    """Every object of ``asset_ids`` in pixels, by image, in id order. Without ``masks`` a mask is its box."""
    if not asset_ids:
        return {}
    rows = session.execute(
        select(Annotation.id, Annotation.asset_id, LabelClass.key, Annotation.geometry_type, Annotation.bbox_x,
               Annotation.bbox_y, Annotation.bbox_w, Annotation.bbox_h, Annotation.polygon, Annotation.mask_uri,
               Annotation.keypoints, Annotation.is_normalized, Annotation.source, Annotation.confidence,
               Asset.width, Asset.height)
        .join(Asset, Asset.id == Annotation.asset_id)
        .outerjoin(LabelClass, LabelClass.id == Annotation.label_class_id)
        .where(Annotation.asset_id.in_(asset_ids)).order_by(Annotation.asset_id, Annotation.id)).all()
    out: dict[int, list[Shape]] = defaultdict(list)
    for r in rows:
        sx, sy = (float(r.width or 1), float(r.height or 1)) if r.is_normalized else (1.0, 1.0)
        bbox = [r.bbox_x * sx, r.bbox_y * sy, r.bbox_w * sx, r.bbox_h * sy] if r.bbox_w is not None else None
        polygons: list[list[float]] | None = None
        if r.polygon:
            polygons = [_scaled(p, sx, sy) for p in r.polygon]
        elif r.mask_uri and masks is not None:
            polygons = mask_outlines(masks.get(r.mask_uri))
        points = None
        if r.keypoints:
            k = r.keypoints
            points = [[k[i] * sx, k[i + 1] * sy, k[i + 2]] for i in range(0, len(k) - 2, 3)]
        out[r.asset_id].append(Shape(r.id, r.key, KINDS.get(r.geometry_type, r.geometry_type), bbox, polygons,
                                     points, r.source, r.confidence))
    return dict(out)


def _scaled(part: list[Any], sx: float, sy: float) -> list[float]:
    return [float(v) * (sx if i % 2 == 0 else sy) for i, v in enumerate(part)]
