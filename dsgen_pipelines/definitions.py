"""The ``dsgen`` code location: every asset, check, job, sensor, schedule and resource of dsgen."""

from collections.abc import Mapping

import dagster as dg

from dsgen_pipelines.automation import automation_sensor
from dsgen_pipelines.cvat.jobs import cvat_pull_job, cvat_pull_poll, cvat_push_job
from dsgen_pipelines.embeddings.assets import embeddings, embeddings_job
from dsgen_pipelines.embeddings.checks import embeddings_in_step
from dsgen_pipelines.exports.assets import coco_export, yolo_export
from dsgen_pipelines.insights.assets import insights
from dsgen_pipelines.loop.assets import production_model, promotion_job
from dsgen_pipelines.loop.schedules import (
    embedding_reconcile_job,
    nightly_embedding_reconcile,
    nightly_policy_evaluation,
    production_reevaluation_job,
    weekly_production_reevaluation,
)
from dsgen_pipelines.loop.sensors import (
    next_version_on_policy,
    promote_after_evaluation,
    record_run_failures,
    reembed_on_changes,
    train_after_freeze,
)
from dsgen_pipelines.ml.assets import evaluation, model_version, onnx_artifact, train_model_job
from dsgen_pipelines.ml.checks import onnx_parity_check, parent_regression_check
from dsgen_pipelines.registry.assets import import_coco_job, import_datamaker_job, registry_tables, thumbnails
from dsgen_pipelines.registry.gc import storage_gc_job, storage_gc_schedule
from dsgen_pipelines.registry.sensors import registry_changes
from dsgen_pipelines.resources import build_resources
from dsgen_pipelines.versions.assets import dataset_version, dataset_version_job, freeze_version_job
from dsgen_pipelines.versions.checks import dataset_version_checks


def build_definitions(resources: Mapping[str, dg.ConfigurableResource] | None = None) -> dg.Definitions:
    """The definitions with ``resources`` (default: configured from the environment)."""
    return dg.Definitions(
        assets=[*registry_tables, thumbnails, dataset_version, coco_export, yolo_export, insights,
                model_version, onnx_artifact, evaluation, embeddings, production_model],
        asset_checks=[dataset_version_checks, onnx_parity_check, parent_regression_check, embeddings_in_step],
        jobs=[import_coco_job, import_datamaker_job, freeze_version_job, dataset_version_job, train_model_job,
              storage_gc_job, embeddings_job,
              promotion_job, embedding_reconcile_job, production_reevaluation_job, cvat_push_job, cvat_pull_job],
        sensors=[registry_changes, automation_sensor, reembed_on_changes, next_version_on_policy, train_after_freeze,
                 promote_after_evaluation, record_run_failures, cvat_pull_poll],
        schedules=[storage_gc_schedule, nightly_embedding_reconcile, nightly_policy_evaluation,
                   weekly_production_reevaluation],
        # Resources not given (a benchmark passing only the registry and storage) take their defaults.
        resources={**build_resources(), **(resources or {})},
        # Steps are database- and disk-bound and run one after another anyway: one process per run.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
