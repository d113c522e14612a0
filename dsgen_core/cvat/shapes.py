"""Registry objects as CVAT shapes and tags, and back.

CVAT keeps ``occluded`` and ``rotation`` as fields of each shape, not as label attributes; every
other key of an object's ``attributes`` becomes a label attribute of its class. CVAT stores
attribute values as text, so each attribute spec remembers the Python type dsgen sent and a pull
turns the text back into it (``"3"`` -> 3 for an int attribute, ``"true"`` -> True).

    spec = attribute_specs(rows)                     # {class id: {name: AttrSpec}}
    shape = to_cvat(row, mask=None, frame=0, label_id=7, specs={...})
    record = from_cvat(shape, label_class, specs, width, height, ...)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from pycocotools import mask as mask_utils

# Attributes that are CVAT shape fields (or track bookkeeping), never label attributes.
SHAPE_FIELDS = ("occluded", "rotation", "track_id", "keyframe", "outside", "z_order")
_TYPES = {"bool": bool, "int": int, "float": float, "str": str}


@dataclass(frozen=True)
class AttrSpec:
    """One label attribute as CVAT shows it, and the Python type its values come back as."""

    name: str
    pytype: str  # bool | int | float | str
    values: tuple[str, ...] = ()  # the choices of a select attribute

    @property
    def input_type(self) -> str:
        if self.pytype == "bool":
            return "checkbox"
        return "select" if self.values else "text"

    def request(self) -> dict[str, Any]:
        default = {"bool": "false"}.get(self.pytype, self.values[0] if self.values else "")
        return {"name": self.name, "mutable": False, "input_type": self.input_type, "default_value": default,
                "values": list(self.values) if self.values else (["false"] if self.pytype == "bool" else [""])}

    def to_text(self, value: Any) -> str:
        if self.pytype == "bool":
            return "true" if value else "false"
        return repr(value) if self.pytype == "float" else str(value)

    def from_text(self, text: str) -> Any:
        if self.pytype == "bool":
            return text.strip().lower() == "true"
        if self.pytype == "number":  # CVAT's number input: an int when written as one
            try:
                return int(text) if text.strip().lstrip("-").isdigit() else float(text)
            except ValueError:
                return text
        try:
            return _TYPES[self.pytype](text)
        except ValueError:
            return text  # an annotator typed a word into a number field: kept as they wrote it


def python_type(value: Any) -> str | None:
    """The spec type of an attribute value; None for values CVAT cannot hold (lists, dicts, None)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return None


def attribute_specs(attributes: list[dict[str, Any] | None],
                    schema: dict[str, Any] | None = None) -> tuple[dict[str, AttrSpec], list[str]]:
    """The label attributes of one class from its objects' attributes (and its attribute schema, if any).

    Returns the specs by name and the names that cannot be CVAT attributes (a value that is a list,
    or one name with values of two types), for the loss report.
    """
    types: dict[str, set[str]] = {}
    for attrs in attributes:
        for k, v in (attrs or {}).items():
            if k in SHAPE_FIELDS:
                continue
            t = python_type(v)
            types.setdefault(k, set()).add(t if t is not None else "other")
    specs: dict[str, AttrSpec] = {}
    unsendable: list[str] = []
    declared = (schema or {}).get("properties") or {}
    for name, ts in sorted(types.items()):
        if len(ts) != 1 or "other" in ts:
            unsendable.append(name)
            continue
        (t,) = ts
        enum = declared.get(name, {}).get("enum") if isinstance(declared.get(name), dict) else None
        values = tuple(str(v) for v in enum) if enum and t == "str" else ()
        specs[name] = AttrSpec(name, t, values)
    return specs, unsendable


