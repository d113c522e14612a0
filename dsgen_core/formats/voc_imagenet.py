"""Import Pascal VOC and ImageNet layouts (seed 002's dataset formats), and export them from a frozen version.

Pascal VOC: ``Annotations/<id>.xml`` (objects with ``bndbox``, ``pose``, ``truncated``,
``difficult``, ``occluded``, ``<attributes>``, ``<actions>`` and ``<part>``s), ``JPEGImages/``,
the splits of ``ImageSets/Main/<split>.txt``, and the instance masks of ``SegmentationObject/``
(object k of the XML is the pixels of palette index k). A box is ``xmin, ymin, xmax - xmin,
ymax - ymin``, as written; the flags and actions become attributes, parts are kept on their
object (``extra["voc"]["parts"]``) and written back. Each object is identified by its file and
place in it.

ImageNet, for classification: a folder per label (``<label>/<image>``, optionally under a split
folder: ``train/<label>/<image>``), or ``<split>.txt`` lines ``<image> <label index>`` with
``synsets.txt`` naming the indices. Each image gets an image-level label.

    lb = read_voc(Path("VOC2012"), report)      # or read_imagenet(...)
    ingest_layout(session, project, lb, storage=storage)
    export_voc(session, project, "v1", out_dir)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError
from dsgen_core.formats.layout import IMAGE_EXTENSIONS, LayoutBatch, find_image
from dsgen_core.formats.report import ValidationReport
from dsgen_core.formats.version_export import place_image
from dsgen_core.registry.ingest import ObjectRecord
from dsgen_core.registry.schema import DatasetVersion, DatasetVersionAnnotation, LabelClass, Project
from dsgen_core.storage.masks import MaskStore
from dsgen_core.versions.lifecycle import get_version
from dsgen_core.versions.members import version_members

SPLITS = ("train", "val", "test", "trainval")
_FLAGS = ("truncated", "difficult", "occluded")


# --------------------------------------------------------------------------- Pascal VOC


def read_voc(root: Path, report: ValidationReport) -> LayoutBatch:
    root = root.resolve()
    ann_dir, img_dir = root / "Annotations", root / "JPEGImages"
    if not ann_dir.is_dir() and not img_dir.is_dir():
        raise DsgenError(f"{root}: not a Pascal VOC folder (no Annotations/ or JPEGImages/)")
    lb = LayoutBatch(root, "voc", report)
    split_of: dict[str, str] = {}
    main = root / "ImageSets" / "Main"
    for split in SPLITS:  # train/val/test win over trainval: the finer name
        f = main / f"{split}.txt"
        if f.is_file():
            lb.text(f.read_bytes())
            for line in f.read_text().splitlines():
                if line.strip():
                    split_of.setdefault(line.split()[0], split)
    stems = sorted({p.stem for p in ann_dir.glob("*.xml")} | ({p.stem for p in img_dir.iterdir()
                                                             if p.suffix.lower() in IMAGE_EXTENSIONS}
                                                            if img_dir.is_dir() else set()) | set(split_of))
    for stem in stems:
        xml_path = ann_dir / f"{stem}.xml"
        root_el = None
        if xml_path.is_file():
            raw = xml_path.read_bytes()
            lb.text(raw)
            try:
                root_el = ET.fromstring(raw)
            except ET.ParseError as exc:
                report.error(xml_path.name, stem, "xml", f"not XML: {exc}")
                continue
        file_name = (root_el.findtext("filename") if root_el is not None else None) or ""
        img = img_dir / file_name if file_name and (img_dir / file_name).is_file() else find_image(img_dir, stem)
        if img is None:
            img = img_dir / (file_name or f"{stem}.jpg")
        key = lb.image(img, split=split_of.get(stem), required=False)
        if key is None or root_el is None:
            continue
        instances = _instance_masks(root / "SegmentationObject" / f"{stem}.png", lb)
        for i, obj in enumerate(root_el.findall("object")):
            rec = _voc_object(lb, key, f"{xml_path.name}#{i}", obj, f"{xml_path.name}: object[{i}]")
            if rec is not None and i + 1 in instances:
                rec = rec._replace(geometry_type="mask", rle=instances[i + 1])
            if rec is not None:
                lb.objects.append(rec)
    return lb


def voc_colormap(n: int = 256) -> list[tuple[int, int, int]]:
    """Pascal VOC's palette: index i -> its colour (bits of i spread over the channels, high bit first)."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


