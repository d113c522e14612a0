"""Auto-annotation (seed 003): a model version's detections written into the registry.

They are model annotations (``source='model'``, ``confidence``, ``model_version_id``), kept apart
from human ones: versions snapshot only human annotations unless asked, and queries reach them
with ``source:model``, ``model:m3`` and ``confidence<0.5``. Annotating the same images again with
the same model version replaces its earlier annotations there, so a re-run does not duplicate.
They go through the ingest like every other write (audit, change events, embedding outbox).

    r = auto_annotate(session, project, "m3", storage=storage, query="tag:new", actor="cli:ana")
    r.annotations, r.replaced
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from tqdm import tqdm

from dsgen_core.errors import DsgenError
from dsgen_core.formats.report import ValidationReport
from dsgen_core.inference.detections import Detections
from dsgen_core.inference.detector import OnnxDetector
from dsgen_core.inference.preprocess import require_local_images
from dsgen_core.ml import model_versions as mvs
from dsgen_core.ml.onnx_artifacts import local_onnx
from dsgen_core.query import compile_query
from dsgen_core.registry.ingest import ClassRecord, ImageRecord, IngestBatch, IngestResult, ObjectRecord, ingest
from dsgen_core.registry.schema import Asset, LabelClass, ModelVersion, Project
from dsgen_core.storage.base import Storage


@dataclass(frozen=True)
class AutoAnnotation:
    model_version: str
    query: str
    images: int
    annotations: int
    replaced: int
    conf: float
    batch_id: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def auto_annotate(session: Session, project: Project, ref: str, *, storage: Storage, query: str = "",
                  conf: float = 0.25, actor: str | None = None, progress: bool = False) -> AutoAnnotation:
    """Run model version ``ref``'s ONNX artifact over the images ``query`` selects and write its detections."""
    t0 = time.perf_counter()
    mv = mvs.get_model_version(session, project, ref)
    model_class_keys(session, project, mv)  # refused before any image is read
    selected = compile_query(query, project_id=project.id, session=session).subquery()
    files = require_local_images(dict(session.execute(
        select(Asset.id, Asset.storage_uri).where(Asset.id.in_(select(selected))).order_by(Asset.id)).all()),
        "selected image(s)")
    found: dict[int, Detections] = {}
    with tempfile.TemporaryDirectory(prefix="dsgen-annotate-") as tmp:
        detector = OnnxDetector(local_onnx(session, mv, storage, Path(tmp)), conf=conf)
        for asset_id, uri in tqdm(files.items(), desc=f"annotating with {mv.human_id}", unit="img",
                                  disable=not progress):
            found[asset_id] = detector.predict([uri])[0]
    r = write_detections(session, project, mv, found, storage=storage, actor=actor,
                         detail={"query": query, "conf": conf})
    return AutoAnnotation(mv.human_id, query, len(files), r.objects_new, r.objects_deleted, conf, r.batch_id,
                          round(time.perf_counter() - t0, 2))


def model_class_keys(session: Session, project: Project, mv: ModelVersion) -> list[str]:
    """The project's class key of each of ``mv``'s class indices; refused when the project lacks one."""
    keys: list[str] = (mv.training_config or {}).get("classes") or []
    known = set(session.scalars(select(LabelClass.key).where(LabelClass.project_id == project.id)))
    missing = [k for k in keys if k not in known]
    if missing:
        raise DsgenError(f"{mv.human_id} predicts {', '.join(missing)}, which project {project.name!r} has no class for")
    return keys


def write_detections(session: Session, project: Project, mv: ModelVersion, found: Mapping[int, Detections], *,
                     storage: Storage, actor: str | None, detail: dict[str, Any],
                     audit_action: str = "annotate.model") -> IngestResult:
    """``mv``'s detections on images of ``project`` (asset id -> detections) as its model annotations,
    through the ingest in the caller's transaction; its earlier annotations on those images are replaced."""
    keys = model_class_keys(session, project, mv)
    objects: list[ObjectRecord] = []
    for asset_id, det in found.items():
        for (x1, y1, x2, y2), score, c in zip(det.boxes.tolist(), det.scores.tolist(), det.class_ids.tolist(),
                                              strict=True):
            if not 0 <= c < len(keys):
                raise DsgenError(f"{mv.human_id} gave class index {c}; its training config names {len(keys)} classes")
            w, h = x2 - x1, y2 - y1
            objects.append(ObjectRecord(len(objects), None, asset_id, keys[int(c)], "bbox", (x1, y1, w, h), None,
                                        None, None, None, None, w * h, False, None, None, score))
    batch = IngestBatch(
        operation="auto_annotate", audit_action=audit_action, format="model/detections",
        source_uri=f"model-version:{mv.id}", content_sha256="", namespace=f"model:{mv.human_id}",
        images=[ImageRecord(i, "", "", asset_id=i) for i in found],
        classes=[ClassRecord(k, k) for k in dict.fromkeys(keys)], objects=objects, report=ValidationReport(),
        source="model", model_version_id=mv.id, detection_model=mv.human_id,
        positional_ids=False, replace_model_objects=True, detail=detail,
    )
    return ingest(session, project, batch, storage=storage, actor=actor)
