"""CVAT's own XML: "CVAT for images 1.1" and "CVAT for video 1.1", in and out of the registry.

Import (``dsgen import cvat PATH``) reads an ``annotations.xml`` (or any ``*.xml``) alone or in an
export folder with its ``images/``: the labels of its ``<meta>`` (attribute types, skeletons),
each image (``subset`` becomes the ``source_split``), boxes, polygons, polylines, points, masks,
skeletons and tags, and tracks: one object per frame a track is visible on, rectangles
interpolated between keyframes as CVAT does, in one registry track. A video export's frames are
its images ``frame_000042.*``, numbered as the XML's ``frame`` attributes are (its start frame and
step). Shapes the registry cannot hold (ellipses, cuboids) are errors naming the shape, so the
import is all-or-nothing unless ``--skip-invalid``. Each object keeps what CVAT wrote beside its
geometry (``source``, ``z_order``, ``group_id``) in ``extra["cvat"]``.

Export (``dsgen export cvat TAG OUT``) writes a frozen version as "CVAT for images 1.1"
(``annotations.xml`` with its labels in ``<meta>``, ``images/``), which both CVAT and this
importer read; registry tracks go as ``<track>`` elements with their keyframes.

    lb = read_cvat_xml(Path("export/annotations.xml"), report)
    result = ingest_layout(session, project, lb, storage=storage)
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.cvat.files import Labels, cvat_xml
from dsgen_core.cvat.shapes import AttrSpec, attribute_specs, from_cvat, polygon_mask, to_cvat, visible_objects
from dsgen_core.errors import DsgenError
from dsgen_core.formats.layout import LayoutBatch, find_image
from dsgen_core.formats.report import ValidationReport
from dsgen_core.formats.version_export import place_image, staged_dir
from dsgen_core.registry.ingest import ObjectRecord
from dsgen_core.registry.schema import DatasetVersionAnnotation, DatasetVersionClass, Project
from dsgen_core.storage.masks import MaskStore
from dsgen_core.versions.lifecycle import get_version
from dsgen_core.versions.members import version_members

NAMESPACE = "cvat"
_SHAPES = {"box": "rectangle", "polygon": "polygon", "polyline": "polyline", "points": "points", "mask": "mask",
           "skeleton": "skeleton"}
_UNSUPPORTED = ("ellipse", "cuboid")
_TYPES = {"checkbox": "bool", "number": "number"}  # CVAT input types -> the attribute's Python type; others text


def read_cvat_xml(path: Path, report: ValidationReport) -> LayoutBatch:
    """Read a CVAT XML file (or the export folder holding one) into a layout batch."""
    path = path.resolve()
    if path.is_dir():
        xmls = sorted(path.glob("*.xml"))
        if len(xmls) != 1:
            raise DsgenError(f"{path}: a CVAT export folder holds one *.xml file, found {len(xmls)}")
        xml, root = xmls[0], path
    elif path.is_file():
        xml, root = path, path.parent
    else:
        raise DsgenError(f"{path}: no such file or folder")
    data = xml.read_bytes()
    try:
        doc = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DsgenError(f"{xml}: not XML: {exc}") from None
    if doc.tag != "annotations":
        raise DsgenError(f"{xml}: not CVAT XML (its root is <{doc.tag}>, not <annotations>)")
    lb = LayoutBatch(root, NAMESPACE, report)
    lb.text(data)
    _Reader(lb, doc, xml, root).read()
    return lb


class _Reader:
    def __init__(self, lb: LayoutBatch, doc: Any, xml: Path, root: Path) -> None:
        self.lb, self.doc, self.xml, self.root = lb, doc, xml, root
        self.file = xml.name
        self.types: dict[str, dict[str, str]] = {}  # label -> attribute -> python type
        self.subs: dict[str, list[str]] = defaultdict(list)  # skeleton label -> its points' labels, in order
        self.frames: dict[int, str] = {}  # frame number -> image key
        self.sizes: dict[int, tuple[int, int]] = {}
        self.data: dict[str, list[Any]] = {"shapes": [], "tags": [], "tracks": []}

    def read(self) -> None:
        meta = self.doc.find("meta")
        task = None if meta is None else next((t for t in (meta.find(k) for k in ("task", "project", "job"))
                                               if t is not None), None)
        self._labels(meta)
        images = self.doc.findall("image")
        if images:
            for im in images:
                self._image(im)
            last = max(self.frames) if self.frames else 0
        else:  # a video: frames start_frame, +step, ... named frame_NNNNNN
            start = int(_text(task, "start_frame") or 0)
            stop = _text(task, "stop_frame")
            step = int((_text(task, "frame_filter") or "step=1").partition("=")[2] or 1)
            size = task.find("original_size") if task is not None else None
            wh = (int(_text(size, "width") or 0), int(_text(size, "height") or 0)) if size is not None else (0, 0)
            numbers = {int(s.get("frame")) for s in self.doc.iter() if s.get("frame") is not None}
            last_abs = int(stop) if stop is not None else max(numbers or {start})
            self.video = (start, step)
            for k, f in enumerate(range(start, last_abs + 1, step)):
                self._frame(k, f"frame_{f:06d}", wh, None)
            last = len(self.frames) - 1
        for im in images:
            try:
                frame = int(im.get("id"))
            except (TypeError, ValueError):
                continue  # reported by _image
            for el in im:
                self._element(el, frame)
        for k, tr in enumerate(self.doc.findall("track")):
            self._track(tr, k)
        self._objects(last)

    # -- meta

    def _labels(self, meta: Any) -> None:
        if meta is None:
            return
        for lab in meta.iter("label"):
            name = _text(lab, "name")
            if name is None:
                continue
            parent = _text(lab, "parent")
            if parent:
                self.subs[parent].append(name)
                continue
            attrs = {}
            for a in lab.iter("attribute"):
                an = _text(a, "name")
                if an is not None:
                    attrs[an] = _TYPES.get(_text(a, "input_type") or "text", "str")
            self.types[name] = attrs
            extra = {"type": _text(lab, "type") or "any", "attributes": [
                {k: v for k, v in (("name", _text(a, "name")), ("input_type", _text(a, "input_type")),
                                   ("mutable", _text(a, "mutable")), ("default_value", _text(a, "default_value")),
                                   ("values", (_text(a, "values") or "").split("\n"))) if v is not None}
                for a in lab.iter("attribute") if _text(a, "name") is not None]}
            svg = _text(lab, "svg")
            if svg:
                extra["svg"] = svg
            self.lb.cls(name, extra={NAMESPACE: extra})
        for parent, names in self.subs.items():
            if parent in self.lb.classes:
                svg = ((self.lb.classes[parent].extra or {}).get(NAMESPACE) or {}).get("svg") or ""
                self.lb.classes[parent] = _with_keypoints(self.lb.classes[parent], names, svg)

    # -- frames

    def _image(self, im: Any) -> None:
        name = im.get("name") or ""
        try:
            frame = int(im.get("id"))
            wh = (int(im.get("width")), int(im.get("height")))
        except (TypeError, ValueError):
            self.lb.report.error(self.file, f"image {name!r}", "id", "an <image> needs numeric id, width and height")
            return
        self._frame(frame, name, wh, im.get("subset"))

    def _frame(self, frame: int, name: str, wh: tuple[int, int], subset: str | None) -> None:
        images = self.root / "images"
        candidates = [images / subset / name, images / name, self.root / name] if subset else [images / name,
                                                                                               self.root / name]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None and not Path(name).suffix:
            found = find_image(images, name)
        key = self.lb.image(found or candidates[0], split=subset or None, required=found is not None)
        if key is None:
            return
        self.frames[frame] = key
        self.lb.extra[key] = {NAMESPACE: {"name": name}}  # the frame's name in CVAT, which an export writes back
        self.sizes[frame] = self.lb.size(key) if key in self.lb.infos else wh
        self.lb.given_sizes[key] = self.sizes[frame]

    # -- shapes

    def _shape(self, el: Any, frame: int, label: str) -> dict[str, Any] | None:
        where = f"frame {frame} <{el.tag} label={label!r}>"
        if el.tag in _UNSUPPORTED:
            self.lb.report.error(self.file, where, el.tag, f"a CVAT {el.tag} has no registry geometry; not imported")
            return None
        try:
            obj: dict[str, Any] = {
                "type": _SHAPES[el.tag], "frame": frame, "label": label, "occluded": el.get("occluded") == "1",
                "outside": el.get("outside") == "1", "rotation": float(el.get("rotation") or 0.0),
                "attributes": [{"spec_id": a.get("name"), "value": a.text or ""} for a in el.findall("attribute")],
                "extra": _kept(el)}
            if el.tag == "box":
                obj["points"] = [float(el.get(k)) for k in ("xtl", "ytl", "xbr", "ybr")]
            elif el.tag == "mask":
                left, top, w, h = (int(el.get(k)) for k in ("left", "top", "width", "height"))
                obj["points"] = [float(v) for v in el.get("rle").split(",")] + [left, top, left + w - 1, top + h - 1]
            elif el.tag == "skeleton":
                order = {n: i for i, n in enumerate(self.subs.get(label, []))}
                obj["points"] = []
                obj["elements"] = [{"label_id": order[p.get("label")], "points": _points(p.get("points")),
                                    "outside": p.get("outside") == "1", "occluded": p.get("occluded") == "1"}
                                   for p in el.findall("points") if p.get("label") in order]
            else:
                obj["points"] = _points(el.get("points"))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            self.lb.report.error(self.file, where, el.tag, f"malformed: {exc!r}")
            return None
        return obj

    def _element(self, el: Any, frame: int) -> None:
        label = el.get("label")
        if el.tag == "tag":
            self.data["tags"].append({"frame": frame, "label": label, "attributes": [
                {"spec_id": a.get("name"), "value": a.text or ""} for a in el.findall("attribute")],
                "extra": _kept(el)})
        elif el.tag in _SHAPES or el.tag in _UNSUPPORTED:
            obj = self._shape(el, frame, label or "")
            if obj is not None:
                self.data["shapes"].append(obj)

    def _track(self, tr: Any, k: int) -> None:
        label = tr.get("label") or ""
        shapes = []
        for el in tr:
            try:
                frame = self._frame_of(int(el.get("frame")))
            except (TypeError, ValueError) as exc:
                self.lb.report.error(self.file, f"track {tr.get('id', k)}", "frame",
                                     str(exc) if "task's" in str(exc) else "a track shape needs a numeric frame")
                continue
            obj = self._shape(el, frame, label)
            if obj is not None:
                shapes.append({**obj, "keyframe": el.get("keyframe", "1") == "1"})
        if shapes:
            self.data["tracks"].append({"id": tr.get("id", str(k)), "label": label, "attributes": [],
                                        "shapes": shapes, "extra": _kept(tr)})

    def _frame_of(self, number: int) -> int:
        """A track shape's frame: in a video export the video's frame number, else the image id."""
        video = getattr(self, "video", None)
        if not video:
            return number
        k, off = divmod(number - video[0], video[1])
        if off:
            raise ValueError(f"frame {number} is not one of the task's (from {video[0]} every {video[1]})")
        return k

    def _objects(self, last: int) -> None:
        # A track whose file lists the frames between its keyframes too (CVAT for video does) is taken
        # as written; one of keyframes only is shown as CVAT shows it (rectangles interpolated).
        explicit = [tr for tr in self.data["tracks"] if not all(sh["keyframe"] for sh in tr["shapes"])]
        keyed = [tr for tr in self.data["tracks"] if all(sh["keyframe"] for sh in tr["shapes"])]
        found = visible_objects({"shapes": [{**s, "label_id": s["label"]} for s in self.data["shapes"]],
                                 "tags": [{**g, "label_id": g["label"]} for g in self.data["tags"]],
                                 "tracks": [{**tr, "label_id": tr["label"]} for tr in keyed]}, last)
        found += [("track", {**sh, "label_id": tr["label"], "track": tr["id"]})
                  for tr in explicit for sh in tr["shapes"] if not sh.get("outside")]
        seen: dict[tuple[int, str], int] = defaultdict(int)
        for kind, obj in sorted(found, key=lambda ko: ko[0] == "track"):
            frame, label = obj["frame"], str(obj["label_id"])
            # An object is the k-th shape, tag or track on its image: what an export of these objects writes
            # in the same places, so importing it again finds them (the file's ids are not kept by CVAT).
            k = seen[(frame, kind)]
            seen[(frame, kind)] += 1
            key = self.frames.get(frame)
            where = f"frame {frame} {obj.get('type', 'tag')} {label!r}"
            if key is None:
                self.lb.report.error(self.file, where, "frame", f"frame {frame} is not an image of the file")
                continue
            if label and label not in self.lb.classes:
                self.lb.cls(label)  # a label the meta did not list (an annotation-only file)
            types = self.types.get(label, {})
            specs = {a["spec_id"]: (a["spec_id"], types.get(a["spec_id"], "str")) for a in obj.get("attributes") or []}
            w, h = self.sizes.get(frame, (0, 0))
            try:
                p = from_cvat("tag" if kind == "tag" else "shape", obj, specs, w, h,
                              skeleton=list(range(len(self.subs.get(label, [])))))
            except (ValueError, IndexError) as exc:
                self.lb.report.error(self.file, where, "points", f"cannot be read: {exc}")
                continue
            attrs = dict(p.attributes or {})
            if kind == "track":
                attrs.update(track_id=str(obj["track"]), keyframe=bool(obj.get("keyframe")))
            extra = dict(obj.get("extra") or {})
            self.lb.objects.append(ObjectRecord(
                len(self.lb.objects), f"{key}#{kind}{k}", key, label or None, p.geometry_type, p.bbox, p.polygon, p.rle, p.keypoints,
                len(p.keypoints) // 3 if p.keypoints else None, None, p.area, False, attrs or None,
                {NAMESPACE: extra} if extra else None, None, f"{self.file}: {where}"))


def _kept(el: Any) -> dict[str, str]:
    """What CVAT wrote beside the geometry that the registry has no column for, when it is not the default."""
    return {k: el.get(k) for k in ("source", "z_order", "group_id") if el.get(k) not in (None, "0", "", "manual")}


def _points(text: str | None) -> list[float]:
    return [float(v) for pair in (text or "").split(";") if pair for v in pair.split(",")]


def _text(el: Any, tag: str) -> str | None:
    if el is None:
        return None
    found = el.find(tag)
    return None if found is None else (found.text or "")


def _with_keypoints(cls: Any, names: list[str], svg: str) -> Any:
    from dataclasses import replace

    ids = {m[0]: m[1] for m in re.findall(r'data-element-id="(\d+)"[^>]*data-label-name="([^"]*)"', svg)}
    pos = {n: i + 1 for i, n in enumerate(names)}
    edges = [[pos[ids[a]], pos[ids[b]]] for a, b in re.findall(r'data-node-from="(\d+)"[^>]*data-node-to="(\d+)"', svg)
             if ids.get(a) in pos and ids.get(b) in pos]
    return replace(cls, keypoint_spec={"keypoints": names, "skeleton": edges})


# --------------------------------------------------------------------------- export


def export_cvat(session: Session, project: Project, tag: str, out_dir: Path, *, masks: MaskStore) -> dict[str, int]:
    """A frozen version as "CVAT for images 1.1": ``annotations.xml`` (labels in its meta) and ``images/``."""
    from dsgen_core.cvat.push import cvat_tracks

    v = get_version(session, project, tag)
    if v.status != "frozen":
        raise DsgenError(f"version {tag!r} is not frozen: freeze it first (dsgen version freeze {tag})")
    members = version_members(session, v)
    rows: dict[int, list[Any]] = defaultdict(list)
    for r in session.scalars(select(DatasetVersionAnnotation).where(DatasetVersionAnnotation.dataset_version_id == v.id)
                             .order_by(DatasetVersionAnnotation.annotation_id)):
        rows[r.asset_id].append(r)
    classes = {c.label_class_id: c for c in session.scalars(
        select(DatasetVersionClass).where(DatasetVersionClass.dataset_version_id == v.id))}
    specs: dict[int | None, dict[str, AttrSpec]] = {
        cid: attribute_specs([r.attributes for rs in rows.values() for r in rs if r.label_class_id == cid])[0]
        for cid in [*classes, None]}
    kinds: dict[int, set[str]] = defaultdict(set)
    for rs in rows.values():
        for r in rs:
            if r.label_class_id is not None:
                kinds[r.label_class_id].add(r.geometry_type)
    # A CVAT skeleton label holds skeletons only: a class with named keypoints is one when all its objects are keypoints.
    labels, sub_ids = _labels(classes, specs, {cid for cid, k in kinds.items() if k == {"keypoints"}})
    names = _frame_names(members)
    frames = [(n, m.asset.width or 0, m.asset.height or 0) for n, m in zip(names, members, strict=True)]
    sent: list[tuple[str, dict[str, Any], Any]] = []
    tracked: dict[int, list[tuple[dict[str, Any], Any]]] = defaultdict(list)
    lost = 0
    for frame, m in enumerate(members):
        for r in rows.get(m.asset.id, []):
            rle = masks.get(r.mask_uri) if r.mask_uri else None
            if rle is None and r.geometry_type == "polygon" and r.polygon and len(r.polygon) > 1 and m.asset.width:
                rle = polygon_mask(r.polygon, m.asset.width, m.asset.height)
            kept = (r.extra or {}).get(NAMESPACE) or {}
            cid = r.label_class_id if r.label_class_id in classes else None  # unlabelled: label="", as CVAT XML can
            out = to_cvat(
                r, frame=frame, label_id=cid, spec_ids={n: n for n in specs.get(cid, {})},
                specs=specs.get(cid, {}), rle=rle,
                source=kept.get("source") or ("auto" if r.source == "model" else "manual"),
                skeleton=sub_ids.get(cid) if cid is not None else None)
            if out is None:
                lost += 1
                continue
            if kept.get("z_order"):
                out[1]["z_order"] = int(kept["z_order"])
            sent.append((out[0], out[1], r))
            if out[0] == "shape" and r.track_id is not None:
                tracked[r.track_id].append((out[1], r))
    tracks = cvat_tracks(tracked, len(members))
    taken: set[str] = set()
    for req, by_frame in tracks:  # the source's own track id where its objects agree on a number not yet used
        ids = {str((r.attributes or {}).get("track_id")) for r in by_frame.values()}
        if len(ids) == 1 and (tid := ids.pop()).isdigit() and tid not in taken:
            req["id"] = tid
            taken.add(tid)
    spare = (str(n) for n in range(len(tracks) + len(taken) + 1) if str(n) not in taken)
    for req, _by_frame in tracks:
        req.setdefault("id", next(spare))
    in_tracks = {id(r) for _req, by_frame in tracks for r in by_frame.values()}
    shapes = [req for kind, req, r in sent if kind == "shape" and id(r) not in in_tracks]
    tags = [req for kind, req, _r in sent if kind == "tag"]
    with staged_dir(out_dir, ("annotations.xml", "images")) as tmp:
        (tmp / "images").mkdir()
        for n, m in zip(names, members, strict=True):
            if m.asset.storage_uri:
                dest = tmp / "images" / n
                dest.parent.mkdir(parents=True, exist_ok=True)
                place_image(m.asset.storage_uri, dest)
        described = Labels(labels)
        described.name[None] = ""  # objects without a class
        (tmp / "annotations.xml").write_text(cvat_xml(frames, described, shapes, tags,
                                                      [req for req, _m in tracks], meta=True,
                                                      subsets=[m.split for m in members]), encoding="utf-8")
    return {"images": len(members), "objects": len(sent), "tracks": len(tracks), "not_written": lost}


def _frame_names(members: list[Any]) -> list[str]:
    """Each image's name as CVAT named it when it came from CVAT XML (kept if it is a safe relative path and
    unique), else its name in the version's exports."""
    out: list[str] = []
    used: set[str] = set()
    for m in members:
        kept = ((m.asset.extra or {}).get(NAMESPACE) or {}).get("name")
        parts = str(kept).replace("\\", "/").split("/") if kept else []
        ok = bool(kept) and not str(kept).startswith("/") and ".." not in parts and "" not in parts and kept not in used
        name = str(kept) if ok else m.name
        if name in used:  # the version's own name, taken by another image's kept CVAT name
            stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
            name = f"{stem}_{m.asset.id}{dot}{ext}"
        used.add(name)
        out.append(name)
    return out


