"""Import Ultralytics YOLO datasets (detect, segment, pose, oriented boxes) and Darknet YOLO folders.

Ultralytics: ``data.yaml`` names the classes (a list or an id -> name map), ``kpt_shape`` for pose,
and each split (``train``/``val``/``test``) as an image folder, a list file or a list of either;
labels are ``labels/...`` beside ``images/...``. Darknet: ``obj.data`` + ``obj.names`` + a
``train.txt`` list, labels beside their images. Coordinates are normalised; they are turned into
pixels with each image's real size, so the images must be there.

A line with 4 coordinates is a box; with more, a polygon (segment), unless ``task`` says ``obb``
(4 corners: a box of CVAT's kind, with its ``rotation`` in degrees) or the dataset has
``kpt_shape`` (pose: a box and keypoints). Each object is identified by its label file and line.

    lb = read_yolo(Path("dataset"), report)
    ingest_layout(session, project, lb, storage=storage)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from dsgen_core.errors import DsgenError
from dsgen_core.formats.layout import IMAGE_EXTENSIONS, LayoutBatch
from dsgen_core.formats.report import ValidationReport
from dsgen_core.registry.ingest import ObjectRecord

TASKS = ("auto", "detect", "segment", "pose", "obb")


def read_yolo(root: Path, report: ValidationReport, *, task: str = "auto") -> LayoutBatch:
    if task not in TASKS:
        raise DsgenError(f"--task must be one of {', '.join(TASKS)}, not {task!r}")
    if not root.is_dir():
        raise DsgenError(f"{root}: not a folder")
    root = root.resolve()
    lb = LayoutBatch(root, "yolo", report)
    data_yaml = next((p for p in (root / "data.yaml", root / "dataset.yaml") if p.is_file()), None)
    if data_yaml is not None:
        names, kpt, splits = _ultralytics(root, data_yaml, lb)
    elif (root / "obj.data").is_file():
        names, kpt, splits = _darknet(root, lb)
    else:
        raise DsgenError(f"{root}: neither data.yaml (Ultralytics) nor obj.data (Darknet) is there")
    if kpt is not None and task == "auto":
        task = "pose"
    for split, images in splits:
        for img in images:
            key = lb.image(img, split=split)
            if key is None:
                continue
            label = _label_path(root, img)
            if label is None or not label.is_file():
                continue  # an image without objects
            raw = label.read_bytes()
            lb.text(raw)
            _labels(lb, key, label.relative_to(root).as_posix(), raw.decode("utf-8", "replace"), names, kpt, task)
    return lb


def _ultralytics(root: Path, data_yaml: Path, lb: LayoutBatch) -> tuple[dict[int, str], list[int] | None, list[Any]]:
    raw = data_yaml.read_bytes()
    lb.text(raw)
    try:
        doc = yaml.safe_load(raw) or {}
    except yaml.YAMLError as exc:
        raise DsgenError(f"{data_yaml}: not YAML: {exc}") from None
    names_raw = doc.get("names")
    if isinstance(names_raw, list):
        names = dict(enumerate(str(n) for n in names_raw))
    elif isinstance(names_raw, dict):
        names = {int(k): str(v) for k, v in names_raw.items()}
    else:
        raise DsgenError(f"{data_yaml}: names must list the classes")
    base = root / str(doc.get("path") or ".")
    if not base.is_dir():
        base = root
    splits = []
    for split in ("train", "val", "test"):
        spec = doc.get(split)
        if not spec:
            continue
        images: list[Path] = []
        for entry in spec if isinstance(spec, list) else [spec]:
            images += _images_of(base, root, str(entry), lb, data_yaml.name, split)
        splits.append((split, images))
    kpt = doc.get("kpt_shape")
    return names, list(kpt) if kpt else None, splits


def _darknet(root: Path, lb: LayoutBatch) -> tuple[dict[int, str], None, list[Any]]:
    obj = dict(line.split("=", 1) for line in (root / "obj.data").read_text().splitlines() if "=" in line)
    obj = {k.strip(): v.strip() for k, v in obj.items()}
    names_file = root / Path(obj.get("names", "obj.names")).name
    names = dict(enumerate(n.strip() for n in names_file.read_text().splitlines() if n.strip()))
    splits = []
    for split in ("train", "valid", "test"):
        if split in obj:
            listed = root / Path(obj[split]).name
            splits.append(("val" if split == "valid" else split, _listed(root, listed, lb, split)))
    return names, None, splits


def _images_of(base: Path, root: Path, entry: str, lb: LayoutBatch, where: str, split: str) -> list[Path]:
    p = (base / entry).resolve()
    if not p.exists() and entry.startswith("../"):
        p = (base / entry[3:]).resolve()  # Roboflow writes "../train/images" for "train/images", as Ultralytics reads it
    if p.is_dir():
        return sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
    if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
        return [p]  # data.yaml may list the images themselves
    if p.is_file():
        return _listed(root, p, lb, split)
    lb.report.error(where, split, split, f"{entry!r} is neither a folder nor a list file")
    return []


def _listed(root: Path, listing: Path, lb: LayoutBatch, split: str) -> list[Path]:
    """A list file's images; paths are relative to the dataset (Darknet writes them under ``data/``)."""
    out = []
    for i, line in enumerate(listing.read_text().splitlines()):
        name = line.strip()
        if not name:
            continue
        candidates = [root / name, root / Path(*Path(name).parts[1:]) if len(Path(name).parts) > 1 else root / name,
                      listing.parent / name]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            lb.report.error(listing.name, f"line {i + 1}", split, f"image {name!r} not found")
        else:
            out.append(found)
    return out