def to_cvat(row: Any, *, frame: int, label_id: int | None, spec_ids: dict[str, Any], specs: dict[str, AttrSpec],
            rle: dict[str, Any] | None, source: str,
            skeleton: list[int] | None = None) -> tuple[str, dict[str, Any]] | None:
    """``("shape" | "tag", request dict)`` for an annotation row; None when CVAT cannot hold its geometry.

    ``skeleton``: the CVAT sublabel ids of the class's keypoints, in the class's keypoint order."""
    attrs = dict(row.attributes or {})
    values = [{"spec_id": spec_ids[k], "value": specs[k].to_text(v)}
              for k, v in sorted(attrs.items()) if k in spec_ids and python_type(v) == specs[k].pytype]
    base = {"frame": frame, "label_id": label_id, "group": 0, "source": source, "attributes": values}
    g = row.geometry_type
    if g == "label":
        return "tag", base
    shape = {**base, "occluded": bool(attrs.get("occluded", False)), "outside": False, "z_order": 0,
             "rotation": float(attrs.get("rotation") or 0.0) % 360.0}  # CVAT takes [0, 360)
    if g == "bbox" and row.bbox_w is not None:
        x, y, w, h = row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h
        return "shape", {**shape, "type": "rectangle", "points": [x, y, x + w, y + h]}
    if g == "polyline" and row.polygon:
        return "shape", {**shape, "type": "polyline", "points": list(row.polygon[0])}
    if g == "polygon" and row.polygon and len(row.polygon) == 1:
        return "shape", {**shape, "type": "polygon", "points": list(row.polygon[0])}
    if g in ("polygon", "mask") and rle is not None:
        return "shape", {**shape, "type": "mask", "points": encode_mask(rle)}
    if g == "keypoints" and row.keypoints and skeleton:
        # A skeleton: one point element per named keypoint, its visibility as outside/occluded.
        kp = row.keypoints
        elements = [{"type": "points", "frame": frame, "label_id": sub, "points": [kp[3 * i], kp[3 * i + 1]],
                     "outside": kp[3 * i + 2] == 0, "occluded": kp[3 * i + 2] == 1, "z_order": 0, "rotation": 0.0,
                     "group": 0, "source": source, "attributes": []}
                    for i, sub in enumerate(skeleton) if 3 * i + 2 < len(kp)]
        return "shape", {**shape, "type": "skeleton", "points": [], "elements": elements}
    if g == "keypoints" and row.keypoints:
        kp = row.keypoints
        pts = [c for i in range(0, len(kp), 3) if kp[i + 2] > 0 for c in (kp[i], kp[i + 1])]
        return ("shape", {**shape, "type": "points", "points": pts}) if pts else None
    return None


def encode_mask(rle: dict[str, Any]) -> list[float]:
    """CVAT's mask points: run lengths over the mask's bounding box (first run: zeros), then x1, y1, x2, y2."""
    bitmap = mask_utils.decode(rle).astype(bool)
    ys, xs = np.nonzero(bitmap)
    if len(xs) == 0:
        return [1.0, 0.0, 0.0, 0.0, 0.0]
    x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
    flat = bitmap[y1:y2 + 1, x1:x2 + 1].ravel()
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]
    return [float(r) for r in runs] + [float(x1), float(y1), float(x2), float(y2)]


def decode_mask(points: list[float], width: int, height: int) -> dict[str, Any]:
    """A CVAT mask as compressed COCO RLE over the whole image."""
    *runs, x1, y1, x2, y2 = (round(p) for p in points)
    w, h = x2 - x1 + 1, y2 - y1 + 1
    flat = np.zeros(w * h, dtype=np.uint8)
    pos, value = 0, 0
    for r in runs:
        if value:
            flat[pos:pos + r] = 1
        pos += r
        value ^= 1
    bitmap = np.zeros((height, width), dtype=np.uint8)
    bitmap[y1:y2 + 1, x1:x2 + 1] = flat[:w * h].reshape(h, w)[: max(0, height - y1), : max(0, width - x1)]
    rle = mask_utils.encode(np.asfortranarray(bitmap))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def polygon_mask(polygon: list[list[float]], width: int, height: int) -> dict[str, Any]:
    """A polygon of several parts as one RLE (CVAT's polygons have one part)."""
    rle = mask_utils.merge(mask_utils.frPyObjects(polygon, height, width))
    rle["counts"] = rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"]
    return rle


@dataclass(frozen=True)
class Pulled:
    """A CVAT shape or tag read back as registry fields."""

    geometry_type: str
    bbox: tuple[float, float, float, float] | None
    polygon: list[list[float]] | None
    rle: dict[str, Any] | None
    keypoints: list[float] | None
    area: float | None
    attributes: dict[str, Any] | None


