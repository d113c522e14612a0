"""Model versions, their ONNX artifacts and evaluations: one partition per dataset version × recipe.

Materializing ``model_version`` for ``v1|demo`` trains a new model version (``m3``) with the
``demo`` recipe on frozen version ``v1``; training runs in the ``gpu`` pool, so one machine trains
one model at a time. ``onnx_artifact`` and ``evaluation`` follow by automation, each after the
blocking checks of the asset before it passed.
"""

from typing import Any, cast

import dagster as dg

from dsgen_core.accounts.usage import RUN_USER_TAG, record_usage
from dsgen_core.evaluation.model_eval import evaluate_model_version, evaluate_on_parent_split
from dsgen_core.ml import model_versions as mvs
from dsgen_core.ml.onnx_artifacts import export_model_onnx
from dsgen_core.ml.recipes import get_recipe
from dsgen_core.ml.trainer import train_model
from dsgen_pipelines.automation import after_checked_upstream
from dsgen_pipelines.metadata import md_table, png_markdown
from dsgen_pipelines.partitions import model_partitions
from dsgen_pipelines.resources import (
    TRAINING_RETRIES,
    TRANSIENT_RETRIES,
    RegistryResource,
    StorageResource,
    run_actor,
    user_errors,
)
from dsgen_pipelines.versions.assets import dataset_version

GPU_POOL = "gpu"
EVAL_ON_TAG = "dsgen/eval_on"
METRICS = ("precision", "recall", "map50", "map50_95")


class TrainConfig(dg.Config):
    parent: str | None = None
    """Model version to continue from (``m1``): incremental training with the recipe's rehearsal share."""


def _keys(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> tuple[str, str]:
    # Model partitions are multi-partitioned, so the key is a MultiPartitionKey (typed as a plain str).
    keys = cast(dg.MultiPartitionKey, context.partition_key).keys_by_dimension
    return keys["dataset_version"], keys["recipe"]


def partition_model_version(registry: RegistryResource,
                            context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> str:
    tag, recipe = _keys(context)
    with registry.session() as s:
        return mvs.latest_model_version(s, registry.get_project(s), tag, recipe).human_id


def _epochs_table(epochs: list[dict[str, Any]]) -> str:
    def f(v: Any) -> str:
        return "" if v is None else f"{v:.4f}"

    return md_table(["epoch", "train loss", "val loss", "precision", "recall", "mAP50", "mAP50-95"],
                    ([e["epoch"], *(f(e.get(k)) for k in ("train_loss", "val_loss", *METRICS))] for e in epochs))


@dg.asset(
    partitions_def=model_partitions,
    deps=[dataset_version],  # Dagster maps "v1|demo" to "v1": the dimension shares dataset_version's partitions
    pool=GPU_POOL,
    retry_policy=TRAINING_RETRIES,
    group_name="models",
    kinds={"pytorch"},
    description="A YOLO model version trained with the partition's recipe on its frozen dataset version.",
)
def model_version(context: dg.AssetExecutionContext, config: TrainConfig, registry: RegistryResource,
                  storage: StorageResource) -> dg.MaterializeResult:
    tag, recipe_name = _keys(context)

    def on_epoch(epoch: int, epochs: int, m: dict[str, float | None]) -> None:
        shown = {k: round(v, 5) for k in ("train_loss", *METRICS) if (v := m.get(k)) is not None}
        context.log.info(f"epoch {epoch}/{epochs} {shown}")
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, partition=context.partition_key,
                                              metadata={"epoch": epoch, **shown}))

    store = storage.open()
    with user_errors():
        result = train_model(registry.registry, registry.project, tag, get_recipe(recipe_name, registry.settings.home),
                             storage=store, parent=config.parent, dagster_run_id=context.run.run_id,
                             on_epoch=on_epoch, actor=run_actor(context))
    uid = context.run.tags.get(RUN_USER_TAG)
    if uid:  # started for a user (the API): the compute counts against their plan
        with registry.session() as s:
            record_usage(s, int(uid), "training", result.seconds, project_id=registry.get_project(s).id,
                         model_version_id=result.model_version_id, dagster_run_id=context.run.run_id)
    curves = store.read_bytes(store.key_of(result.curves_png)) if result.curves_png else None
    return dg.MaterializeResult(metadata={
        "model_version": result.human_id,
        "model_version_id": result.model_version_id,
        "parent": config.parent or "",
        **{k: float(result.metrics.get(k, 0.0)) for k in METRICS},
        "epochs": len(result.epochs),
        "training_seconds": round(result.seconds, 1),
        "curves": dg.MetadataValue.md(png_markdown("training curves", curves) if curves else "(none)"),
        "per_epoch": dg.MetadataValue.md(_epochs_table(result.epochs)),
        "artifacts": dg.MetadataValue.json(result.artifacts),
        "checkpoints": dg.MetadataValue.json(result.checkpoints),
        "incremental_info": dg.MetadataValue.json(result.incremental_info or {}),
    })


