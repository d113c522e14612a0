"""Model versions and their artifacts in the registry (seed 003): model -> model_version -> model_artifact.

A model version is named by a human id (``m3``) that is unique in its project; commands take
either that or the numeric id. Artifacts are files in storage (``models/p<project id>/<human id>/...``);
the registry keeps their URI, sha256, size, format and provenance, never the bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.schema import DatasetVersion, Model, ModelArtifact, ModelVersion, Project, TrainingEpochMetric
from dsgen_core.storage.base import Storage

_TASK_CODES = {"detect": "det", "segment": "seg", "pose": "pose"}
_HUMAN_ID = re.compile(r"m(\d+)")


def artifact_prefix(mv: ModelVersion) -> str:
    """Where a model version's files go in storage (human ids repeat across projects)."""
    return f"models/p{mv.project_id}/{mv.human_id}"


def get_model_version(session: Session, project: Project, ref: str | int) -> ModelVersion:
    """A model version of ``project`` by human id (``m3``) or numeric id (``3``)."""
    text = str(ref).strip()
    mv = None
    if _HUMAN_ID.fullmatch(text):
        mv = session.scalar(select(ModelVersion).where(ModelVersion.project_id == project.id,
                                                       ModelVersion.human_id == text))
    elif text.isdigit():
        mv = session.get(ModelVersion, int(text))
        mv = mv if mv is not None and mv.project_id == project.id else None
    if mv is None:
        raise NotFound(f"model version {text!r} does not exist in project {project.name!r} (see `dsgen models`)")
    return mv


def model_version_of_run(session: Session, project: Project, dagster_run_id: str) -> str | None:
    """The model version a Dagster run trained (its human id), if any."""
    return session.scalar(select(ModelVersion.human_id).where(  # a retried step made a newer one
        ModelVersion.project_id == project.id, ModelVersion.dagster_run_id == dagster_run_id)
        .order_by(ModelVersion.id.desc()).limit(1))


def list_model_versions(session: Session, project: Project) -> list[ModelVersion]:
    return list(session.scalars(
        select(ModelVersion).where(ModelVersion.project_id == project.id).order_by(ModelVersion.id)))


def ensure_model(session: Session, project: Project, name: str, task: str) -> Model:
    model = session.scalar(select(Model).where(Model.project_id == project.id, Model.name == name))
    if model is None:
        model = Model(project_id=project.id, name=name, task=_TASK_CODES.get(task, task))
        session.add(model)
        session.flush()
    return model


def create_model_version(
    session: Session, model: Model, version: DatasetVersion, recipe: str, *, training_config: dict[str, Any],
    parent: ModelVersion | None = None, init_artifact: ModelArtifact | None = None,
    incremental_info: dict[str, Any] | None = None, dagster_run_id: str | None = None, actor: str | None = None,
) -> ModelVersion:
    # Human ids number within the project: the highest plus one, read under a write lock on the
    # project's row, so two trainers starting at the same moment take m4 and m5, not m4 twice.
    session.execute(update(Project).where(Project.id == model.project_id).values(id=Project.id))
    n = max((int(m.group(1)) for (h,) in session.execute(select(ModelVersion.human_id).where(
             ModelVersion.project_id == model.project_id)) if (m := _HUMAN_ID.fullmatch(h))), default=0)
    mv = ModelVersion(
        project_id=model.project_id, model_id=model.id, human_id=f"m{n + 1}", training_data_version_id=version.id,
        ontology_version_id=version.ontology_version_id, recipe=recipe, framework="ultralytics",
        framework_version=_ultralytics_version(), status="running", training_config=training_config,
        parent_model_version_id=parent.id if parent else None,
        init_from_artifact_id=init_artifact.id if init_artifact else None,
        incremental_info=incremental_info, dagster_run_id=dagster_run_id, started_at=datetime.now(UTC),
    )
    session.add(mv)
    session.flush()
    audit(session, "model_version.create", project_id=model.project_id, entity_type="model_version",
          entity_ids=[mv.id], detail={"human_id": mv.human_id, "dataset_version": version.version_tag, "recipe": recipe},
          actor=actor)
    return mv


def record_epoch(session: Session, mv: ModelVersion, epoch: int, metrics: dict[str, float | None]) -> None:
    session.add(TrainingEpochMetric(
        model_version_id=mv.id, epoch=epoch, train_loss=metrics.get("train_loss"), val_loss=metrics.get("val_loss"),
        precision=metrics.get("precision"), recall=metrics.get("recall"), map50=metrics.get("map50"),
        map50_95=metrics.get("map50_95"),
        extra={k: v for k, v in metrics.items()
               if k not in ("train_loss", "val_loss", "precision", "recall", "map50", "map50_95")},
    ))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ArtifactFile:
    """A finished file to register; ``key`` is where it goes in storage."""

    path: Path
    key: str
    role: str
    format: str
    extra: dict[str, Any] | None = None  # opset, ir_version, compat for ONNX