def from_cvat(kind: str, obj: dict[str, Any], specs: dict[str, tuple[str, str]], width: int, height: int,
              skeleton: list[int] | None = None) -> Pulled:
    """Registry fields of a CVAT shape (``kind`` "shape") or tag; ``specs``: spec id -> (name, python type);
    ``skeleton``: a skeleton label's sublabel ids in the class's keypoint order."""
    attrs: dict[str, Any] = {}
    for a in obj.get("attributes") or []:
        name, pytype = specs.get(str(a["spec_id"]), (None, "str"))
        if name is not None:
            attrs[name] = AttrSpec(name, pytype).from_text(a["value"])
    if kind == "tag":
        return Pulled("label", None, None, None, None, None, attrs or None)
    # Always both, as CVAT's own exports write them on every shape.
    attrs["occluded"] = bool(obj.get("occluded"))
    attrs["rotation"] = float(obj.get("rotation") or 0.0)
    t = shape_type(obj)
    pts = [float(p) for p in obj.get("points") or []]
    if t == "rectangle":
        x1, y1, x2, y2 = pts[:4]
        box = (x1, y1, x2 - x1, y2 - y1)
        return Pulled("bbox", box, None, None, None, box[2] * box[3], attrs or None)
    if t in ("polygon", "polyline"):
        xs, ys = pts[0::2], pts[1::2]
        box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        area = _shoelace(xs, ys) if t == "polygon" else 0.0
        return Pulled(t, box, [pts], None, None, area, attrs or None)
    if t == "mask":
        rle = decode_mask(pts, width, height)
        x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
        return Pulled("mask", (x, y, w, h), None, rle, None, float(mask_utils.area(rle)), attrs or None)
    if t == "skeleton":
        # Elements back in the class's keypoint order; outside = not labelled (v 0), occluded = v 1.
        order = {sub: i for i, sub in enumerate(skeleton or [])}
        kps = [0.0] * (3 * len(order))
        for el in obj.get("elements") or []:
            i = order.get(int(el["label_id"]))
            if i is None:
                continue
            x, y = (float(v) for v in (el.get("points") or [0.0, 0.0])[:2])
            kps[3 * i:3 * i + 3] = [0.0, 0.0, 0.0] if el.get("outside") else [x, y, 1.0 if el.get("occluded") else 2.0]
        seen_pts = [(kps[i], kps[i + 1]) for i in range(0, len(kps), 3) if kps[i + 2] > 0]
        sk_box = ((min(x for x, _ in seen_pts), min(y for _, y in seen_pts),
                   max(x for x, _ in seen_pts) - min(x for x, _ in seen_pts),
                   max(y for _, y in seen_pts) - min(y for _, y in seen_pts)) if seen_pts else None)
        attrs.pop("rotation", None)
        return Pulled("keypoints", sk_box, None, None, kps, None, attrs or None)
    if t == "points":
        kps = [c for i in range(0, len(pts), 2) for c in (pts[i], pts[i + 1], 2.0)]
        xs, ys = pts[0::2], pts[1::2]
        kp_box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)) if xs else None
        return Pulled("keypoints", kp_box, None, None, kps, None, attrs or None)
    raise ValueError(f"CVAT shape type {t!r} has no registry geometry")


def shape_type(obj: dict[str, Any]) -> str:
    t = obj.get("type")
    return str(getattr(t, "value", t))


def _shoelace(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    return abs(sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))) / 2.0


def cvat_fingerprint(kind: str, obj: dict[str, Any]) -> str:
    """What an annotator can change of a shape or tag, hashed (ids, z-order and source left out)."""
    core: dict[str, Any] = {"frame": obj["frame"], "label": obj["label_id"],
                            "attrs": sorted((int(a["spec_id"]), str(a["value"])) for a in obj.get("attributes") or [])}
    if kind == "shape":
        core.update(type=shape_type(obj), points=[round(float(p), 4) for p in obj.get("points") or []],
                    occluded=bool(obj.get("occluded")), rotation=round(float(obj.get("rotation") or 0.0), 4),
                    elements=sorted((int(e["label_id"]), [round(float(p), 4) for p in e.get("points") or []],
                                     bool(e.get("outside")), bool(e.get("occluded")))
                                    for e in obj.get("elements") or []))
    return hashlib.sha256(orjson.dumps(core, option=orjson.OPT_SORT_KEYS)).hexdigest()