@dg.asset(
    partitions_def=model_partitions,
    deps=[model_version],
    automation_condition=after_checked_upstream,
    retry_policy=TRANSIENT_RETRIES,
    group_name="models",
    kinds={"onnx"},
    description="The model version's best weights in ONNX (onnxslim applied), registered as a model artifact.",
)
def onnx_artifact(context: dg.AssetExecutionContext, registry: RegistryResource, storage: StorageResource) -> dg.MaterializeResult:
    human_id = partition_model_version(registry, context)
    with user_errors(), registry.session() as s:
        info = export_model_onnx(s, registry.get_project(s), human_id, storage=storage.open(), actor=run_actor(context))
    return dg.MaterializeResult(metadata={
        "model_version": info.model_version, "uri": info.uri, "sha256": info.sha256 or "",
        "size_bytes": info.size_bytes or 0, "opset": info.opset or 0, "ir_version": info.ir_version or 0,
        "inputs": dg.MetadataValue.json(info.inputs), "outputs": dg.MetadataValue.json(info.outputs),
        "compat": dg.MetadataValue.json(info.compat),
    })


@dg.asset(
    partitions_def=model_partitions,
    deps=[onnx_artifact],
    automation_condition=after_checked_upstream,
    retry_policy=TRANSIENT_RETRIES,
    group_name="models",
    kinds={"onnx"},
    description="COCO metrics of the ONNX model (ONNX Runtime) on its dataset version's test split, and, for a "
                "child, on its parent's test split too. The run tag dsgen/eval_on=v3 evaluates on v3's test split.",
)
def evaluation(context: dg.AssetExecutionContext, registry: RegistryResource, storage: StorageResource) -> dg.MaterializeResult:
    store = storage.open()
    human_id = partition_model_version(registry, context)
    on = context.run.tags.get(EVAL_ON_TAG) or None  # a re-evaluation backfill names the version
    with user_errors(), registry.session() as s:
        project = registry.get_project(s)
        r = evaluate_model_version(s, project, human_id, storage=store, version_tag=on, actor=run_actor(context))
        on_parent = None if on else evaluate_on_parent_split(s, project, human_id, storage=store,
                                                             actor=run_actor(context))
    per_class = md_table(["class", "precision", "recall", "F1", "mAP50", "mAP50-95"],
                         ([k, *(f"{c[m]:.4f}" for m in ("precision", "recall", "f1", "map50", "map50_95"))]
                          for k, c in r.per_class.items()))
    charts = "\n\n".join(png_markdown(name.replace("_", " "), store.read_bytes(store.key_of(uri)))
                         for name, uri in r.charts.items())
    return dg.MaterializeResult(metadata={
        "model_version": r.model_version, "evaluation_id": r.evaluation_id, "split": r.split,
        "images": r.images, **{k: float(getattr(r, k)) for k in ("precision", "recall", "f1", "map50", "map50_95")},
        "per_class": dg.MetadataValue.md(per_class),
        "charts": dg.MetadataValue.md(charts),
        "parent": dg.MetadataValue.json(r.parent.to_dict() if r.parent else {}),
        "dataset_version": r.dataset_version,
        "on_parent_split": dg.MetadataValue.json(on_parent or {}),
    })


train_model_job = dg.define_asset_job(
    "train_model_job",
    selection=dg.AssetSelection.assets(model_version, onnx_artifact, evaluation),
    partitions_def=model_partitions,
    description="Train a model version for a 'v1|recipe' partition, export it to ONNX and evaluate it, in one run.",
)
