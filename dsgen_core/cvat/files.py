"""Pre-annotations as an annotation file CVAT imports: "CVAT for images 1.1" XML or "COCO 1.0" JSON.

A push sends its objects through CVAT's annotations API by default (exact values, every shape
CVAT has). ``--format`` asks for a file instead, the way a person would upload one in CVAT's UI:
the same objects, written from the same requests, imported by CVAT's own importer (``CVAT 1.1``
takes the XML, ``COCO 1.0`` the JSON). Coordinates are written in full (Python's shortest exact
repr), not with the 2 decimals CVAT's exporter uses, so nothing is rounded on the way in.

COCO 1.0 has no tags, tracks, polylines, points or skeletons (the push's loss report says so
before anything is sent, and leaves them out).

    path = write_annotations("CVAT for images 1.1", tmp, frames, labels, shapes, tags, tracks)
    task.import_annotations(IMPORTER["CVAT for images 1.1"], path)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from dsgen_core.cvat.shapes import decode_mask

FORMATS = ("json", "CVAT for images 1.1", "COCO 1.0")
# CVAT's importer for each file format (its exporters and importers are named differently).
IMPORTER = {"CVAT for images 1.1": "CVAT 1.1", "COCO 1.0": "COCO 1.0"}
_COCO_SHAPES = ("rectangle", "polygon", "mask")


class Labels:
    """Names CVAT knows a task's labels by: label id -> name, attribute spec id -> name, sublabel id -> name."""

    def __init__(self, labels: list[dict[str, Any]]) -> None:
        self.labels = labels
        self.name: dict[Any, str] = {lb["id"]: lb["name"] for lb in labels}
        self.attr = {a["id"]: a["name"] for lb in labels for a in lb.get("attributes") or []}
        self.sub = {s["id"]: s["name"] for lb in labels for s in lb.get("sublabels") or []}
        self.ids = [lb["id"] for lb in labels]


def write_annotations(fmt: str, folder: Path, frames: list[tuple[str, int, int]], labels: Labels,
                      shapes: list[dict[str, Any]], tags: list[dict[str, Any]],
                      tracks: list[dict[str, Any]], numbers: list[int] | None = None) -> Path:
    """The file for ``fmt`` in ``folder``; ``frames`` are (name, width, height) in task order,
    ``numbers`` their numbers in the file (a video's frame numbers; default: the task's)."""
    if fmt == "CVAT for images 1.1":
        path = folder / "annotations.xml"
        path.write_text(cvat_xml(frames, labels, shapes, tags, tracks, numbers=numbers), encoding="utf-8")
        return path
    if fmt == "COCO 1.0":
        path = folder / "instances_default.json"
        path.write_text(json.dumps(_coco(frames, labels, shapes), ensure_ascii=False), encoding="utf-8")
        return path
    raise ValueError(f"no annotation file for format {fmt!r}")


def _num(v: float) -> str:
    return repr(float(v))


def _attrs(labels: Labels, values: list[dict[str, Any]]) -> str:
    return "".join(f"<attribute name={quoteattr(labels.attr[v['spec_id']])}>{_text(v['value'])}</attribute>"
                   for v in values)


def _text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _shape_xml(labels: Labels, s: dict[str, Any], extra: str = "", *, label: bool = True) -> str:
    head = f" label={quoteattr(labels.name[s['label_id']])}" if label else ""
    head += (f' source={quoteattr(s.get("source", "manual"))} occluded="{int(bool(s.get("occluded")))}"'
             f' z_order="{int(s.get("z_order") or 0)}"{extra}')
    if s.get("rotation"):  # CVAT's importer reads it on every shape (its exporter writes it on boxes only)
        head += f' rotation="{_num(s["rotation"])}"'
    pts = s["points"]
    t = s["type"]
    if t == "rectangle":
        geo = f' xtl="{_num(pts[0])}" ytl="{_num(pts[1])}" xbr="{_num(pts[2])}" ybr="{_num(pts[3])}"'
        return f"<box{head}{geo}>{_attrs(labels, s.get('attributes') or [])}</box>"
    if t in ("polygon", "polyline", "points"):
        geo = ' points="' + ";".join(f"{_num(pts[i])},{_num(pts[i + 1])}" for i in range(0, len(pts), 2)) + '"'
        return f"<{t}{head}{geo}>{_attrs(labels, s.get('attributes') or [])}</{t}>"
    if t == "mask":
        left, top, right, bottom = (int(v) for v in pts[-4:])
        rle = ", ".join(str(int(v)) for v in pts[:-4])
        geo = f' rle="{rle}" left="{left}" top="{top}" width="{right - left + 1}" height="{bottom - top + 1}"'
        return f"<mask{head}{geo}>{_attrs(labels, s.get('attributes') or [])}</mask>"
    if t == "skeleton":
        inner = "".join(
            f"<points label={quoteattr(labels.sub[e['label_id']])} source={quoteattr(e.get('source', 'manual'))}"
            f' occluded="{int(bool(e.get("occluded")))}" outside="{int(bool(e.get("outside")))}"'
            f' points="{_num(e["points"][0])},{_num(e["points"][1])}"></points>' for e in s.get("elements") or [])
        return f"<skeleton{head}>{inner}{_attrs(labels, s.get('attributes') or [])}</skeleton>"
    raise ValueError(f"no CVAT XML element for a {t} shape")