def track_fingerprint(tr: dict[str, Any]) -> str:
    """A whole track as an annotator can change it: label, attributes, every keyframe (with ``outside``)."""
    core = {"label": tr["label_id"], "attrs": sorted((int(a["spec_id"]), str(a["value"])) for a in tr.get("attributes") or []),
            "shapes": [cvat_fingerprint("shape", {**sh, "label_id": tr["label_id"]}) + str(bool(sh.get("outside")))
                       for sh in sorted(tr.get("shapes") or [], key=lambda x: x["frame"])]}
    return hashlib.sha256(orjson.dumps(core, option=orjson.OPT_SORT_KEYS)).hexdigest()


def registry_fingerprint(row: Any) -> str:
    """The registry side of the same object: its label, geometry and attributes, hashed."""
    core = [row.label_class_id, row.geometry_type, row.bbox_x, row.bbox_y, row.bbox_w, row.bbox_h, row.polygon,
            row.mask_uri, row.keypoints, row.caption, row.attributes]
    return hashlib.sha256(orjson.dumps(core, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)).hexdigest()


def visible_objects(data: dict[str, Any], last_frame: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """CVAT's shapes and tags, and each visible frame of each track as a ``track`` object.

    A track's shapes are its keyframes; CVAT shows the object on the frames between them too, and
    after the last one up to the task's end, unless a keyframe says ``outside``. Rectangles are
    interpolated there as CVAT does (linearly, rotation included) and marked ``keyframe`` False;
    other shapes are taken at their keyframes only.
    """
    out: list[tuple[str, dict[str, Any]]] = [("shape", s) for s in data.get("shapes") or []]
    out += [("tag", g) for g in data.get("tags") or []]
    for tr in data.get("tracks") or []:
        keys = sorted(tr.get("shapes") or [], key=lambda sh: sh["frame"])
        base = {"label_id": tr["label_id"], "track": tr["id"]}
        for i, sh in enumerate(keys):
            if sh.get("outside"):
                continue
            attrs = [*(tr.get("attributes") or []), *(sh.get("attributes") or [])]
            if tr.get("elements"):  # a skeleton track: its points are tracks of their own, read at this frame
                sh = {**sh, "elements": _elements_at(tr["elements"], sh["frame"])}
            out.append(("track", {**sh, **base, "attributes": attrs, "keyframe": True}))
            if str(getattr(sh.get("type"), "value", sh.get("type"))) != "rectangle" or last_frame is None:
                continue
            nxt = keys[i + 1] if i + 1 < len(keys) else None
            stop = nxt["frame"] if nxt is not None else last_frame + 1
            for f in range(sh["frame"] + 1, stop):
                points, rotation = sh["points"], float(sh.get("rotation") or 0.0)
                if nxt is not None and not nxt.get("outside"):
                    k = (f - sh["frame"]) / (nxt["frame"] - sh["frame"])
                    points = [a + (b - a) * k for a, b in zip(sh["points"], nxt["points"], strict=True)]
                    turn = ((float(nxt.get("rotation") or 0.0) - rotation + 180.0) % 360.0) - 180.0
                    rotation = (rotation + turn * k) % 360.0
                out.append(("track", {**sh, **base, "frame": f, "points": points, "rotation": rotation,
                                      "attributes": attrs, "keyframe": False}))
    return out


def _elements_at(elements: list[dict[str, Any]], frame: int) -> list[dict[str, Any]]:
    """A skeleton track's points at ``frame``: each point track's last keyframe at or before it."""
    out = []
    for el in elements:
        keys = [sh for sh in el.get("shapes") or [] if sh["frame"] <= frame]
        if keys:
            sh = max(keys, key=lambda k: k["frame"])
            out.append({"label_id": el["label_id"], "points": sh.get("points") or [0.0, 0.0],
                        "outside": bool(sh.get("outside")), "occluded": bool(sh.get("occluded"))})
    return out
