"""Validation of a COCO ground-truth dict and a COCO results list, into fresh records.

Both COCO backends write into the annotation dicts they are given (``ignore``, ``area``, ``id``…),
pycocotools indexes annotations by ``id`` (two annotations sharing one become one object twice)
and faster-coco-eval reads id 0 as "unmatched". The evaluation therefore never hands the
caller's dicts to a backend: :func:`prepare` checks them and builds new ones with ids ``1..N``,
keeping only what bbox evaluation reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any

from dsgen_core.errors import DsgenError


@dataclass(frozen=True)
class Category:
    id: int
    name: str


@dataclass(frozen=True)
class EvalData:
    """Checked copies of the inputs, in the shape COCOeval reads.

    ``categories`` are sorted by id, which is the class order of COCOeval's arrays.
    ``support`` counts the non-crowd ground-truth objects per category id.
    """

    categories: tuple[Category, ...]
    images: list[dict[str, int]]
    annotations: list[dict[str, Any]]
    detections: list[dict[str, Any]]
    support: dict[int, int]


def prepare(gt: Mapping[str, Any], detections: Sequence[Mapping[str, Any]]) -> EvalData:
    """Check ``gt`` (a COCO dict) and ``detections`` (a COCO results list); raise DsgenError."""
    if not isinstance(gt, Mapping):
        raise DsgenError(f"ground truth must be a COCO dict, got {type(gt).__name__}")
    if isinstance(detections, (str, bytes, Mapping)) or not isinstance(detections, Sequence):
        raise DsgenError(f"detections must be a list of COCO results, got {type(detections).__name__}")
    categories = _categories(gt.get("categories"))
    cat_ids = {c.id for c in categories}
    images = _images(gt.get("images"))
    image_ids = {img["id"] for img in images}
    annotations, support = _annotations(gt.get("annotations", []), image_ids, cat_ids)
    dets = _detections(detections, image_ids, cat_ids)
    return EvalData(categories, images, annotations, dets, support)


def _categories(raw: Any) -> tuple[Category, ...]:
    if not isinstance(raw, list) or not raw:
        raise DsgenError("ground truth has no 'categories' list")
    seen_ids: set[int] = set()
    seen_names: set[str] = set()
    out = []
    for i, cat in enumerate(raw):
        cid = _int(_field(cat, "id", f"category {i}"), f"category {i} id")
        name = _field(cat, "name", f"category {cid}")
        if not isinstance(name, str) or not name:
            raise DsgenError(f"category {cid} has no name")
        if cid in seen_ids:
            raise DsgenError(f"category id {cid} is declared twice in the ground truth")
        # Metrics are reported per class name, so two categories with one name would collide.
        if name in seen_names:
            raise DsgenError(f"category name {name!r} is declared twice in the ground truth")
        seen_ids.add(cid)
        seen_names.add(name)
        out.append(Category(cid, name))
    return tuple(sorted(out, key=lambda c: c.id))


def _images(raw: Any) -> list[dict[str, int]]:
    if not isinstance(raw, list):
        raise DsgenError("ground truth has no 'images' list")
    out = []
    seen: set[int] = set()
    for i, img in enumerate(raw):
        iid = _int(_field(img, "id", f"image {i}"), f"image {i} id")
        if iid in seen:
            raise DsgenError(f"image id {iid} appears twice in the ground truth")
        seen.add(iid)
        out.append({"id": iid})
    return out


# This and _detections are the hot loops (tens of thousands of items), hence the checks
# inlined and the id lookups first: the helpers only run to word an error.
def _annotations(raw: Any, image_ids: set[int], cat_ids: set[int]) -> tuple[list[dict[str, Any]], dict[int, int]]:
    if not isinstance(raw, list):
        raise DsgenError("ground truth 'annotations' is not a list")
    support = dict.fromkeys(cat_ids, 0)
    out = []
    for i, ann in enumerate(raw):
        try:
            image_id, category_id, bbox = ann["image_id"], ann["category_id"], ann["bbox"]
        except (KeyError, TypeError, IndexError):
            raise DsgenError(_missing(ann, ("image_id", "category_id", "bbox"), f"ground-truth annotation {i}")) from None
        where = f"ground-truth annotation {i}"
        if image_id not in image_ids or category_id not in cat_ids:
            _check_ids(image_id, category_id, image_ids, cat_ids, where)
        box = _bbox(bbox, where)
        crowd = bool(ann.get("iscrowd", 0))
        area = ann.get("area")
        # COCO's area is the mask area; files without masks (or without the key) get the box's.
        area = box[2] * box[3] if area is None else _number(area, f"{where} area")
        if not crowd:
            support[category_id] += 1
        out.append({"id": i + 1, "image_id": int(image_id), "category_id": int(category_id),
                    "bbox": box, "area": area, "iscrowd": int(crowd)})
    return out, support


def _detections(raw: Sequence[Mapping[str, Any]], image_ids: set[int], cat_ids: set[int]) -> list[dict[str, Any]]:
    out = []
    for i, det in enumerate(raw):
        try:
            image_id, category_id, bbox, score = det["image_id"], det["category_id"], det["bbox"], det["score"]
        except (KeyError, TypeError, IndexError):
            raise DsgenError(_missing(det, ("image_id", "category_id", "bbox", "score"), f"detection {i}")) from None
        if image_id not in image_ids or category_id not in cat_ids:
            _check_ids(image_id, category_id, image_ids, cat_ids, f"detection {i}")
        box = _bbox(bbox, f"detection {i}")
        score = _number(score, f"detection {i} score")
        out.append({"id": i + 1, "image_id": int(image_id), "category_id": int(category_id), "bbox": box,
                    "score": score, "area": box[2] * box[3], "iscrowd": 0})
    return out


def _check_ids(image_id: Any, category_id: Any, image_ids: set[int], cat_ids: set[int], where: str) -> None:
    if image_id not in image_ids:
        raise DsgenError(f"{where} names image_id {image_id!r}, which is not in the ground truth's images")
    if category_id not in cat_ids:
        raise DsgenError(f"{where} names category_id {category_id!r}, which is not in the ground truth's categories")


def _bbox(value: Any, where: str) -> list[float]:
    # ``v + 0.0`` takes ints, floats and numpy scalars but refuses strings; one isfinite on the
    # sum catches a NaN or an infinity anywhere in the box.
    try:
        x, y, w, h = value
        box = [float(x + 0.0), float(y + 0.0), float(w + 0.0), float(h + 0.0)]
    except (TypeError, ValueError):
        raise DsgenError(f"{where} bbox must be [x, y, width, height] numbers, got {value!r}") from None
    if not math.isfinite(box[0] + box[1] + box[2] + box[3]):
        raise DsgenError(f"{where} bbox must be finite numbers, got {value!r}")
    if box[2] < 0 or box[3] < 0:
        raise DsgenError(f"{where} bbox has a negative width or height: {value!r}")
    return box


def _missing(obj: Any, keys: tuple[str, ...], where: str) -> str:
    if not isinstance(obj, Mapping):
        return f"{where} is not an object"
    return f"{where} has no {next(k for k in keys if k not in obj)!r}"


def _field(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise DsgenError(f"{where} is not an object")
    try:
        return obj[key]
    except KeyError:
        raise DsgenError(f"{where} has no {key!r}") from None


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise DsgenError(f"{where} must be an integer, got {value!r}")
    return int(value)


def _number(value: Any, where: str) -> float:
    try:
        number = float(value + 0.0)
    except TypeError:
        number = math.nan
    if not math.isfinite(number):
        raise DsgenError(f"{where} must be a finite number, got {value!r}")
    return number