def _instance_masks(png: Path, lb: LayoutBatch) -> dict[int, dict[str, Any]]:
    """``SegmentationObject/<id>.png``: object k of the XML is the pixels of index k (palette or colour)."""
    if not png.is_file():
        return {}
    import numpy as np
    from PIL import Image
    from pycocotools import mask as mask_utils

    lb.text(png.read_bytes())
    with Image.open(png) as im:
        if im.mode == "P":
            idx = np.asarray(im)
        else:
            rgb = np.asarray(im.convert("RGB")).astype(np.int32)
            code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            lookup = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(voc_colormap())}
            idx = np.vectorize(lambda v: lookup.get(int(v), 255), otypes=[np.int32])(code)
    out = {}
    for k in sorted(set(np.unique(idx).tolist()) - {0, 255}):
        rle = mask_utils.encode(np.asfortranarray((idx == k).astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        out[int(k)] = rle
    return out


def _box(el: Any) -> tuple[float, float, float, float] | None:
    bb = el.find("bndbox")
    if bb is None:
        return None
    x1, y1, x2, y2 = (float(bb.findtext(k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax"))
    return (x1, y1, x2 - x1, y2 - y1)


def _voc_object(lb: LayoutBatch, key: str, sid: str, obj: Any, where: str) -> ObjectRecord | None:
    name = (obj.findtext("name") or "").strip()
    if not name:
        lb.report.error(where.split(":")[0], where, "name", "an object without a class name")
        lb.report.skipped["annotations"] += 1
        return None
    try:
        box = _box(obj)
    except ValueError as exc:
        lb.report.error(where.split(":")[0], where, "bndbox", f"not numbers: {exc}")
        lb.report.skipped["annotations"] += 1
        return None
    attrs: dict[str, Any] = {}
    pose = obj.findtext("pose")
    if pose is not None:
        attrs["pose"] = pose
    for flag in _FLAGS:
        v = obj.findtext(flag)
        if v is not None:
            attrs[flag] = v.strip() in ("1", "true", "True")
    for a in obj.findall("attributes/attribute"):
        n, v = a.findtext("name"), a.findtext("value")
        if n:
            attrs[n] = v
    actions = obj.find("actions")
    if actions is not None:
        attrs.update({f"action.{a.tag}": (a.text or "").strip() in ("1", "true") for a in actions})
    parts = [{"name": p.findtext("name"), "bndbox": list(b) if (b := _box(p)) else None} for p in obj.findall("part")]
    cls = lb.cls(name)
    area = box[2] * box[3] if box else None
    return ObjectRecord(len(lb.objects), sid, key, cls, "bbox" if box else "label", box, None, None, None, None, None,
                        area, False, attrs or None, {"voc": {"parts": parts}} if parts else None, None, where)


def _frozen(session: Session, project: Project, tag: str) -> DatasetVersion:
    v = get_version(session, project, tag)
    if v.status != "frozen":
        raise DsgenError(f"version {tag!r} is not frozen: freeze it first (dsgen version freeze {tag})")
    return v


def _objects(session: Session, v: DatasetVersion) -> dict[int, list[DatasetVersionAnnotation]]:
    out: dict[int, list[DatasetVersionAnnotation]] = {}
    for a in session.scalars(select(DatasetVersionAnnotation).where(DatasetVersionAnnotation.dataset_version_id == v.id)
                             .order_by(DatasetVersionAnnotation.annotation_id)):
        out.setdefault(a.asset_id, []).append(a)
    return out


def export_voc(session: Session, project: Project, tag: str, out_dir: Path, *, masks: MaskStore) -> dict[str, int]:
    """A frozen version as Pascal VOC: XML per image, JPEGImages (hard links), ImageSets/Main per split.

    Boxes, classes, pose/truncated/difficult/occluded, actions, parts and other attributes, and the
    masks as ``SegmentationObject/`` (palette index k: the XML's object k); VOC has no polygons or
    keypoints (their boxes are written), nor model scores."""
    v = _frozen(session, project, tag)
    classes = {c.id: c.key for c in session.scalars(select(LabelClass).where(LabelClass.project_id == project.id))}
    objects = _objects(session, v)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    by_split: dict[str, list[str]] = {}
    n_obj = 0
    members = version_members(session, v)
    stems: set[str] = set()
    for m in members:
        stem, ext = Path(m.name).stem, Path(m.name).suffix or ".jpg"
        if stem in stems:  # a.jpg and a.png: VOC names an image by its stem
            stem = f"{stem}_{m.asset.id}"
        stems.add(stem)
        by_split.setdefault(m.split, []).append(stem)
        if m.asset.storage_uri:
            place_image(m.asset.storage_uri, out_dir / "JPEGImages" / f"{stem}{ext}")
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "JPEGImages"
        ET.SubElement(root, "filename").text = f"{stem}{ext}"
        size = ET.SubElement(root, "size")
        for k, val in (("width", m.asset.width), ("height", m.asset.height), ("depth", 3)):
            ET.SubElement(size, k).text = str(val or 0)
        written = []
        for a in objects.get(m.asset.id, []):
            if a.bbox_w is None or a.label_class_id is None:
                continue
            n_obj += 1
            _voc_element(root, a, classes[a.label_class_id])
            written.append(a)
        if any(a.mask_uri for a in written) and m.asset.width and m.asset.height:
            _write_instances(out_dir / "SegmentationObject" / f"{stem}.png", written, m.asset.width, m.asset.height,
                             masks)
        ET.indent(root)
        ET.ElementTree(root).write(out_dir / "Annotations" / f"{stem}.xml", encoding="utf-8", xml_declaration=True)
    for split, listed in by_split.items():
        (out_dir / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{s}\n" for s in listed))
    (out_dir / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" + "".join(
        f"{classes[c]}:::\n" for c in sorted(classes)))
    return {"images": len(members), "objects": n_obj, "splits": len(by_split)}


def _write_instances(png: Path, objs: list[DatasetVersionAnnotation], width: int, height: int,
                     masks: MaskStore) -> None:
    import numpy as np
    from PIL import Image
    from pycocotools import mask as mask_utils

    idx = np.zeros((height, width), dtype=np.uint8)
    for k, a in enumerate(objs, start=1):
        if a.mask_uri and k < 255:
            idx[mask_utils.decode(masks.get(a.mask_uri)).astype(bool)] = k
    png.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([c for rgb in voc_colormap() for c in rgb])
    im.save(png)


def _voc_element(root: Any, a: DatasetVersionAnnotation, name: str) -> None:
    o = ET.SubElement(root, "object")
    ET.SubElement(o, "name").text = name
    attrs = dict(a.attributes or {})
    if "pose" in attrs:
        ET.SubElement(o, "pose").text = str(attrs.pop("pose"))
    for flag in _FLAGS:
        if flag in attrs:
            ET.SubElement(o, flag).text = "1" if attrs.pop(flag) else "0"
    _bndbox(o, [a.bbox_x, a.bbox_y, a.bbox_w, a.bbox_h])
    actions = {k[7:]: attrs.pop(k) for k in list(attrs) if k.startswith("action.")}
    if actions:
        act = ET.SubElement(o, "actions")
        for k, val in actions.items():
            ET.SubElement(act, k).text = "1" if val else "0"
    for part in ((a.extra or {}).get("voc") or {}).get("parts") or []:
        p = ET.SubElement(o, "part")
        ET.SubElement(p, "name").text = part["name"]
        if part.get("bndbox"):
            _bndbox(p, part["bndbox"])
    rest = {k: val for k, val in attrs.items() if k not in ("rotation", "track_id", "keyframe")}
    if rest:
        at = ET.SubElement(o, "attributes")
        for k, val in rest.items():
            one = ET.SubElement(at, "attribute")
            ET.SubElement(one, "name").text = k
            ET.SubElement(one, "value").text = str(val)


def _bndbox(parent: Any, box: list[Any]) -> None:
    bb = ET.SubElement(parent, "bndbox")
    x, y, w, h = box
    for k, val in (("xmin", x), ("ymin", y), ("xmax", x + w), ("ymax", y + h)):
        ET.SubElement(bb, k).text = f"{val:g}"


def safe_name(name: str) -> str:
    """A class name as one folder name: path separators and the names ``.``/``..`` cannot leave the export."""
    out = name.replace("/", "%2F").replace("\\", "%5C").replace("\0", "")
    return out if out not in ("", ".", "..") else f"%{out or 'empty'}"


# --------------------------------------------------------------------------- ImageNet


def read_imagenet(root: Path, report: ValidationReport) -> LayoutBatch:
    if not root.is_dir():
        raise DsgenError(f"{root}: not a folder")
    root = root.resolve()
    lb = LayoutBatch(root, "imagenet", report)
    lists = [root / f"{s}.txt" for s in SPLITS if (root / f"{s}.txt").is_file()]
    if lists:
        synsets = next((p for p in sorted(root.glob("synsets*.txt"))), None)
        names = [n.strip() for n in synsets.read_text().splitlines() if n.strip()] if synsets else []
        if synsets:
            lb.text(synsets.read_bytes())
        for listing in lists:
            lb.text(listing.read_bytes())
            for n, line in enumerate(listing.read_text().splitlines(), start=1):
                parts = line.split()
                if not parts:
                    continue
                img = next((c for c in (root / parts[0], root / "images" / parts[0]) if c.is_file()),
                           root / "images" / parts[0])
                key = lb.image(img, split=listing.stem, required=False)
                if key is None:
                    continue
                for idx in parts[1:]:
                    try:
                        i = int(idx)
                    except ValueError:
                        report.error(listing.name, f"line {n}", "label", f"{idx!r} is not a label index")
                        continue
                    name = names[i] if 0 <= i < len(names) else str(i)
                    _label(lb, key, f"{listing.name}#{n}:{i}", lb.cls(name, external_id=i),
                           f"{listing.name}: line {n}")
        return lb
    # A split folder holds label folders; a label folder that happens to be called "train" holds images.
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name in SPLITS
                  and any(c.is_dir() for c in d.iterdir())]
    bases: list[tuple[Path, str | None]] = [(d, d.name) for d in split_dirs] or [(root, None)]
    for base, split in bases:
        for label_dir in sorted(d for d in base.iterdir() if d.is_dir()):
            for img in sorted(p for p in label_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
                key = lb.image(img, split=split)
                if key is not None:
                    _label(lb, key, f"{key}:label", lb.cls(label_dir.name), key)
    if not lb.images:
        raise DsgenError(f"{root}: no ImageNet layout here (label folders of images, or <split>.txt + synsets.txt)")
    return lb


def _label(lb: LayoutBatch, key: str, sid: str, cls: str, where: str) -> None:
    lb.objects.append(ObjectRecord(len(lb.objects), sid, key, cls, "label", None, None, None, None, None, None, None,
                                   False, None, None, None, where))


def export_imagenet(session: Session, project: Project, tag: str, out_dir: Path) -> dict[str, int]:
    """A frozen version as ImageNet folders: ``<split>/<label>/<image>``, an image under each of its classes."""
    v = _frozen(session, project, tag)
    classes = {c.id: c.key for c in session.scalars(select(LabelClass).where(LabelClass.project_id == project.id))}
    objects = _objects(session, v)
    n = 0
    for m in version_members(session, v):
        for label in sorted({classes[a.label_class_id] for a in objects.get(m.asset.id, [])
                             if a.label_class_id is not None}):
            folder = out_dir / m.split / safe_name(label)
            folder.mkdir(parents=True, exist_ok=True)
            if m.asset.storage_uri:
                place_image(m.asset.storage_uri, folder / m.name)
                n += 1
    return {"images": n, "classes": len(classes)}