def register_artifacts(session: Session, mv: ModelVersion, files: list[ArtifactFile], storage: Storage,
                       *, device: str = "cpu", precision: str = "fp32") -> list[ModelArtifact]:
    """Upload the files, then add their rows: a failure on the way leaves no row behind (the caller's transaction)."""
    rows = []
    for f in files:
        sha, size = file_sha256(f.path), os.path.getsize(f.path)
        uri = storage.write_file(f.key, f.path)
        extra = dict(f.extra or {})
        rows.append(ModelArtifact(
            model_version_id=mv.id, role=f.role, format=f.format, device=device, precision=precision,
            storage_uri=uri, sha256=sha, size_bytes=size, opset=extra.pop("opset", None),
            ir_version=extra.pop("ir_version", None), framework=extra.pop("framework", mv.framework),
            framework_version=extra.pop("framework_version", mv.framework_version), compat=extra or None,
        ))
    session.add_all(rows)
    session.flush()
    return rows


def artifact(session: Session, mv: ModelVersion, role: str, fmt: str) -> ModelArtifact | None:
    return session.scalar(
        select(ModelArtifact).where(ModelArtifact.model_version_id == mv.id, ModelArtifact.role == role,
                                    ModelArtifact.format == fmt).order_by(ModelArtifact.id.desc())
    )


def require_artifact(session: Session, mv: ModelVersion, role: str, fmt: str) -> ModelArtifact:
    a = artifact(session, mv, role, fmt)
    if a is None:
        hint = {"onnx": f"`dsgen export onnx {mv.human_id}`", "ckpt": f"training ({mv.status})"}.get(fmt, "")
        raise DsgenError(f"model version {mv.human_id} has no {role} {fmt} artifact yet; it comes from {hint}")
    return a


def fetch_artifact(storage: Storage, a: ModelArtifact, dest_dir: Path) -> Path:
    """A local copy of the artifact (storage may be S3), checked against its sha256."""
    key = storage.key_of(a.storage_uri)
    dest = dest_dir / f"{a.id}-{Path(key).name}"
    if not dest.exists() or file_sha256(dest) != a.sha256:
        storage.download(key, dest)
        if a.sha256 and file_sha256(dest) != a.sha256:
            raise DsgenError(f"artifact {a.storage_uri}: sha256 differs from the registry's; the file was changed")
    return dest


def finish(session: Session, mv: ModelVersion, status: str, *, metrics: dict[str, Any] | None = None,
           error: str | None = None) -> None:
    mv.status = status
    mv.finished_at = datetime.now(UTC)
    mv.error = error
    if metrics is not None:
        mv.metrics = metrics
    mv.is_frozen = status == "succeeded"
    session.flush()
    record_change(session, project_id=mv.project_id, entity="model_versions", op=status, entity_id=mv.id,
                  count=1, detail={"human_id": mv.human_id})


@dataclass(frozen=True)
class ModelVersionSummary:
    """What ``dsgen model show`` and ``dsgen models`` say about a model version."""

    id: int
    human_id: str
    status: str
    error: str | None
    recipe: str | None
    dataset_version: str | None
    parent: str | None
    framework: str | None
    framework_version: str | None
    metrics: dict[str, Any] | None
    incremental_info: dict[str, Any] | None
    training_config: dict[str, Any] | None
    started_at: str | None
    finished_at: str | None
    artifacts: list[dict[str, Any]]
    promotion: dict[str, Any] | None = None  # the loop's decision: promoted | candidate (why) | failed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_version_summary(session: Session, mv: ModelVersion) -> ModelVersionSummary:
    version = session.get(DatasetVersion, mv.training_data_version_id) if mv.training_data_version_id else None
    parent = session.get(ModelVersion, mv.parent_model_version_id) if mv.parent_model_version_id else None
    arts = session.scalars(select(ModelArtifact).where(ModelArtifact.model_version_id == mv.id).order_by(ModelArtifact.id))
    return ModelVersionSummary(
        id=mv.id, human_id=mv.human_id, status=mv.status, error=mv.error, recipe=mv.recipe,
        dataset_version=version.version_tag if version else None, parent=parent.human_id if parent else None,
        framework=mv.framework, framework_version=mv.framework_version, metrics=mv.metrics,
        incremental_info=mv.incremental_info, training_config=mv.training_config,
        started_at=mv.started_at.isoformat() if mv.started_at else None,
        finished_at=mv.finished_at.isoformat() if mv.finished_at else None,
        artifacts=[{"id": a.id, "role": a.role, "format": a.format, "uri": a.storage_uri, "sha256": a.sha256,
                    "size_bytes": a.size_bytes, "opset": a.opset, "ir_version": a.ir_version} for a in arts],
        promotion=mv.promotion,
    )


def _ultralytics_version() -> str:
    from importlib.metadata import version

    return version("ultralytics")


def latest_model_version(session: Session, project: Project, version_tag: str, recipe: str,
                         *, status: str = "succeeded") -> ModelVersion:
    """The newest model version trained with ``recipe`` on ``version_tag`` (a Dagster partition's model)."""
    mv = session.scalar(
        select(ModelVersion)
        .join(DatasetVersion, DatasetVersion.id == ModelVersion.training_data_version_id)
        .where(ModelVersion.project_id == project.id, DatasetVersion.version_tag == version_tag,
               ModelVersion.recipe == recipe, ModelVersion.status == status)
        .order_by(ModelVersion.id.desc()).limit(1)
    )
    if mv is None:
        raise NotFound(f"no {status} model version of recipe {recipe!r} on {version_tag!r} yet (train it first)")
    return mv
