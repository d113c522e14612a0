"""Train a model version with Ultralytics from a frozen dataset version.

The run is recorded as it happens: the model version row exists (status ``running``) before the
first epoch, every epoch's losses and metrics are committed when the epoch ends, checkpoints go to
storage every ``checkpoint_every`` epochs. Only a finished run registers artifacts (best and final
weights), in the same transaction that marks it ``succeeded``; a run that fails or is interrupted
ends ``failed`` or ``cancelled`` with its error and no artifacts.

Incremental training (a parent model version): the parent's best weights initialise the model,
a share of the parent's training images (``recipe.rehearsal``) is mixed into the new training set
(never images of the new version's val/test splits), and with ``recipe.distillation`` > 0 the
parent also teaches as Ultralytics' distillation teacher.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsgen_core.errors import DsgenError
from dsgen_core.formats.version_export import export_version_yolo
from dsgen_core.inference.ultralytics_env import import_ultralytics, provide_fonts, ultralytics_output_to_stderr
from dsgen_core.ml import model_versions as mvs
from dsgen_core.ml.charts import draw_training_curves
from dsgen_core.ml.recipes import Recipe
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import DatasetVersion, ModelVersion, Project
from dsgen_core.storage.base import Storage
from dsgen_core.versions.lifecycle import get_version
from dsgen_core.versions.members import class_order, version_members

EpochCallback = Callable[[int, int, dict[str, float | None]], None]  # (epoch, epochs, metrics)


@dataclass
class TrainResult:
    model_version_id: int
    human_id: str
    status: str
    metrics: dict[str, float]
    epochs: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    curves_png: str | None = None
    seconds: float = 0.0
    incremental_info: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        return {"model_version": self.human_id, "id": self.model_version_id, "status": self.status,
                "metrics": self.metrics, "artifacts": self.artifacts, "checkpoints": self.checkpoints,
                "curves_png": self.curves_png, "incremental_info": self.incremental_info,
                "epochs": len(self.epochs), "seconds": round(self.seconds, 2)}


def epoch_row(trainer: Any) -> dict[str, float | None]:
    """One epoch of an Ultralytics trainer as registry metrics (detection keys; -seg/-pose add theirs to extra)."""
    m = {k: float(v) for k, v in (trainer.metrics or {}).items()}
    train = {k: float(v) for k, v in trainer.label_loss_items(trainer.tloss, prefix="train").items()}
    val_losses = [v for k, v in m.items() if k.startswith("val/")]
    row: dict[str, float | None] = {
        "train_loss": sum(train.values()) if train else None,
        "val_loss": sum(val_losses) if val_losses else None,
        "precision": m.get("metrics/precision(B)"), "recall": m.get("metrics/recall(B)"),
        "map50": m.get("metrics/mAP50(B)"), "map50_95": m.get("metrics/mAP50-95(B)"),
    }
    row.update({k: v for k, v in {**train, **m}.items() if not k.endswith("(B)")})
    return row


def train_model(
    registry: Registry, project: str, version_tag: str, recipe: Recipe, *, storage: Storage,
    parent: str | None = None, model_name: str | None = None, work_dir: Path | None = None,
    dagster_run_id: str | None = None, on_epoch: EpochCallback | None = None, actor: str | None = None,
) -> TrainResult:
    """Train ``recipe`` on the frozen version ``version_tag`` of ``project``; ``parent`` (``m3``) makes it incremental.

    Unlike the single-transaction services, training takes the registry (a session factory):
    the run must be visible as it goes, so the version row, each epoch and the result are
    committed in transactions of their own.
    """
    work = Path(work_dir or tempfile.mkdtemp(prefix="dsgen-train-"))
    try:
        return _train(registry, project, version_tag, recipe, storage, parent, model_name, work, dagster_run_id,
                      on_epoch, actor)
    finally:
        if work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def use_cpu_threads(recipe: Recipe) -> int:
    """Give CPU training the recipe's threads (default: every core); returns how many.

    Ultralytics' device selection sets torch to ``cpu_count - 1`` threads, which on a 2-core
    machine is one: the demo trained on half the machine (247 s of CPU in 252 s). Runs after it.
    """
    import torch

    n = recipe.threads or os.cpu_count() or 1
    if recipe.device == "cpu":
        torch.set_num_threads(n)
    return n


def _train(registry: Registry, project: str, version_tag: str, recipe: Recipe, storage: Storage, parent: str | None,
           model_name: str | None, work: Path, dagster_run_id: str | None, on_epoch: EpochCallback | None,
           actor: str | None) -> TrainResult:
    t0 = time.perf_counter()
    with registry.session() as s:
        proj = get_project(s, project)
        version = get_version(s, proj, version_tag)
        if not version.is_frozen:
            raise DsgenError(f"version {version_tag!r} is a draft; freeze it before training (`dsgen version freeze {version_tag}`)")
        parent_mv = mvs.get_model_version(s, proj, parent) if parent else None
        init = None
        if parent_mv is not None:
            if parent_mv.status != "succeeded":
                raise DsgenError(f"parent model version {parent_mv.human_id} is {parent_mv.status}; only a trained model can be a parent")
            init = mvs.require_artifact(s, parent_mv, "best", "ckpt")
        data = _prepare_data(s, proj, version, recipe, work, storage, parent_mv)
        incremental = _incremental_info(recipe, parent_mv, data) if parent_mv else None
        model = mvs.ensure_model(s, proj, model_name or f"{project}-{recipe.task}", recipe.task)
        config = {"recipe": recipe.to_dict(), "classes": data["classes"], "train_args": recipe.train_args(),
                  "model_source": "parent" if parent_mv else recipe.model_source(), "data": data["counts"]}
        mv = mvs.create_model_version(s, model, version, recipe.name, training_config=config, parent=parent_mv,
                                      init_artifact=init, incremental_info=incremental, dagster_run_id=dagster_run_id,
                                      actor=actor)
        mv_id, human_id, prefix = mv.id, mv.human_id, mvs.artifact_prefix(mv)
        init_path = mvs.fetch_artifact(storage, init, work) if init is not None else None
    result = TrainResult(mv_id, human_id, "running", {}, incremental_info=incremental)
    try:
        _run(registry, mv_id, prefix, recipe, data, work, storage, init_path, result, on_epoch)
        curves = work / "training_curves.png"
        draw_training_curves(result.epochs, curves, title=f"{human_id}: {recipe.name} on {version_tag}")
        with registry.session() as s:
            trained_mv = s.get(ModelVersion, mv_id)
            assert trained_mv is not None  # created above, in its own committed session
            weights = work / "run" / "weights"
            arts = mvs.register_artifacts(s, trained_mv, [
                mvs.ArtifactFile(weights / "best.pt", f"{prefix}/weights/best.pt", "best", "ckpt"),
                mvs.ArtifactFile(weights / "last.pt", f"{prefix}/weights/final.pt", "final", "ckpt"),
            ], storage)
            result.curves_png = storage.write_file(f"{prefix}/training_curves.png", curves)
            mvs.finish(s, trained_mv, "succeeded", metrics=result.metrics)
            result.artifacts = [{"role": a.role, "format": a.format, "uri": a.storage_uri, "sha256": a.sha256,
                                 "size_bytes": a.size_bytes} for a in arts]
        result.status = "succeeded"
    except BaseException as e:
        cancelled = isinstance(e, KeyboardInterrupt) or type(e).__name__ == "DagsterExecutionInterruptedError"
        result.status = "cancelled" if cancelled else "failed"
        message = f"{type(e).__name__}: {e}"
        with registry.session() as s:
            failed_mv = s.get(ModelVersion, mv_id)
            assert failed_mv is not None  # created above, in its own committed session
            mvs.finish(s, failed_mv, result.status, error=message if cancelled or isinstance(e, DsgenError)
                       else message + "\n" + traceback.format_exc(limit=8))
        raise
    finally:
        result.seconds = time.perf_counter() - t0
    return result


def _prepare_data(session: Any, project: Project, version: DatasetVersion, recipe: Recipe, work: Path,
                  storage: Storage, parent: ModelVersion | None) -> dict[str, Any]:
    """The version's YOLO export, plus the parent's rehearsal images when training incrementally."""
    out = work / "data"
    export = export_version_yolo(session, project, version.version_tag, out, storage=storage, task=recipe.task)
    import yaml

    spec = yaml.safe_load((out / "data.yaml").read_text())
    classes = [c.key for c in class_order(session, version)]
    counts: dict[str, Any] = {"images": export.files, "objects": export.annotations, "skipped": export.skipped}
    if "train" not in export.files:
        raise DsgenError(f"version {version.version_tag!r} has no train split; nothing to train on")
    if parent is not None and recipe.rehearsal > 0 and parent.training_data_version_id:
        parent_version = session.get(DatasetVersion, parent.training_data_version_id)
        old = work / "rehearsal"
        export_version_yolo(session, project, parent_version.version_tag, old, storage=storage,
                            task=recipe.task, class_keys=classes)
        # Nothing the new version evaluates on may be trained on, and its own train images are there
        # already: images of the new version (by asset, not by export file name) stay out of the pool.
        taken = {m.asset.id for m in version_members(session, version)}
        pool = sorted(old / "images" / "train" / m.name for m in version_members(session, parent_version)
                      if m.split == "train" and m.asset.id not in taken)
        k = round(len(pool) * recipe.rehearsal)
        picked = sorted(random.Random(recipe.seed).sample(pool, k)) if k else []
        new_train = sorted((out / "images" / "train").iterdir())
        (work / "train.txt").write_text("".join(f"{p}\n" for p in [*new_train, *picked]))
        spec["train"] = str(work / "train.txt")
        spec = {k2: (str(out / v) if k2 in ("val", "test") else v) for k2, v in spec.items()}
        counts["rehearsal"] = {"parent_version": parent_version.version_tag, "parent_train_images": len(pool),
                               "mixed_in": k, "new_train_images": len(new_train)}
    data_yaml = work / "data.yaml"
    data_yaml.write_text(yaml.safe_dump({"path": str(out), **spec}, sort_keys=False))
    return {"yaml": data_yaml, "classes": classes, "counts": counts}


def _incremental_info(recipe: Recipe, parent: ModelVersion, data: dict[str, Any]) -> dict[str, Any]:
    strategies = ["fine-tune from parent"]
    if "rehearsal" in data["counts"]:
        strategies.append("rehearsal")
    if recipe.distillation > 0:
        strategies.append("distillation")
    return {"strategy": " + ".join(strategies), "parent": parent.human_id, "rehearsal_share": recipe.rehearsal,
            "distillation_weight": recipe.distillation, **data["counts"].get("rehearsal", {})}


def _run(registry: Registry, mv_id: int, prefix: str, recipe: Recipe, data: dict[str, Any], work: Path,
         storage: Storage, init_path: Path | None, result: TrainResult, on_epoch: EpochCallback | None) -> None:
    with ultralytics_output_to_stderr():
        model = import_ultralytics().YOLO(str(init_path) if init_path else recipe.model_source())
        provide_fonts()
        _fit(model, recipe, data, work, storage, init_path, result, on_epoch, registry, mv_id, prefix)


def _fit(model: Any, recipe: Recipe, data: dict[str, Any], work: Path, storage: Storage, init_path: Path | None,
         result: TrainResult, on_epoch: EpochCallback | None, registry: Registry, mv_id: int, prefix: str) -> None:
    trained: list[int] = []

    def train_epoch_end(trainer: Any) -> None:
        trained.append(trainer.epoch)

    def fit_epoch_end(trainer: Any) -> None:
        if not trained or trained[-1] != trainer.epoch:
            # Ultralytics' last call validates the best weights (as epoch N+1): that's the result
            # (read from the trainer when training ends), not an epoch.
            return
        row = epoch_row(trainer)
        epoch = trainer.epoch + 1
        with registry.session() as s:
            running_mv = s.get(ModelVersion, mv_id)
            assert running_mv is not None  # created before training started
            mvs.record_epoch(s, running_mv, epoch, row)
        result.epochs.append({"epoch": epoch, **row})
        if on_epoch is not None:
            on_epoch(epoch, trainer.epochs, row)

    def model_save(trainer: Any) -> None:
        epoch = trainer.epoch + 1
        if recipe.checkpoint_every > 0 and epoch % recipe.checkpoint_every == 0 and Path(trainer.last).is_file():
            result.checkpoints.append(storage.write_file(f"{prefix}/checkpoints/epoch_{epoch:04d}.pt", _copy(trainer.last, epoch)))

    model.add_callback("on_pretrain_routine_start", lambda _trainer: use_cpu_threads(recipe))
    model.add_callback("on_train_epoch_end", train_epoch_end)
    model.add_callback("on_fit_epoch_end", fit_epoch_end)
    model.add_callback("on_model_save", model_save)
    args = recipe.train_args()
    if init_path is not None and recipe.distillation > 0:
        args |= {"distill_model": str(init_path), "dis": recipe.distillation}
    model.train(data=str(data["yaml"]), project=str(work), name="run", exist_ok=True, **args)
    final = model.trainer.metrics or {}
    result.metrics = {
        "precision": float(final.get("metrics/precision(B)", 0.0)), "recall": float(final.get("metrics/recall(B)", 0.0)),
        "map50": float(final.get("metrics/mAP50(B)", 0.0)), "map50_95": float(final.get("metrics/mAP50-95(B)", 0.0)),
        "epochs": len(result.epochs), "fitness": float(getattr(model.trainer, "best_fitness", None) or 0.0),
    }


def _copy(path: str | Path, epoch: int) -> Path:
    """A private copy: Ultralytics rewrites last.pt in place, and local storage keeps files by hard link."""
    dst = Path(path).with_name(f"epoch_{epoch:04d}.pt")
    shutil.copyfile(path, dst)
    return dst
