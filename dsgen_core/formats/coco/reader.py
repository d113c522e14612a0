"""Reading COCO files of every flavour into one validated, normalised form.

Flavours met in the wild: instances (polygons, multi-part polygons, compressed and
uncompressed RLE, iscrowd), person keypoints, captions, image-level labels, image_info only,
stuff, panoptic (segments in PNGs), results lists (``score`` = model confidence), SA-1B
per-image files (``image`` instead of ``images``), and CVAT "COCO 1.0" exports with
``attributes`` {occluded, rotation, track_id, keyframe, custom}. Nothing the file says is
dropped: unknown keys are kept in ``extra`` so an export can give them back.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import orjson

from dsgen_core.errors import DsgenError
from dsgen_core.formats import limits
from dsgen_core.formats.images import open_image
from dsgen_core.formats.report import ValidationReport
from dsgen_core.registry.ingest import HINTS, ObjectRecord
from dsgen_core.storage.masks import polygon_area_bbox, rle_area_bbox, to_compressed_rle

IMAGE_KEYS = {"id", "width", "height", "file_name"}
RECORD_LISTS = ("images", "categories", "annotations", "image")  # everything else at the top is the header
CATEGORY_KEYS = {"id", "name", "supercategory", "keypoints", "skeleton"}
_BOX_KEYS = frozenset({"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "attributes"})
_PRIVATE = frozenset({"_extra", "_where"})  # what the reader itself adds to records it builds
ANNOTATION_KEYS = {
    "id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd", "attributes",
    "keypoints", "num_keypoints", "score", "caption",
}


@dataclass
class CocoImage:
    index: int
    coco_id: int
    file_name: str
    width: int | None
    height: int | None
    extra: dict[str, Any] | None
    source_key: str = ""  # the image's identity in a project: its path (see :func:`source_path`)

    @property
    def record(self) -> str:
        return f"images[{self.index}] (id={self.coco_id}, file_name={self.file_name!r})"


@dataclass
class CocoCategory:
    coco_id: int
    name: str
    supercategory: str | None
    keypoints: list[str] | None
    skeleton: list[Any] | None
    extra: dict[str, Any] | None


# One normalised object (geometry checked, area/bbox from pycocotools where there is a shape),
# in the ingest's own record type: the reader translates, the ingest writes.
CocoAnnotation = ObjectRecord


@dataclass
class CocoFile:
    path: Path
    kind: str  # dataset | results | panoptic | sa1b
    images: list[CocoImage]
    categories: list[CocoCategory]
    annotations: list[CocoAnnotation]
    header: dict[str, Any]
    report: ValidationReport
    raw_bytes_sha256: str = ""
    raw_annotation_count: int = 0
    raw_image_count: int = 0


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _outside(im: CocoImage | None, xs: list[float], ys: list[float]) -> str | None:
    """Why coordinates cannot belong to the image (far outside it, or not finite), or None."""
    if not xs:
        return None
    for values, extent, axis in ((xs, im.width if im else None, "x"), (ys, im.height if im else None, "y")):
        low, high = limits.coordinate_range(extent)
        lo, hi = min(values), max(values)
        if not (low <= lo and hi <= high):
            where = f"the {extent}-pixel {'width' if axis == 'x' else 'height'}" if extent else "any image"
            return f"has {axis} coordinates from {lo:g} to {hi:g}, far outside {where}"
    return None


def _is_box(b: Any) -> bool:
    """Hot path of every import: four finite numbers, checked without a generator."""
    if type(b) is not list or len(b) != 4:
        return False
    x, y, w, h = b
    tx, ty, tw, th = type(x), type(y), type(w), type(h)
    return (
        (tx is float or tx is int) and (ty is float or ty is int) and (tw is float or tw is int)
        and (th is float or th is int) and x - x == 0 and y - y == 0 and w - w == 0 and h - h == 0
    )


def source_path(file_name: str) -> str | None:
    """The image's path as an identity: '/'-separated, no '.' parts; None when it leaves its folder
    (absolute, a drive, or '..'), which no image folder can hold."""
    if not (file_name.startswith(("/", "./")) or "\\" in file_name or "//" in file_name or ".." in file_name
            or "/./" in file_name or file_name.endswith(("/", "/.")) or ":" in file_name or file_name in (".", "")):
        return file_name  # already the canonical form: the common case, without pathlib's cost
    rel = PurePosixPath(file_name.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or (rel.parts and ":" in rel.parts[0]) or not rel.parts:
        return None
    return str(rel)


def load_json(path: Path) -> tuple[Any, bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DsgenError(f"{path}: file not found") from None
    except OSError as exc:
        raise DsgenError(f"{path}: cannot read ({exc.strerror})") from None
    try:  # a UTF-8 byte-order mark (Windows editors write one) is not content: RFC 8259 lets readers skip it
        return orjson.loads(data.removeprefix(b"\xef\xbb\xbf")), data
    except orjson.JSONDecodeError as exc:
        raise DsgenError(f"{path}: bad JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def read_coco(path: Path, *, panoptic_dir: Path | None = None) -> CocoFile:
    """Parse and validate; problems go to the report, never half into the result."""
    import hashlib

    doc, raw = load_json(path)
    report = ValidationReport()
    fname = str(path)
    header: dict[str, Any] = {}
    kind = "dataset"
    # None until checked: a COCO file may lack any of the three lists
    raw_images: list[Any] | None
    raw_categories: list[Any] | None
    raw_annotations: list[Any] | None
    if isinstance(doc, list):
        kind = "results"
        raw_images = []
        raw_categories = []
        raw_annotations = doc
    elif isinstance(doc, dict):
        if "image" in doc and "images" not in doc:
            kind = "sa1b"
            img = dict(doc["image"]) if isinstance(doc["image"], dict) else {}
            if "id" not in img and "image_id" in img:
                img["id"] = img.pop("image_id")
            raw_images = [img]
            raw_categories = []
            raw_annotations = [dict(a, image_id=a.get("image_id", img.get("id"))) for a in doc.get("annotations") or []]
        else:
            raw_images = doc.get("images")
            raw_categories = doc.get("categories")
            raw_annotations = doc.get("annotations")
            for key, label in (("images", raw_images), ("categories", raw_categories), ("annotations", raw_annotations)):
                if label is not None and not isinstance(label, list):
                    raise DsgenError(f"{path}: '{key}' must be a list, found {type(label).__name__}")
            if raw_images is None:
                raise DsgenError(f"{path}: not a COCO file: no 'images' list (keys: {sorted(doc)[:10]})")
            raw_categories = raw_categories or []
            raw_annotations = raw_annotations or []
            if raw_annotations and isinstance(raw_annotations[0], dict) and "segments_info" in raw_annotations[0]:
                kind = "panoptic"
        header = {k: v for k, v in doc.items() if k not in RECORD_LISTS}
    else:
        raise DsgenError(f"{path}: not a COCO file: top level is {type(doc).__name__}")

    if header:
        problem = limits.json_problem(header)
        if problem:
            raise DsgenError(f"{path}: its top-level keys other than the lists ({', '.join(sorted(header))[:80]}) are "
                             f"{problem}; nothing was imported")
    if b"\\u0000" in raw:
        if nul_keys := sorted(k for k, v in header.items() if limits.has_nul(k) or limits.has_nul(v)):
            # The header is no record to skip: it is stored whole with the import, or not at all.
            raise DsgenError(f"{path}: its top-level key(s) {', '.join(map(repr, nul_keys))[:80]} contain a NUL "
                             "character (\\u0000), which the registry cannot store; nothing was imported")
        _report_nul(doc, fname, report)
    images = _read_images(raw_images, fname, report)
    raw_image_count = len(raw_images)
    categories = _read_categories(raw_categories, fname, report)
    dropped = 0
    if kind == "panoptic":
        raw_annotations, dropped = _expand_panoptic(raw_annotations, path, panoptic_dir, images, fname, report)
    if kind == "sa1b" and raw_annotations and not categories:
        # SA-1B masks have no class; give them one so they stay exportable as COCO.
        categories = [CocoCategory(1, "object", None, None, None, None)]
        raw_annotations = [dict(a, category_id=a.get("category_id", 1)) for a in raw_annotations]
    annotations = _read_annotations(raw_annotations, fname, report, images, categories, kind)
    return CocoFile(path, kind, images, categories, annotations, header, report,
                    raw_bytes_sha256=hashlib.sha256(raw).hexdigest(), raw_annotation_count=len(raw_annotations) + dropped,
                    raw_image_count=raw_image_count)


REFUSED = object()  # a record already reported as invalid, left in place so positions stay true


def _report_nul(doc: Any, fname: str, report: ValidationReport) -> None:
    """A NUL character (\\u0000 in the JSON) cannot be stored (PostgreSQL text refuses it): name each record
    that holds one. Only runs when the file contains the escape at all; the header is checked before."""
    lists = [(k, v) for k, v in doc.items() if k in RECORD_LISTS] if isinstance(doc, dict) else [("annotations", doc)]
    for key, records in lists:
        if not isinstance(records, list):
            continue
        for i, record in enumerate(records):
            if limits.has_nul(record):
                report.error(fname, f"{key}[{i}]", "-", "contains a NUL character (\\u0000), which the registry cannot store")
                records[i] = REFUSED  # reported once; the readers pass over it


def _read_images(raw: list[Any], fname: str, report: ValidationReport) -> list[CocoImage]:
    out: list[CocoImage] = []
    seen: dict[int, int] = {}
    names: Counter[str] = Counter()
    for i, im in enumerate(raw):
        rec = f"images[{i}]"
        if im is REFUSED:
            continue
        if not isinstance(im, dict):
            report.error(fname, rec, "-", f"expected an object, found {type(im).__name__}")
            continue
        iid = im.get("id")
        rec = f"images[{i}] (id={iid})"
        if not limits.is_id(iid):
            report.error(fname, rec, "id", "missing, not an integer or beyond 64 bits")
            continue
        if iid in seen:
            report.error(fname, rec, "id", f"duplicate image id (also images[{seen[iid]}])")
            continue
        seen[iid] = i
        name = im.get("file_name")
        if not isinstance(name, str) or not name:
            report.error(fname, rec, "file_name", "missing or empty")
            continue
        problem = limits.path_problem(name)
        if problem:
            report.error(fname, rec, "file_name", f"{name[:60]!r}: {problem}")
            continue
        w, h = im.get("width"), im.get("height")
        bad = False
        for dim, v in (("width", w), ("height", h)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 < v <= limits.DIMENSION_MAX):
                report.error(fname, rec, dim, f"must be a positive integer of at most {limits.DIMENSION_MAX} pixels, "
                             f"found {v!r}")
                bad = True
        if bad:
            continue
        key = source_path(name)
        if key is None:
            report.error(fname, rec, "file_name", f"{name!r} is a path that leaves the image folder (absolute or "
                         "with '..'); name the image relative to its folder")
            continue
        names[key] += 1
        if names[key] > 1:
            # Two records of one file name: both are kept (their ids say they differ), the later
            # ones keyed by their id as well.
            report.warning(fname, rec, "file_name", f"{name!r} is used by more than one image")
            key = f"{key}#{iid}"
        extra = {k: v for k, v in im.items() if k not in IMAGE_KEYS} or None
        problem = limits.json_problem(extra) if extra else None
        if problem:
            report.error(fname, rec, "-", f"its other keys are {problem}")
            continue
        out.append(CocoImage(i, iid, name, w, h, extra, key))
    return out


def _read_categories(raw: list[Any], fname: str, report: ValidationReport) -> list[CocoCategory]:
    out: list[CocoCategory] = []
    ids: set[int] = set()
    names: set[str] = set()
    for i, c in enumerate(raw):
        rec = f"categories[{i}]"
        if c is REFUSED:
            continue
        if not isinstance(c, dict):
            report.error(fname, rec, "-", f"expected an object, found {type(c).__name__}")
            continue
        cid, name = c.get("id"), c.get("name")
        rec = f"categories[{i}] (id={cid})"
        if not limits.is_id(cid):
            report.error(fname, rec, "id", "missing, not an integer or beyond 64 bits")
            continue
        if cid in ids:
            report.error(fname, rec, "id", "duplicate category id")
            continue
        if not isinstance(name, str) or not name.strip():
            report.error(fname, rec, "name", "missing or empty")
            continue
        if len(name) > limits.NAME_MAX or "\x00" in name:
            report.error(fname, rec, "name", f"longer than {limits.NAME_MAX} characters or with a NUL character")
            continue
        supercategory = c.get("supercategory")
        if supercategory is not None and (not isinstance(supercategory, str) or len(supercategory) > 255):
            report.error(fname, rec, "supercategory", "must be a string of at most 255 characters")
            continue
        if name in names:
            report.error(fname, rec, "name", f"duplicate category name {name!r}")
            continue
        ids.add(cid)
        names.add(name)
        kps = c.get("keypoints")
        if kps is not None and not (isinstance(kps, list) and all(isinstance(k, str) for k in kps)):
            report.error(fname, rec, "keypoints", "must be a list of keypoint names")
            continue
        extra = {k: v for k, v in c.items() if k not in CATEGORY_KEYS} or None
        problem = limits.json_problem([extra, c.get("skeleton")])
        if problem:
            report.error(fname, rec, "-", f"its skeleton and other keys are {problem}")
            continue
        out.append(CocoCategory(cid, name, supercategory, kps, c.get("skeleton"), extra))
    return out


def _expand_panoptic(
    raw: list[Any], path: Path, panoptic_dir: Path | None, images: list[CocoImage], fname: str, report: ValidationReport
) -> tuple[list[dict[str, Any]], int]:
    """Each segment of a panoptic PNG becomes an object with an RLE mask; also returns how many were refused."""
    from pycocotools import mask as mask_utils

    png_dir = panoptic_dir or path.parent / path.stem
    # looked up by whatever the JSON holds, which need not be an int
    by_id: dict[Hashable, CocoImage] = {im.coco_id: im for im in images}
    out: list[dict[str, Any]] = []
    dropped = 0
    for i, a in enumerate(raw):
        if a is REFUSED:
            dropped += 1
            continue
        rec = f"annotations[{i}] (image_id={a.get('image_id') if isinstance(a, dict) else '?'})"
        if not isinstance(a, dict) or not isinstance(a.get("segments_info"), list):
            report.error(fname, rec, "segments_info", "missing or not a list")
            dropped += 1
            continue
        png = png_dir / str(a.get("file_name", ""))
        try:
            rgb = np.asarray(open_image(png).convert("RGB"), dtype=np.uint32)
        except (FileNotFoundError, OSError):
            report.error(fname, rec, "file_name", f"panoptic PNG {png} missing or unreadable")
            dropped += len(a["segments_info"])
            continue
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
        im = by_id.get(a.get("image_id"))
        if im is not None and (im.height, im.width) != ids.shape and im.height is not None:
            report.error(fname, rec, "file_name", f"PNG is {ids.shape[1]}x{ids.shape[0]}, image is {im.width}x{im.height}")
            dropped += len(a["segments_info"])
            continue
        for j, seg in enumerate(a["segments_info"]):
            m = np.asfortranarray((ids == seg.get("id")).astype(np.uint8))
            rle = mask_utils.encode(m)
            extra_keys = {k: v for k, v in seg.items() if k not in ANNOTATION_KEYS}
            out.append({
                **{k: v for k, v in seg.items() if k in ANNOTATION_KEYS},
                "image_id": a.get("image_id"),
                "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode()},
                "_extra": {"panoptic_file": a.get("file_name"), **extra_keys},
                "_where": f"annotations[{i}].segments_info[{j}]",
            })
    return out, dropped


class _Rec:
    """Names a record in a report; formatted only when there is a problem to report."""

    __slots__ = ("aid", "i", "where")

    def __init__(self, i: int, aid: Any, where: str | None = None) -> None:
        self.i, self.aid, self.where = i, aid, where

    def __str__(self) -> str:
        return f"{self.where or f'annotations[{self.i}]'} (id={self.aid})"


def _read_annotations(
    raw: list[Any],
    fname: str,
    report: ValidationReport,
    images: list[CocoImage],
    categories: list[CocoCategory],
    kind: str,
) -> list[CocoAnnotation]:
    img_by_id = {im.coco_id: im for im in images}
    cat_by_id = {c.coco_id: c for c in categories}
    seen_ids: dict[Any, int] = {}
    seen_places: dict[Any, str] = {}
    out: list[CocoAnnotation] = []
    err = report.error
    results = kind == "results"
    known = ANNOTATION_KEYS
    box_keys = _BOX_KEYS
    img_size = {im.coco_id: (im.width, im.height) for im in images}
    append = out.append
    new_record = tuple.__new__
    id_min, id_max = -limits.ID_MAX - 1, limits.ID_MAX
    for i, a in enumerate(raw):
        # Fast path for the bulk of real files: a plain box with only the usual keys. Anything
        # unusual, or anything wrong, falls through to the general path, which reports it.
        if type(a) is dict and a.keys() <= box_keys and not results:
            # Any JSON value: looked up in the id maps, checked with ``type(x) is`` (mypy does not narrow on it)
            aid = a.get("id")
            image_id: Any = a.get("image_id")
            cid: Any = a.get("category_id")
            bbox = a.get("bbox")
            seg = a.get("segmentation")
            attrs = a.get("attributes")
            file_area: Any = a.get("area")
            # Ids of another JSON type (a list, an object) are not hashable: the general path reports them.
            size = img_size.get(image_id) if type(image_id) is int else None
            if (type(aid) is int and id_min <= aid <= id_max and aid not in seen_ids and size is not None
                    and type(cid) is int and cid in cat_by_id and not seg and (attrs is None or (type(attrs) is dict and len(attrs) <= 16))
                    and type(bbox) is list and len(bbox) == 4):
                x, y, w, h = bbox
                tx, ty, tw, th = type(x), type(y), type(w), type(h)
                iw, ih = size
            else:
                tx = None
            # _is_box, inlined: this runs once per annotation of every import.
            if tx is not None and (tx is float or tx is int) and (ty is float or ty is int) and (tw is float or tw is int) \
                    and (th is float or th is int) and x - x == 0 and y - y == 0 and w > 0 and h > 0 and w - w == 0 \
                    and h - h == 0:
                if iw is not None and ih is not None and x >= -1 and y >= -1 and x + w <= iw + 1 and y + h <= ih + 1:
                    seen_ids[aid] = i
                    seen_places[aid] = f"annotations[{i}]"
                    ta = type(file_area)
                    hints: dict[str, Any] | None = None
                    if ta is float:
                        area = file_area
                    elif ta is int:
                        area = float(file_area)
                        hints = {"area": file_area}  # the source wrote an integer: it comes back as one
                    else:
                        area = float(w * h)
                        if "area" not in a:
                            hints = {"no_area": True}
                    if seg is None or "iscrowd" not in a:
                        hints = hints or {}
                        if seg is None and "segmentation" in a:
                            hints["segmentation"] = None
                        elif seg is None:
                            hints["no_segmentation"] = True
                        if "iscrowd" not in a:
                            hints["no_iscrowd"] = True
                    # tuple.__new__ directly: the NamedTuple's own __new__ is a Python call, a second per million.
                    append(new_record(CocoAnnotation, (
                        i, aid, image_id, cid, "bbox", (float(x), float(y), float(w), float(h)), None, None, None, None,
                        None, area, bool(a.get("iscrowd")), attrs, {HINTS: hints} if hints else None, None, None,
                    )))
                    continue
        if not isinstance(a, dict):
            if a is not REFUSED:
                err(fname, f"annotations[{i}]", "-", f"expected an object, found {type(a).__name__}")
            continue
        aid = a.get("id")
        where = a.get("_where")
        rec = _Rec(i, aid, where)
        image_id = a.get("image_id")
        if aid is not None:
            if not limits.is_id(aid):
                err(fname, rec, "id", f"not an integer of 64 bits: {aid!r}")
                continue
            # Panoptic segment ids are unique within their image (they are colours of its PNG).
            id_key = (image_id if type(image_id) is int else repr(image_id), aid) if where is not None else aid
            if id_key in seen_ids:
                err(fname, rec, "id", f"duplicate annotation id (also {seen_places[id_key]})")
                continue
            seen_ids[id_key] = i
            seen_places[id_key] = where or f"annotations[{i}]"
        # Only an integer names an image: true is not image 1, nor is 1.0 (and a list is not hashable).
        im = img_by_id.get(image_id) if type(image_id) is int else None
        if im is None and not results:
            err(fname, rec, "image_id", f"refers to image {image_id!r}, which is not in 'images'" if type(image_id) is int
                else f"must be an integer image id, found {image_id!r}")
            continue
        if results and (not isinstance(image_id, int) or isinstance(image_id, bool)):
            err(fname, rec, "image_id", f"missing or not an integer: {image_id!r}")
            continue
        cid = a.get("category_id")
        placeholder = None
        caption = a.get("caption")
        if cid is None:
            if caption is None:
                err(fname, rec, "category_id", "missing (and no caption)")
                continue
        elif not results and (type(cid) is not int or cid not in cat_by_id):
            if caption is None:
                err(fname, rec, "category_id", f"refers to category {cid!r}, which is not in 'categories'"
                    if type(cid) is int else f"must be an integer category id, found {cid!r}")
                continue
            # Caption files often carry a placeholder category (datumaro writes 0); keep it for export.
            placeholder = cid
            cid = None
        elif results and (not isinstance(cid, int) or isinstance(cid, bool)):
            err(fname, rec, "category_id", f"not an integer: {cid!r}")
            continue
        if caption is not None and (not isinstance(caption, str) or len(caption) > limits.TEXT_MAX):
            err(fname, rec, "caption", f"must be a string of at most {limits.TEXT_MAX} characters")
            continue

        bbox = a.get("bbox")
        box: tuple[float, float, float, float] | None = None
        if bbox is not None:
            if not _is_box(bbox):
                err(fname, rec, "bbox", f"must be [x, y, width, height] numbers, found {bbox!r}")
                continue
            if bbox[2] <= 0 or bbox[3] <= 0:
                err(fname, rec, "bbox", f"negative or zero-size box {bbox!r}")
                continue
            box = (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3]))
            problem = _outside(im, [box[0], box[0] + box[2]], [box[1], box[1] + box[3]])
            if problem:
                err(fname, rec, "bbox", f"box {bbox!r} {problem}")
                continue
            if im is not None and im.width and im.height and (
                box[0] < -1 or box[1] < -1 or box[0] + box[2] > im.width + 1 or box[1] + box[3] > im.height + 1
            ):
                report.warning(fname, rec, "bbox", f"box {bbox!r} extends beyond the {im.width}x{im.height} image")

        seg = a.get("segmentation")
        polygon: list[list[float]] | None = None
        rle: dict[str, Any] | None = None
        area_calc: float | None = None
        bbox_calc: list[float] | None = None
        if isinstance(seg, list) and seg:
            if not all(isinstance(p, list) for p in seg):
                err(fname, rec, "segmentation", "polygon must be a list of coordinate lists")
                continue
            bad = next((p for p in seg if len(p) < 6 or len(p) % 2 or not all(_is_num(v) for v in p)), None)
            if bad is not None:
                err(fname, rec, "segmentation", f"polygon with fewer than 3 points or bad coordinates ({len(bad)} values)")
                continue
            polygon = [[float(v) for v in p] for p in seg]
            problem = _outside(im, [v for p in polygon for v in p[0::2]], [v for p in polygon for v in p[1::2]])
            if problem:
                err(fname, rec, "segmentation", f"polygon {problem}")
                continue
            if im is not None and im.width and im.height:
                area_calc, bbox_calc = polygon_area_bbox(polygon, im.height, im.width)
        elif isinstance(seg, dict):
            size, counts = seg.get("size"), seg.get("counts")
            if not (isinstance(size, list) and len(size) == 2
                    and all(type(v) is int and 0 < v <= limits.DIMENSION_MAX for v in size)):
                err(fname, rec, "segmentation.size", f"must be [height, width], found {size!r}")
                continue
            if not isinstance(counts, (list, str)) or (isinstance(counts, list) and not all(isinstance(v, int) for v in counts)):
                err(fname, rec, "segmentation.counts", "must be a list of run lengths or a compressed RLE string")
                continue
            if im is not None and im.height and im.width and size != [im.height, im.width]:
                err(fname, rec, "segmentation.size", f"RLE size {size} does not match the image's [height, width] [{im.height}, {im.width}]")
                continue
            if isinstance(counts, list) and sum(counts) != size[0] * size[1]:
                err(fname, rec, "segmentation.counts", f"runs add up to {sum(counts)}, not {size[0]}x{size[1]}")
                continue
            try:
                rle = to_compressed_rle(seg)
                area_calc, bbox_calc = rle_area_bbox(rle)
            except (ValueError, TypeError) as exc:
                err(fname, rec, "segmentation", f"RLE cannot be decoded ({exc})")
                continue
        elif seg not in (None, []):
            err(fname, rec, "segmentation", f"must be polygon lists or an RLE object, found {type(seg).__name__}")
            continue

        kps = a.get("keypoints")
        keypoints: list[float] | None = None
        if kps is not None and kps != []:
            if not (isinstance(kps, list) and len(kps) % 3 == 0 and all(_is_num(v) for v in kps)):
                err(fname, rec, "keypoints", "must be a flat list of x, y, visibility triples")
                continue
            cat = cat_by_id.get(cid)
            if cat is not None and cat.keypoints and len(kps) != 3 * len(cat.keypoints):
                err(fname, rec, "keypoints", f"{len(kps) // 3} points, category {cat.name!r} defines {len(cat.keypoints)}")
                continue
            keypoints = [float(v) for v in kps]
            labelled = [j for j in range(0, len(keypoints), 3) if keypoints[j + 2] > 0]
            problem = _outside(im, [keypoints[j] for j in labelled], [keypoints[j + 1] for j in labelled])
            if problem:
                err(fname, rec, "keypoints", f"keypoints {problem}")
                continue

        score = a.get("score")
        if score is not None and not _is_num(score):
            err(fname, rec, "score", f"must be a number, found {score!r}")
            continue
        attrs = a.get("attributes")
        if attrs is not None and not isinstance(attrs, dict):
            err(fname, rec, "attributes", "must be an object")
            continue

        if keypoints is not None:
            gtype = "keypoints"
        elif rle is not None:
            gtype = "mask"
        elif polygon is not None:
            gtype = "polygon"
        elif box is not None:
            gtype = "bbox"
        elif caption is not None:
            gtype = "caption"
        else:
            gtype = "label"
        if box is None and bbox_calc is not None and bbox_calc[2] > 0 and bbox_calc[3] > 0:
            box = (bbox_calc[0], bbox_calc[1], bbox_calc[2], bbox_calc[3])

        extra = {} if a.keys() <= known else {k: v for k, v in a.items() if k not in known and k not in _PRIVATE}
        if "_extra" in a:
            extra.update(a["_extra"])
        file_area = a.get("area")
        ta = type(file_area)
        file_area_ok = (ta is float or ta is int) and file_area - file_area == 0
        area = area_calc if area_calc is not None else (float(file_area) if file_area_ok else (box[2] * box[3] if box else None))
        # How the file wrote things we normalise, so an export gives back the same shapes.
        hints = {}
        if file_area_ok:
            if area is not None and (abs(file_area - area) > 1e-6 or ta is int):
                hints["area"] = file_area
        elif file_area is None and "area" not in a:
            hints["no_area"] = True
        if seg is None:
            if "segmentation" in a:
                hints["segmentation"] = None  # [] is what an export writes by default
            else:
                hints["no_segmentation"] = True
        elif rle is not None and type(seg["counts"]) is list:
            hints["rle"] = "list"
        if "iscrowd" not in a:
            hints["no_iscrowd"] = True
        if box is not None and bbox is None:
            hints["no_bbox"] = True
        if placeholder is not None:
            hints["category_id"] = placeholder
        if hints:
            extra[HINTS] = hints
        problem = limits.json_problem([attrs, extra]) if attrs or extra else None
        if problem:
            err(fname, rec, "attributes", f"its attributes and other keys are {problem}")
            continue
        nk = a.get("num_keypoints")
        if type(nk) is int and not 0 <= nk <= limits.INT32_MAX:
            err(fname, rec, "num_keypoints", f"must be a count of keypoints, found {nk}")
            continue
        if keypoints is not None and type(nk) is not int:
            nk = sum(1 for v in keypoints[2::3] if v > 0)
        out.append(CocoAnnotation(
            i, aid, image_id, cid, gtype, box, polygon, rle, keypoints, nk if type(nk) is int else None, caption, area,
            bool(a.get("iscrowd")), attrs, extra or None, None if score is None else float(score), where,
        ))
    return out
