"""ONNX artifacts of model versions: export, register, and check them against the PyTorch weights.

    art = export_model_onnx(session, project, "m3", storage=storage, actor="cli:ana")
    art.uri, art.opset, art.sha256
    onnx_parity(session, project, "m3", storage=storage).ok
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from dsgen_core.inference.onnx_export import export_onnx
from dsgen_core.inference.parity import ParityReport, check_onnx_parity
from dsgen_core.inference.preprocess import require_local_images
from dsgen_core.inference.ultralytics_env import ultralytics_output_to_stderr
from dsgen_core.ml import model_versions as mvs
from dsgen_core.registry.changes import audit
from dsgen_core.registry.schema import DatasetVersion, ModelVersion, Project
from dsgen_core.storage.base import Storage
from dsgen_core.versions.members import version_members

ONNX_ROLE = "export"


@dataclass(frozen=True)
class OnnxExport:
    """A registered ONNX artifact of a model version."""

    model_version: str
    artifact_id: int
    uri: str
    sha256: str | None
    size_bytes: int | None
    opset: int | None
    ir_version: int | None
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    compat: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _imgsz(mv: ModelVersion) -> int:
    return int(((mv.training_config or {}).get("recipe") or {}).get("imgsz") or 640)


def export_model_onnx(session: Session, project: Project, ref: str, *, storage: Storage, opset: int | None = None,
                      actor: str | None = None) -> OnnxExport:
    """Export the best weights of ``ref`` (``m3``) to ONNX and register the file as a model artifact."""
    mv = mvs.get_model_version(session, project, ref)
    best = mvs.require_artifact(session, mv, "best", "ckpt")
    with tempfile.TemporaryDirectory(prefix="dsgen-onnx-") as tmp:
        weights = mvs.fetch_artifact(storage, best, Path(tmp))
        with ultralytics_output_to_stderr():
            info = export_onnx(weights, Path(tmp) / "model.onnx", imgsz=_imgsz(mv), opset=opset)
        compat = {**info.compat, "inputs": info.inputs, "outputs": info.outputs, "imgsz": info.imgsz,
                  "names": {str(k): v for k, v in info.names.items()}, "task": info.task, "from_artifact": best.id}
        art, = mvs.register_artifacts(session, mv, [mvs.ArtifactFile(
            # Keyed by content: a re-export never changes the file an older artifact row points at.
            info.path, f"{mvs.artifact_prefix(mv)}/onnx/model-{info.sha256[:12]}.onnx", ONNX_ROLE, "onnx",
            {"opset": info.opset, "ir_version": info.ir_version, "framework": "onnx",
             "framework_version": str(info.compat.get("onnx", "")), **compat})], storage)
    audit(session, "model_version.export_onnx", project_id=project.id, entity_type="model_artifact",
          entity_ids=[art.id], detail={"model_version": mv.human_id, "sha256": art.sha256}, actor=actor)
    return OnnxExport(mv.human_id, art.id, art.storage_uri, art.sha256, art.size_bytes, art.opset, art.ir_version,
                      info.inputs, info.outputs, info.compat)


def local_onnx(session: Session, mv: ModelVersion, storage: Storage, dest: Path) -> Path:
    """A local copy of the newest ONNX artifact of ``mv``; refused when it has none (export it first)."""
    return mvs.fetch_artifact(storage, mvs.require_artifact(session, mv, ONNX_ROLE, "onnx"), dest)


def onnx_parity(session: Session, project: Project, ref: str, *, storage: Storage, images: int = 8,
                conf: float = 0.25) -> ParityReport:
    """The same images of the model's own data (val, else test, else train) through PyTorch and ONNX Runtime."""
    mv = mvs.get_model_version(session, project, ref)
    version = session.get(DatasetVersion, mv.training_data_version_id)
    assert version is not None  # every model version is created from one, and it cannot be deleted under it
    members = version_members(session, version)
    for split in ("val", "test", "train"):
        files = {m.asset.id: m.asset.storage_uri for m in members if m.split == split}
        if files:
            break
    chosen = require_local_images(dict(list(files.items())[:images]), f"image(s) of the {split} split")
    with tempfile.TemporaryDirectory(prefix="dsgen-parity-") as tmp:
        onnx_path = local_onnx(session, mv, storage, Path(tmp))
        weights = mvs.fetch_artifact(storage, mvs.require_artifact(session, mv, "best", "ckpt"), Path(tmp))
        return check_onnx_parity(weights, onnx_path, [Path(p) for p in chosen.values()], imgsz=_imgsz(mv), conf=conf)
