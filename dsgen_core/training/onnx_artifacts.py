"""ONNX artifacts of model versions: export, register, and check them against the PyTorch weights."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from dsgen_core.errors import DsgenError
from dsgen_core.inference.onnx_export import export_onnx
from dsgen_core.inference.parity import ParityReport, check_onnx_parity
from dsgen_core.inference.ultralytics_env import ultralytics_output_to_stderr
from dsgen_core.registry.db import Registry
from dsgen_core.formats.version_export import version_members
from dsgen_core.registry.models import DatasetVersion, ModelVersion
from dsgen_core.storage.base import Storage
from dsgen_core.training import model_versions as mvs

ONNX_ROLE = "export"


def _imgsz(mv: ModelVersion) -> int:
    return int(((mv.training_config or {}).get("recipe") or {}).get("imgsz") or 640)


def export_model_onnx(registry: Registry, ref: str, storage: Storage, *, opset: int | None = None) -> dict[str, Any]:
    """Export the best weights of ``ref`` (``m3``) to ONNX and register the file as a model artifact."""
    with registry.session() as s, tempfile.TemporaryDirectory(prefix="dsgen-onnx-") as tmp:
        mv = mvs.get_model_version(s, ref)
        best = mvs.require_artifact(s, mv, "best", "ckpt")
        weights = mvs.fetch_artifact(storage, best, Path(tmp))
        with ultralytics_output_to_stderr():
            info = export_onnx(weights, Path(tmp) / "model.onnx", imgsz=_imgsz(mv), opset=opset)
        compat = {**info.compat, "inputs": info.inputs, "outputs": info.outputs, "imgsz": info.imgsz,
                  "names": {str(k): v for k, v in info.names.items()}, "task": info.task, "from_artifact": best.id}
        art, = mvs.register_artifacts(s, mv, [mvs.ArtifactFile(
            # Keyed by content: a re-export never changes the file an older artifact row points at.
            info.path, f"{mvs.artifact_prefix(mv.human_id)}/onnx/model-{info.sha256[:12]}.onnx", ONNX_ROLE, "onnx",
            {"opset": info.opset, "ir_version": info.ir_version, "framework": "onnx",
             "framework_version": str(info.compat.get("onnx", "")), **compat})], storage)
        return {"model_version": mv.human_id, "artifact_id": art.id, "uri": art.storage_uri, "sha256": art.sha256,
                "size_bytes": art.size_bytes, "opset": art.opset, "ir_version": art.ir_version,
                "inputs": info.inputs, "outputs": info.outputs, "compat": info.compat}


def local_onnx(registry: Registry, ref: str, storage: Storage, dest: Path) -> tuple[Path, ModelVersion]:
    """A local copy of the newest ONNX artifact of ``ref``."""
    with registry.session() as s:
        mv = mvs.get_model_version(s, ref)
        art = mvs.require_artifact(s, mv, ONNX_ROLE, "onnx")
        path = mvs.fetch_artifact(storage, art, dest)
        s.expunge(mv)
        return path, mv


def require_local_images(files: dict[int, str | None], what: str) -> dict[int, str]:
    """``files`` (asset id -> image path), refused with the ids of those without a local file."""
    missing = [i for i, uri in files.items() if not uri or not Path(uri).is_file()]
    if missing:
        raise DsgenError(f"{len(missing)} {what} have no local file (asset ids {missing[:5]}, first: {files[missing[0]]!r}); "
                         "import them with --images")
    return files  # type: ignore[return-value]


def onnx_parity(registry: Registry, ref: str, storage: Storage, *, images: int = 8, conf: float = 0.25) -> ParityReport:
    """The same images of the model's own data (val, else test, else train) through PyTorch and ONNX Runtime."""
    with tempfile.TemporaryDirectory(prefix="dsgen-parity-") as tmp:
        onnx_path, mv = local_onnx(registry, ref, storage, Path(tmp))
        with registry.session() as s:
            weights = mvs.fetch_artifact(storage, mvs.require_artifact(s, mv, "best", "ckpt"), Path(tmp))
            members = version_members(s, s.get(DatasetVersion, mv.training_data_version_id))
        for split in ("val", "test", "train"):
            files = {m.asset.id: m.asset.storage_uri for m in members if m.split == split}
            if files:
                break
        files = require_local_images(dict(list(files.items())[:images]), f"image(s) of the {split} split")
        return check_onnx_parity(weights, onnx_path, [Path(p) for p in files.values()], imgsz=_imgsz(mv), conf=conf)
