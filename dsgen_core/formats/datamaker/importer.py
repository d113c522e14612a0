"""Import Datamaker annotatorData files (seed 004) into the registry, through the ingest.

A file holds the six top-level maps keyed by asset id (``image_1``, ...): ``annotations`` (id,
tool, flags, the flattened ``classification``, ``label``), ``annotationsData`` (the geometry, by
the same id), ``relations``, ``annotationGroups``, ``extra`` and ``assignmentId``. Each asset is
an image identified by its ``assignmentId`` (else its file's path under the folder given) and
asset id; each annotation an object identified by its id
(``datamaker:<id>``). The geometry goes into the registry's columns (a bounding box's rotation,
in radians, stays as written), the class is ``classification["class"]`` and the other flattened
keys are the object's attributes; the annotations of one ``instanceId`` (sequential data) are one
track; what has no column (the flags, ``label``, point ids, the
compression a segmentation was written with, a video ``section``) is kept: each record as
written, in the object's ``extra["datamaker"]``, so the export writes it back as it came.

A project's dm-schema (JSON Schema) validates every classification with a real validator; a
violation names the file, asset, annotation and the failing rule, and refuses the import unless
``skip_invalid``.

    with registry.session(bulk=True) as s:
        result = import_datamaker(s, project, "tasks/", images="images/", schema="dm-schema.json",
                                  storage=storage, sources_dir=home / "registry", actor="cli")
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import orjson
from pycocotools import mask as mask_utils
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError
from dsgen_core.formats.coco.importer import ImportResult
from dsgen_core.formats.images import ImageProblem, ImageSource, probe_image
from dsgen_core.formats.report import ValidationReport
from dsgen_core.registry.ingest import (
    ClassRecord,
    GroupRecord,
    ImageRecord,
    IngestBatch,
    ObjectRecord,
    OnConflict,
    RelationRecord,
    ingest,
)
from dsgen_core.registry.schema import Project
from dsgen_core.storage import Storage

TOP_KEYS = ("extra", "annotations", "annotationsData", "relations", "annotationGroups", "assignmentId")
TOOLS = {"bounding_box": "bbox", "polygon": "polygon", "polyline": "polyline", "keypoint": "keypoints",
         "segmentation": "mask", "classification": "label"}
NAMESPACE = "datamaker"
FILE_NAME_KEYS = ("file_name", "fileName", "filename", "image", "name")


def import_datamaker(session: Session, project: Project, path: Path | str, *, storage: Storage,
                     images: Path | str | None = None, schema: Path | str | dict[str, Any] | None = None,
                     actor: str | None = None, skip_invalid: bool = False, on_conflict: OnConflict = "error",
                     progress: bool = False) -> ImportResult:
    """Import one annotatorData file, or every ``*.json`` under a folder, in one batch."""
    t0 = time.perf_counter()
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*.json") if p.is_file())
        base = root
    elif root.is_file():
        files, base = [root], root.parent
    else:
        raise DsgenError(f"{root}: no such file or folder")
    if not files:
        raise DsgenError(f"{root}: no annotatorData files (*.json)")
    validator = _validator(schema)
    source = ImageSource(Path(images)) if images is not None else None
    report = ValidationReport()
    reader = _Reader(report, validator, source)
    for f in files:
        reader.read(f, f.relative_to(base).as_posix())
    batch = IngestBatch(
        operation="import", audit_action="import.datamaker", format="datamaker/annotatorData",
        source_uri=str(root.resolve()), content_sha256=reader.sha(), namespace=NAMESPACE, images=reader.images,
        classes=[ClassRecord(k, k, record=f"class {k!r}") for k in sorted(reader.classes)], objects=reader.objects,
        report=report, file=str(root), relations=reader.relations, groups=reader.groups,
        detail={"files": len(files)})
    result = ingest(session, project, batch, storage=storage, actor=actor, on_conflict=on_conflict,
                    skip_invalid=skip_invalid, progress=progress)
    return ImportResult(project.name, "datamaker", len(reader.classes), result, report,
                        seconds=time.perf_counter() - t0)


def _validator(schema: Path | str | dict[str, Any] | None) -> Any:
    if schema is None:
        return None
    import jsonschema

    if not isinstance(schema, dict):
        p = Path(schema)
        try:
            schema = orjson.loads(p.read_bytes())
        except FileNotFoundError:
            raise DsgenError(f"{p}: dm-schema file not found") from None
        except orjson.JSONDecodeError as exc:
            raise DsgenError(f"{p}: the dm-schema is not JSON: {exc}") from None
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise DsgenError(f"the dm-schema is not a valid JSON Schema: {exc.message}") from None
    return cls(schema)


class _Reader:
    def __init__(self, report: ValidationReport, validator: Any, source: ImageSource | None) -> None:
        self.report, self.validator, self.source = report, validator, source
        self.images: list[ImageRecord] = []
        self.objects: list[ObjectRecord] = []
        self.relations: list[RelationRecord] = []
        self.groups: list[GroupRecord] = []
        self.classes: set[str] = set()
        self.hashes: list[bytes] = []
        self.verdicts: dict[Hashable, list[str]] = {}

    def sha(self) -> str:
        import hashlib

        return hashlib.sha256(b"".join(self.hashes)).hexdigest()

    def read(self, path: Path, rel: str) -> None:
        raw = path.read_bytes()
        self.hashes.append(raw)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DsgenError(f"{path}: not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise DsgenError(f"{path}: annotatorData must be a JSON object, not {type(doc).__name__}")
        unknown = sorted(set(doc) - set(TOP_KEYS))
        if unknown:
            self.report.warning(rel, "annotatorData", ",".join(unknown), "keys that are not annotatorData's; not kept")
        maps = {}
        for key in TOP_KEYS[:-1]:
            v = doc.get(key) or {}
            if not isinstance(v, dict):
                raise DsgenError(f"{path}: {key} must be an object keyed by asset id, not {type(v).__name__}")
            maps[key] = v
        assignment = doc.get("assignmentId")
        if assignment is not None and not isinstance(assignment, (int, str)):
            raise DsgenError(f"{path}: assignmentId must be a number or a string")
        assets = list(dict.fromkeys([*maps["annotations"], *maps["annotationsData"], *maps["extra"]]))
        for asset_id in assets:
            self._asset(path, rel, asset_id, maps, assignment, "assignmentId" in doc)

    def _asset(self, path: Path, rel: str, asset_id: str, maps: dict[str, Any], assignment: Any,
               has_assignment: bool) -> None:
        extra = maps["extra"].get(asset_id)
        ref: Hashable = (rel, asset_id)
        file_name = next((extra[k] for k in FILE_NAME_KEYS if isinstance(extra, dict) and isinstance(extra.get(k), str)),
                         None)
        info = None
        if self.source is not None:
            candidates = [file_name] if file_name else [f"{Path(rel).stem}{ext}" for ext in
                                                        (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")]
            for name in candidates:
                found = self.source.resolve(name)
                if found is not None:
                    try:
                        info = probe_image(found)
                    except ImageProblem as exc:
                        self.report.error(rel, asset_id, "image", str(exc))
                    file_name = name
                    break
            else:
                self.report.error(rel, asset_id, "image", f"no image file for it in {self.source.root} "
                                                          f"(looked for {', '.join(candidates[:3])})")
        width = info.width if info else _int(extra, "width")
        height = info.height if info else _int(extra, "height")
        # The file's name (not its folder: the same work may be imported through another folder) is where
        # the export writes the asset back.
        keep = {"file": PurePosixPath(rel).name, "asset": asset_id, "has_extra": asset_id in maps["extra"],
                "extra": orjson.dumps(extra).decode()}
        if has_assignment:
            keep["assignmentId"] = assignment
        # The platform's own id of the work (assignmentId) names the asset wherever the file lies; without
        # one, the file's path under the folder given does.
        identity = f"assignment:{assignment}" if has_assignment and assignment not in (None, "") else rel
        self.images.append(ImageRecord(ref, f"{NAMESPACE}:{identity}#{asset_id}", file_name or f"{rel}#{asset_id}",
                                       width, height, extra={NAMESPACE: keep}, file=info,
                                       record=f"{rel}: {asset_id}"))
        data = {}
        for i, d in enumerate(maps["annotationsData"].get(asset_id) or []):
            if isinstance(d, dict) and isinstance(d.get("id"), str):
                data[d["id"]] = (i, d)
            else:
                self.report.error(rel, f"{asset_id}.annotationsData[{i}]", "id", "an item without a string id")
        anns = maps["annotations"].get(asset_id) or []
        seen: set[str] = set()
        for i, a in enumerate(anns):
            where = f"{rel}: {asset_id}.annotations[{i}]"
            if not isinstance(a, dict) or not isinstance(a.get("id"), str):
                self.report.error(rel, where, "id", "an annotation without a string id")
                self.report.skipped["annotations"] += 1
                continue
            if a["id"] in seen:
                self.report.error(rel, where, "id", f"id {a['id']!r} is used twice in {asset_id}")
                self.report.skipped["annotations"] += 1
                continue
            seen.add(a["id"])
            rec = self._annotation(rel, asset_id, where, ref, a, data.get(a["id"], (None, None)), width, height)
            if rec is None:
                self.report.skipped["annotations"] += 1
            else:
                self.objects.append(rec)
        for j, d in data.items():
            if j not in seen:
                self.report.warning(rel, f"{asset_id}.annotationsData[{d[0]}]", "id",
                                    f"data for {j!r}, which no annotation has; not kept")
        for i, r in enumerate(maps["relations"].get(asset_id) or []):
            if not isinstance(r, dict) or not r.get("annotationId") or not r.get("targetAnnotationId"):
                self.report.error(rel, f"{asset_id}.relations[{i}]", "annotationId", "a relation needs "
                                  "annotationId and targetAnnotationId")
                continue
            cls = r.get("classification")
            self.relations.append(RelationRecord(ref, r["annotationId"], r["targetAnnotationId"],
                                                 {"classification": cls, NAMESPACE: r}, r.get("id")))
        for i, g in enumerate(maps["annotationGroups"].get(asset_id) or []):
            if not isinstance(g, dict):
                self.report.error(rel, f"{asset_id}.annotationGroups[{i}]", "group", "not an object")
                continue
            members: list[tuple[int | str, int | str | None]] = []
            self._members(g.get("annotationList") or [], None, members)
            self.groups.append(GroupRecord(ref, g.get("id"), {"classification": g.get("classification"),
                                                              NAMESPACE: g}, members))

    def _violations(self, cls: dict[str, Any]) -> list[str]:
        """The dm-schema's complaints about a classification; the same classification is judged once
        (a project's objects repeat a few combinations of class and values many times)."""
        try:  # most classifications are flat text: a tuple is the cheapest key
            key: Hashable = tuple(cls.items())
            hash(key)
        except TypeError:
            key = orjson.dumps(cls)
        found = self.verdicts.get(key)
        if found is None:
            errors = [] if self.validator.is_valid(cls) else sorted(self.validator.iter_errors(cls),
                                                                    key=lambda e: list(e.path))
            found = [f"dm-schema: {e.message} (rule {'/'.join(str(p) for p in e.schema_path)})" for e in errors[:3]]
            self.verdicts[key] = found
        return found

    def _members(self, items: list[Any], parent: str | None, out: list[tuple[int | str, int | str | None]]) -> None:
        for m in items:
            if isinstance(m, dict) and isinstance(m.get("annotationId"), str):
                out.append((m["annotationId"], parent))
                self._members(m.get("children") or [], m["annotationId"], out)

    def _annotation(self, rel: str, asset_id: str, where: str, ref: Hashable, a: dict[str, Any],
                    data_item: tuple[int | None, dict[str, Any] | None], width: int | None,
                    height: int | None) -> ObjectRecord | None:
        tool = a.get("tool")
        gtype = TOOLS.get(str(tool))
        if gtype is None:
            self.report.error(rel, where, "tool", f"unknown tool {tool!r} (known: {', '.join(TOOLS)})")
            return None
        cls = a.get("classification")
        if cls is not None and not isinstance(cls, dict):
            self.report.error(rel, where, "classification", "must be an object (the flattened classification) or null")
            return None
        if self.validator is not None and cls is not None:
            problems = self._violations(cls)
            for message in problems:
                self.report.error(rel, f"{asset_id} annotation {a['id']}", "classification", message)
            if problems:
                return None
        class_key = cls.get("class") if cls else None
        if cls is not None and not isinstance(class_key, str):
            self.report.error(rel, where, "classification.class", "the classification names no class")
            return None
        if class_key:
            self.classes.add(class_key)
        attrs: dict[str, Any] | None = None
        if cls:
            attrs = dict(cls)
            attrs.pop("class", None)
            attrs = attrs or None
        if isinstance(a.get("instanceId"), (str, int)):
            # One instance across a sequence (the frames of one file): its annotations are one track.
            attrs = {**(attrs or {}), "track_id": f"{rel}:{a['instanceId']}"}
        _, d = data_item
        # The records as written, as JSON text (JSONB would sort a mapping's keys): the export gives them
        # back byte for byte while the registry's class, attributes and geometry still say the same.
        keep: dict[str, Any] = {"a": orjson.dumps(a).decode()}
        if d is not None:
            keep["d"] = orjson.dumps(d).decode()
        bbox = polygon = rle = kps = None
        nk = None
        area = None
        try:
            if gtype == "bbox":
                c = (d or {}).get("coordinate") or {}
                bbox = (float(c["x"]), float(c["y"]), float(c["width"]), float(c["height"]))
                area = bbox[2] * bbox[3]
                if "rotation" in c:  # radians here; the registry's attribute is in degrees, as CVAT's
                    attrs = {**(attrs or {}), "rotation": math.degrees(float(c["rotation"]))}
            elif gtype in ("polygon", "polyline"):
                pts = (d or {}).get("coordinate") or []
                polygon = [[float(v) for p in pts for v in (p["x"], p["y"])]]
                xs, ys = polygon[0][0::2], polygon[0][1::2]
                if xs:
                    bbox = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
            elif gtype == "keypoints":
                c = (d or {}).get("coordinate") or {}
                kps = [float(c["x"]), float(c["y"]), 2.0]
                nk = 1
            elif gtype == "mask":
                if not width or not height:
                    self.report.error(rel, where, "pixel_indices", "a segmentation needs the image's size: give "
                                      "--images, or width/height in extra")
                    return None
                idx = _in_bounds(pixel_indices(d or {}), width * height)
                flat = np.zeros(width * height, dtype=np.uint8)
                flat[idx] = 1
                rle = mask_utils.encode(np.asfortranarray(flat.reshape(height, width)))
                rle["counts"] = rle["counts"].decode("ascii")
                area = float(len(idx))
                x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
                bbox = (x, y, w, h)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            self.report.error(rel, where, "annotationsData", f"{tool} geometry is malformed: {exc!r}")
            return None
        return ObjectRecord(len(self.objects), a["id"], ref, class_key, gtype, bbox, polygon, rle, kps, nk, None,
                            area, False, attrs, {NAMESPACE: keep}, None, where)


def _int(extra: Any, key: str) -> int | None:
    v = extra.get(key) if isinstance(extra, dict) else None
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def pixel_indices(d: dict[str, Any]) -> np.ndarray:
    """Row-major pixel indices; RLE ``[start, count, ...]`` when ``isCompressed``."""
    raw = d.get("pixel_indices") or []
    if d.get("isCompressed"):
        fmt = d.get("compressionFormat")
        if fmt != "rle":
            raise ValueError(f"compressionFormat {fmt!r} (only 'rle' is defined)")
        if len(raw) % 2:
            raise ValueError("RLE pixel_indices must be [start, count, ...] pairs")
        runs = np.asarray(raw, dtype=np.int64).reshape(-1, 2)
        return np.concatenate([np.arange(s, s + n) for s, n in runs]) if len(runs) else np.zeros(0, np.int64)
    return np.asarray(raw, dtype=np.int64)


def _in_bounds(idx: np.ndarray, n: int) -> np.ndarray:
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"pixel index {int(idx.max()) if int(idx.max()) >= n else int(idx.min())} is outside "
                         f"the image ({n} pixels)")
    return idx