def cvat_xml(frames: list[tuple[str, int, int]], labels: Labels, shapes: list[dict[str, Any]],
             tags: list[dict[str, Any]], tracks: list[dict[str, Any]], *, meta: bool = False,
             subsets: list[str | None] | None = None, numbers: list[int] | None = None) -> str:
    """A "CVAT for images 1.1" document; ``meta``: with the labels (types, attributes, skeletons) as
    CVAT's exports write them, which CVAT's own importer ignores and dsgen's reads; ``subsets``:
    each frame's subset, as a project export names it."""
    by_frame: dict[int, list[str]] = {}
    for s in shapes:
        by_frame.setdefault(s["frame"], []).append(_shape_xml(labels, s))
    for tg in tags:
        by_frame.setdefault(tg["frame"], []).append(
            f"<tag label={quoteattr(labels.name[tg['label_id']])} source={quoteattr(tg.get('source', 'manual'))}>"
            f"{_attrs(labels, tg.get('attributes') or [])}</tag>")
    out = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "<version>1.1</version>"]
    if meta:
        out.append(_meta(labels))
    for i, (name, w, h) in enumerate(frames):
        sub = subsets[i] if subsets else None
        subset = f" subset={quoteattr(sub)}" if sub else ""
        out.append(f'<image id="{numbers[i] if numbers else i}" name={quoteattr(name)} width="{w}" height="{h}"{subset}>')
        out.extend(by_frame.get(i, []))
        out.append("</image>")
    for k, tr in enumerate(tracks):
        out.append(f"<track id={quoteattr(str(tr.get('id', k)))} label={quoteattr(labels.name[tr['label_id']])} "
                   f"source={quoteattr(tr.get('source', 'manual'))}>")
        for sh in tr["shapes"]:
            # Track-level attributes are written on each shape: the XML has no other place for them.
            full = {**sh, "label_id": tr["label_id"], "attributes": tr.get("attributes") or []}
            number = numbers[sh["frame"]] if numbers else sh["frame"]
            out.append(_shape_xml(labels, full, f' frame="{number}" keyframe="1" '
                                                f'outside="{int(bool(sh.get("outside")))}"', label=False))
        out.append("</track>")
    out.append("</annotations>")
    return "\n".join(out) + "\n"


def _meta(labels: Labels) -> str:
    def el(tag: str, text: Any) -> str:
        return f"<{tag}>{_text(str(text))}</{tag}>"

    out = ["<meta><task><mode>annotation</mode><labels>"]
    for lb in labels.labels:
        attrs = "".join(
            "<attribute>" + el("name", a["name"]) + el("mutable", a.get("mutable", False)) + el("input_type",
            a.get("input_type", "text")) + el("default_value", a.get("default_value", "")) + el(
            "values", "\n".join(a.get("values") or [])) + "</attribute>" for a in lb.get("attributes") or [])
        svg = el("svg", lb["svg"]) if lb.get("svg") else ""
        out.append("<label>" + el("name", lb["name"]) + el("type", lb.get("type", "any")) + svg
                   + f"<attributes>{attrs}</attributes></label>")
        for sub in lb.get("sublabels") or []:
            out.append("<label>" + el("name", sub["name"]) + el("type", sub.get("type", "points"))
                       + "<attributes></attributes>" + el("parent", lb["name"]) + "</label>")
    out.append("</labels></task></meta>")
    return "".join(out)


def _coco(frames: list[tuple[str, int, int]], labels: Labels, shapes: list[dict[str, Any]]) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    cat = {lid: k + 1 for k, lid in enumerate(labels.ids)}
    anns: list[dict[str, Any]] = []
    for s in shapes:
        if s["type"] not in _COCO_SHAPES:
            continue
        _name, w, h = frames[s["frame"]]
        pts = s["points"]
        seg: Any
        if s["type"] == "rectangle":
            x0, y0, x1, y1 = pts
            seg, box, crowd = [], [x0, y0, x1 - x0, y1 - y0], 0
            area = (x1 - x0) * (y1 - y0)
        elif s["type"] == "polygon":
            xs, ys = pts[0::2], pts[1::2]
            seg, crowd = [list(pts)], 0
            box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
            area = float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects([list(pts)], h, w))))
        else:
            rle = decode_mask(pts, w, h)
            seg = {"size": [h, w], "counts": rle["counts"].decode() if isinstance(rle["counts"], bytes)
                   else rle["counts"]}
            box, crowd, area = [float(v) for v in mask_utils.toBbox(rle)], 1, float(mask_utils.area(rle))
        attributes: dict[str, Any] = {labels.attr[v["spec_id"]]: v["value"] for v in s.get("attributes") or []}
        attributes["occluded"] = bool(s.get("occluded"))
        if s.get("rotation"):
            attributes["rotation"] = float(s["rotation"])
        anns.append({"id": len(anns) + 1, "image_id": s["frame"] + 1, "category_id": cat[s["label_id"]],
                     "segmentation": seg, "area": area, "bbox": box, "iscrowd": crowd, "attributes": attributes})
    return {"licenses": [{"name": "", "id": 0, "url": ""}],
            "info": {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""},
            "categories": [{"id": cat[lid], "name": labels.name[lid], "supercategory": ""} for lid in labels.ids],
            "images": [{"id": i + 1, "width": w, "height": h, "file_name": name, "license": 0, "flickr_url": "",
                        "coco_url": "", "date_captured": 0} for i, (name, w, h) in enumerate(frames)],
            "annotations": anns}