def _label_path(root: Path, img: Path) -> Path | None:
    parts = img.relative_to(root).parts if img.is_relative_to(root) else img.parts
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        return root.joinpath(*parts[:i], "labels", *parts[i + 1:]).with_suffix(".txt")
    return img.with_suffix(".txt")


def _labels(lb: LayoutBatch, key: str, rel: str, text: str, names: dict[int, str], kpt: list[int] | None,
            task: str) -> None:
    w, h = lb.size(key)
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        where = f"{rel}: line {n}"
        try:
            cid = int(parts[0])
            vals = [float(v) for v in parts[1:]]
        except ValueError:
            lb.report.error(rel, f"line {n}", "values", f"not numbers: {line.strip()[:60]!r}")
            lb.report.skipped["annotations"] += 1
            continue
        if cid not in names:
            lb.report.error(rel, f"line {n}", "class", f"class {cid} is not in the names ({len(names)} classes)")
            lb.report.skipped["annotations"] += 1
            continue
        cls = lb.cls(names[cid], external_id=cid)
        rec = _object(len(lb.objects), f"{rel}#{n}", key, cls, vals, w, h, kpt, task, where)
        if rec is None:
            lb.report.error(rel, f"line {n}", "values", f"{len(vals)} values fit no YOLO {task} label")
            lb.report.skipped["annotations"] += 1
        else:
            lb.objects.append(rec)


def _object(pos: int, sid: str, key: str, cls: str, v: list[float], w: int, h: int, kpt: list[int] | None,
            task: str, where: str) -> ObjectRecord | None:
    def box(cx: float, cy: float, bw: float, bh: float) -> tuple[float, float, float, float]:
        return ((cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h)

    if task == "pose" and kpt:
        k, dims = int(kpt[0]), int(kpt[1])
        if len(v) != 4 + k * dims:
            return None
        pts = v[4:]
        kps = []
        for i in range(k):
            x, y = pts[i * dims] * w, pts[i * dims + 1] * h
            vis = pts[i * dims + 2] if dims == 3 else 2.0
            kps += [x, y, vis]
        b = box(*v[:4])
        return ObjectRecord(pos, sid, key, cls, "keypoints", b, None, None, kps, sum(1 for i in range(k)
                                                                                    if kps[3 * i + 2] > 0),
                            None, b[2] * b[3], False, None, None, None, where)
    if len(v) == 4 and task in ("auto", "detect", "segment"):
        b = box(*v)
        return ObjectRecord(pos, sid, key, cls, "bbox", b, None, None, None, None, None, b[2] * b[3], False, None,
                            None, None, where)
    if task == "obb" and len(v) == 8:
        xs, ys = [v[i] * w for i in range(0, 8, 2)], [v[i] * h for i in range(1, 8, 2)]
        bw, bh = math.dist((xs[0], ys[0]), (xs[1], ys[1])), math.dist((xs[1], ys[1]), (xs[2], ys[2]))
        angle = math.degrees(math.atan2(ys[1] - ys[0], xs[1] - xs[0])) % 360.0
        cx, cy = sum(xs) / 4, sum(ys) / 4
        b = (cx - bw / 2, cy - bh / 2, bw, bh)
        return ObjectRecord(pos, sid, key, cls, "bbox", b, None, None, None, None, None, bw * bh, False,
                            {"rotation": angle}, None, None, where)
    if len(v) >= 6 and len(v) % 2 == 0 and task in ("auto", "segment"):
        poly = [c * (w if i % 2 == 0 else h) for i, c in enumerate(v)]
        xs, ys = poly[0::2], poly[1::2]
        b = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        area = abs(sum(xs[i] * ys[(i + 1) % len(xs)] - xs[(i + 1) % len(xs)] * ys[i] for i in range(len(xs)))) / 2
        return ObjectRecord(pos, sid, key, cls, "polygon", b, [poly], None, None, None, None, area, False, None,
                            None, None, where)
    return None
