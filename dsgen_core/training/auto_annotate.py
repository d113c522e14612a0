"""Auto-annotation (seed 003): a model version's detections written into the registry.

They are model annotations (``source='model'``, ``confidence``, ``model_version_id``), kept apart
from human ones: versions snapshot only human annotations unless asked, and queries reach them
with ``source:model``, ``model:m3`` and ``confidence<0.5``. Annotating the same images again with
the same model version replaces its earlier annotations there, so a re-run does not duplicate.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from tqdm import tqdm

from dsgen_core.errors import DsgenError
from dsgen_core.inference.detector import OnnxDetector
from dsgen_core.query import compile_query
from dsgen_core.registry.bulk import insert_rows
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.db import Registry
from dsgen_core.registry.models import Annotation, Asset, LabelClass, utcnow
from dsgen_core.registry.projects import current_ontology, get_project
from dsgen_core.storage.base import Storage
from dsgen_core.training.onnx_artifacts import local_onnx, require_local_images

_COLUMNS = ("asset_id", "label_class_id", "geometry_type", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "area",
            "confidence")


def auto_annotate(registry: Registry, project: str, ref: str, storage: Storage, *, query: str = "",
                  conf: float = 0.25, progress: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dsgen-annotate-") as tmp:
        onnx_path, mv = local_onnx(registry, ref, storage, Path(tmp))
        detector = OnnxDetector(onnx_path, conf=conf)
        keys: list[str] = (mv.training_config or {}).get("classes") or []
        with registry.session() as s:
            proj = get_project(s, project)
            onto = current_ontology(s, proj)
            class_id = {k: i for k, i in s.execute(
                select(LabelClass.key, LabelClass.id).where(LabelClass.ontology_version_id == onto.id))}
            missing = [k for k in keys if k not in class_id]
            if missing:
                raise DsgenError(f"{mv.human_id} predicts {', '.join(missing)}, which project {project!r}'s ontology "
                                 f"{onto.version_tag} does not have")
            selected = compile_query(query, project_id=proj.id).subquery()
            assets = [(i, uri) for i, uri in s.execute(
                select(Asset.id, Asset.storage_uri).where(Asset.id.in_(select(selected))).order_by(Asset.id))]
            pid = proj.id
        require_local_images(dict(assets), "selected image(s)")
        rows: list[tuple[Any, ...]] = []
        for asset_id, uri in tqdm(assets, desc=f"annotating with {mv.human_id}", unit="img", disable=not progress):
            det = detector.predict([uri])[0]
            for (x1, y1, x2, y2), score, c in zip(det.boxes.tolist(), det.scores.tolist(), det.class_ids.tolist(), strict=True):
                w, h = x2 - x1, y2 - y1
                rows.append((asset_id, class_id[keys[int(c)]], "bbox", x1, y1, w, h, w * h, score))
    with registry.session() as s:
        asset_ids = [a for a, _ in assets]
        replaced = 0
        for i in range(0, len(asset_ids), 10_000):
            replaced += s.execute(delete(Annotation).where(
                Annotation.model_version_id == mv.id, Annotation.asset_id.in_(asset_ids[i:i + 10_000]))).rowcount or 0
        insert_rows(s.connection(), "annotations", _COLUMNS, rows,
                    constants={"source": "model", "model_version_id": mv.id, "detection_model": mv.human_id,
                               "iscrowd": False, "is_normalized": False, "is_validated": False,
                               "created_at": utcnow(), "updated_at": utcnow()})
        audit(s, "annotate.model", project_id=pid, entity_type="model_version", entity_ids=[mv.id],
              detail={"query": query, "images": len(assets), "annotations": len(rows), "replaced": replaced, "conf": conf})
        record_change(s, project_id=pid, entity="annotations", op="auto_annotate", entity_id=mv.id, count=len(rows),
                      detail={"model_version": mv.human_id, "query": query})
    return {"model_version": mv.human_id, "query": query, "images": len(assets), "annotations": len(rows),
            "replaced": replaced, "conf": conf, "seconds": round(time.perf_counter() - t0, 2)}
