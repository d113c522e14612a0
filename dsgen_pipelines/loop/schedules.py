"""The loop's schedules. Only the nightly embedding reconcile runs by default; the others are for
teams that prefer time-based work to sensors, and are switched on in the UI (Automation →
Schedules) or with ``dagster schedule start -w workspace.yaml <name>``.

- ``nightly_embedding_reconcile`` (on, 02:30): compare each active embedding version's Chroma
  collection with the registry and repair drift (missing, stale, extra records);
- ``nightly_policy_evaluation`` (off, 01:00): evaluate the next-version policy of a project whose
  policy says ``--trigger schedule`` (the sensor then leaves it alone);
- ``weekly_production_reevaluation`` (off, Sunday 04:00): evaluate the production model on the
  newest frozen version's test split, so a drifting model shows before the next training.
"""

import dagster as dg

from dsgen_core.embeddings import sync, versions
from dsgen_core.evaluation.model_eval import evaluate_model_version
from dsgen_core.loop.promotion import production_model
from dsgen_core.versions.lifecycle import newest_frozen_version
from dsgen_pipelines.loop.sensors import next_version_request
from dsgen_pipelines.resources import (
    TRANSIENT_RETRIES,
    ChromaResource,
    RegistryResource,
    StorageResource,
    run_actor,
    user_errors,
)
from dsgen_pipelines.versions.assets import freeze_version_job


@dg.op(retry_policy=TRANSIENT_RETRIES, description="Reconcile every active embedding version with its Chroma collection.")
def reconcile_embeddings(context: dg.OpExecutionContext, registry: RegistryResource, chroma: ChromaResource) -> None:
    with registry.session() as s:
        ids = [ev.id for ev in versions.list_versions(s, registry.get_project(s), active_only=True)]
    store = chroma.open(registry.settings)
    with user_errors():
        for vid in ids:
            r = sync.reconcile_version(registry.registry, registry.project, vid, store=store, actor=run_actor(context))
            context.log.info(f"{r.version} ({r.level}): {r.missing} missing, {r.stale} stale, {r.extra} extra, "
                             f"{r.metadata_drift} drifted; {r.queued} queued, {r.deleted} deleted")
    context.add_output_metadata({"versions": len(ids)})


@dg.job(description="Repair drift between the registry and Chroma (what `dsgen embed reconcile` does), all versions.")
def embedding_reconcile_job() -> None:
    reconcile_embeddings()


@dg.op(retry_policy=TRANSIENT_RETRIES, description="Evaluate the production model on the newest frozen version's test split.")
def reevaluate_production(context: dg.OpExecutionContext, registry: RegistryResource, storage: StorageResource) -> None:
    with user_errors(), registry.session() as s:
        project = registry.get_project(s)
        mv, newest = production_model(s, project), newest_frozen_version(s, project)
        if mv is None or newest is None:
            context.log.info("no production model or no frozen version: nothing to evaluate")
            return
        r = evaluate_model_version(s, project, mv.human_id, storage=storage.open(), version_tag=newest.version_tag,
                                   with_parent=False, actor=run_actor(context))
    context.log.info(f"{r.model_version} on {r.dataset_version}/{r.split}: mAP50-95 {r.map50_95:.4f}")
    context.add_output_metadata({"model_version": r.model_version, "dataset_version": r.dataset_version,
                                 "map50": r.map50, "map50_95": r.map50_95})


@dg.job(description="Evaluate the production model on the newest frozen version's test split.")
def production_reevaluation_job() -> None:
    reevaluate_production()


nightly_embedding_reconcile = dg.ScheduleDefinition(
    name="nightly_embedding_reconcile", job=embedding_reconcile_job, cron_schedule="30 2 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night: repair drift between the registry and each Chroma collection.")


@dg.schedule(job=freeze_version_job, cron_schedule="0 1 * * *", default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Every night: the next-version policy of a project whose policy has --trigger schedule.")
def nightly_policy_evaluation(context: dg.ScheduleEvaluationContext,
                              registry: RegistryResource) -> dg.RunRequest | dg.SkipReason:
    return next_version_request(context, registry, "schedule")


weekly_production_reevaluation = dg.ScheduleDefinition(
    name="weekly_production_reevaluation", job=production_reevaluation_job, cron_schedule="0 4 * * 0",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every Sunday: the production model on the newest frozen version's test split.")