def _labels(classes: dict[int, Any], specs: dict[int | None, dict[str, AttrSpec]], skeletons: set[int]
            ) -> tuple[list[dict[str, Any]], dict[int, list[int]]]:
    """CVAT label descriptions of the classes (ids are the class ids; a skeleton's points get ids of their own)."""
    labels: list[dict[str, Any]] = []
    sub_ids: dict[int, list[int]] = {}
    next_sub = -1
    for cid, c in sorted(classes.items()):
        kept = (c.extra or {}).get(NAMESPACE) or {}
        declared = {a.get("name"): a for a in kept.get("attributes") or []}
        attrs = []
        for n, spec in specs[cid].items():
            a = {"id": n, **spec.request()}
            if n in declared:  # as the source declared it (its input type, values and default)
                a.update({k: declared[n][k] for k in ("input_type", "default_value", "values") if declared[n].get(k)})
            elif spec.pytype in ("int", "float"):
                a["input_type"] = "number"
            attrs.append(a)
        kind = kept.get("type", "any")
        lb: dict[str, Any] = {"id": cid, "name": c.key, "type": "any" if kind == "skeleton" else kind,
                              "attributes": attrs}
        names = [str(n) for n in (c.keypoint_spec or {}).get("keypoints") or []]
        if names and cid in skeletons:
            from dsgen_core.cvat.push import skeleton_svg

            subs: list[dict[str, Any]] = []
            for n in names:
                subs.append({"id": next_sub, "name": n, "type": "points"})
                next_sub -= 1
            lb.update(type="skeleton", sublabels=subs, svg=kept.get("svg") or skeleton_svg(
                names, (c.keypoint_spec or {}).get("skeleton") or []))
            sub_ids[cid] = [s["id"] for s in subs]
        labels.append(lb)
    return labels, sub_ids


