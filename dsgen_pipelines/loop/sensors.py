"""The loop's sensors, one per concern. Each tick reads only what is new (the change sequence after
its cursor, or the batches after the newest version), so its cost does not grow with the
registry, and says what it did or why not in its result.

- ``reembed_on_changes``: new or changed objects → a delta sync of each active embedding partition;
- ``next_version_on_policy``: the project policy says enough changed → cut and freeze ``v{n+1}``;
- ``train_after_freeze``: a newly frozen version → the production model's child (rehearsal),
  then ONNX with parity and evaluation in the same run;
- ``promote_after_evaluation``: an evaluation → the promotion decision (``production_model``);
- ``record_run_failures``: a failed run → written on its batches and model version.

A partition already being worked on is never requested again at the same time: the sensors
wait (their cursor stays) while a run of it is queued or running, and their run keys make a
change request its run once. A second batch arriving during a training waits for it, and the
next version then holds both.
"""

from collections.abc import Sequence

import dagster as dg

from dsgen_core.embeddings import versions as embedding_versions_
from dsgen_core.loop.batches import batch_tags, record_failure, tagged_batches
from dsgen_core.loop.policy import decide_next_version, get_policy, version_batches
from dsgen_core.loop.promotion import production_model, undecided_candidates
from dsgen_core.ml.model_versions import model_version_of_run
from dsgen_core.registry.changes import changes_since
from dsgen_core.versions.lifecycle import get_version
from dsgen_pipelines.embeddings.assets import embeddings, embeddings_job
from dsgen_pipelines.loop.assets import promotion_job
from dsgen_pipelines.ml.assets import evaluation, train_model_job
from dsgen_pipelines.partitions import DATASET_VERSIONS, EMBEDDING_VERSIONS, dataset_versions, recipes
from dsgen_pipelines.registry.sensors import BATCH
from dsgen_pipelines.resources import RegistryResource
from dsgen_pipelines.versions.assets import freeze_version_job

IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
OBJECT_ENTITIES = ("assets", "annotations")
PARENT_TAG = "dsgen/parent"
REASON_TAG = "dsgen/reason"


def busy_runs(instance: dg.DagsterInstance, jobs: Sequence[str]) -> list[dg.DagsterRun]:
    """Queued or running runs of ``jobs``."""
    return [r for job in jobs for r in instance.get_runs(
        filters=dg.RunsFilter(job_name=job, statuses=IN_PROGRESS), limit=5)]


def busy_partition(instance: dg.DagsterInstance, asset: dg.AssetKey, partition: str) -> list[dg.DagsterRun]:
    """Queued or running runs that materialize ``asset``'s ``partition``, whatever launched them (a
    sensor's job, automation, a backfill's asset job)."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS, tags={"dagster/partition": partition}),
                             limit=20)
    return [r for r in runs if r.asset_selection is None or asset in r.asset_selection]


def _describe(runs: list[dg.DagsterRun]) -> str:
    return ", ".join(f"{r.job_name} {r.run_id[:8]} ({r.tags.get('dagster/partition', '')})" for r in runs)


@dg.sensor(job=embeddings_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING,
           description="New or changed objects → a delta sync of each active embedding version's partition.")
def reembed_on_changes(context: dg.SensorEvaluationContext, registry: RegistryResource) -> dg.SensorResult | dg.SkipReason:
    cursor = int(context.cursor or 0)
    with registry.session() as s:
        project = registry.project_or_skip(s)
        if isinstance(project, dg.SkipReason):
            return project
        changes = changes_since(s, cursor, limit=BATCH, project_id=project.id)
        collections = [embedding_versions_.collection_name(ev)
                       for ev in embedding_versions_.list_versions(s, project, active_only=True)]
    if not changes:
        return dg.SkipReason(f"no registry change after #{cursor}")
    last = str(changes[-1].seq)
    relevant = [c for c in changes if c.entity in OBJECT_ENTITIES]
    if not relevant:
        return dg.SensorResult(cursor=last, skip_reason=f"changes #{changes[0].seq}..#{last}: no object changed")
    known = set(context.instance.get_dynamic_partitions(EMBEDDING_VERSIONS))
    targets = [c for c in collections if c in known]
    if not targets:
        return dg.SensorResult(cursor=last, skip_reason="no active embedding version partition to update")
    busy = [r for c in targets for r in busy_partition(context.instance, embeddings.key, c)]
    if busy:  # the cursor stays: the next tick asks again once the running sync is done
        return dg.SkipReason(f"waiting for {_describe(busy)}")
    batches = sorted({c.batch_id for c in relevant if c.batch_id is not None})
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=c, run_key=f"embed:{c}:{last}", tags=batch_tags(batches))
                      for c in targets],
        cursor=last)


def next_version_request(context: dg.SensorEvaluationContext | dg.ScheduleEvaluationContext,
                         registry: RegistryResource, trigger: str) -> dg.RunRequest | dg.SkipReason:
    """The freeze run of the next version when the project's policy (evaluated by ``trigger``) says so;
    its ``dataset_versions`` partition is added first."""
    with registry.session() as s:
        project = registry.project_or_skip(s)
        if isinstance(project, dg.SkipReason):
            return project
        policy = get_policy(s, project)
        if not policy.enabled or policy.trigger != trigger:
            return dg.SkipReason(f"policy {policy.describe()}: not evaluated by the {trigger}")
        # A decision pending (promotion_job) must land first: the next child's parent is its outcome.
        busy = busy_runs(context.instance, [freeze_version_job.name, train_model_job.name, promotion_job.name])
        if busy:
            return dg.SkipReason(f"waiting for {_describe(busy)}; the next version will hold what arrives meanwhile")
        decision = decide_next_version(s, project, policy)
    if not decision.cut:
        return dg.SkipReason(decision.reason)
    tag = decision.tag
    if not context.instance.has_dynamic_partition(DATASET_VERSIONS, tag):
        context.instance.add_dynamic_partitions(DATASET_VERSIONS, [tag])  # schedules cannot return partition requests
    return dg.RunRequest(
        partition_key=tag, run_key=f"next:{tag}:{max(decision.pending.batches, default=0)}",
        run_config={"ops": {"dataset_version": {"config": {"cut_from_policy": True}}}},
        tags={**batch_tags(decision.pending.batches), REASON_TAG: decision.reason[:250]})


@dg.sensor(job=freeze_version_job, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING,
           description="The project policy (dsgen policy set) says enough changed → cut and freeze the next version.")
def next_version_on_policy(context: dg.SensorEvaluationContext,
                           registry: RegistryResource) -> dg.RunRequest | dg.SkipReason:
    return next_version_request(context, registry, "sensor")


@dg.sensor(job=train_model_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING,
           description="A newly frozen version → train the production model's child on it (rehearsal), export it "
                       "to ONNX with the parity check and evaluate it, in one run.")
def train_after_freeze(context: dg.SensorEvaluationContext, registry: RegistryResource) -> dg.SensorResult | dg.SkipReason:
    cursor = int(context.cursor or 0)
    with registry.session() as s:
        project = registry.project_or_skip(s)
        if isinstance(project, dg.SkipReason):
            return project
        changes = changes_since(s, cursor, entity="dataset_versions", limit=BATCH, project_id=project.id)
        if not changes:
            return dg.SkipReason(f"no version frozen after #{cursor}")
        # Only the loop's own candidates (trained by a run; their evaluation starts the promotion):
        # a model trained from the CLI waits for `dsgen model promote`, not for this sensor.
        if any(mv.dagster_run_id for mv in undecided_candidates(s, project)) or \
                busy_runs(context.instance, [promotion_job.name]):
            # The cursor stays: the child's parent is whatever that decision makes the production model.
            return dg.SkipReason("waiting for a pending promotion decision before choosing the parent")
        policy, parent = get_policy(s, project), production_model(s, project)
        requests, notes, tags = [], [], []
        for c in changes:
            tag = str((c.detail or {}).get("tag") or "")
            if c.op != "frozen" or not tag:
                continue
            if not (policy.enabled and policy.train):
                notes.append(f"{tag}: the project policy does not train (dsgen policy set --on --train)")
                continue
            if parent is None:
                notes.append(f"{tag}: no production model to continue from (dsgen model promote)")
                continue
            recipe = policy.recipe or parent.recipe or ""
            if recipe not in recipes.get_partition_keys():
                notes.append(f"{tag}: recipe {recipe!r} has no model partitions (detection recipes only)")
                continue
            v = get_version(s, project, tag)
            if v.id == parent.training_data_version_id or (v.frozen_at and v.frozen_at <= parent.created_at):
                notes.append(f"{tag}: not newer than the production model {parent.human_id}")
                continue
            tags.append(tag)
            batches = version_batches(s, project, v)
            requests.append(dg.RunRequest(
                partition_key=dg.MultiPartitionKey({"dataset_version": tag, "recipe": recipe}),
                run_key=f"train:{tag}:{recipe}",
                run_config={"ops": {"model_version": {"config": {"parent": parent.human_id}}}},
                tags={**batch_tags(batches), PARENT_TAG: parent.human_id}))
    # A version frozen from the CLI may not be a partition yet (the registry sensor adds it too).
    new = [t for t in tags if not context.instance.has_dynamic_partition(DATASET_VERSIONS, t)]
    return dg.SensorResult(run_requests=requests, cursor=str(changes[-1].seq),
                           dynamic_partitions_requests=[dataset_versions.build_add_request(new)] if new else [],
                           skip_reason=None if requests else "; ".join(notes) or "no version frozen")


@dg.asset_sensor(asset_key=evaluation.key, job=promotion_job, minimum_interval_seconds=5,
                 default_status=dg.DefaultSensorStatus.RUNNING,
                 description="An evaluation → decide the promotion of the evaluated candidates (production_model).")
def promote_after_evaluation(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry) -> dg.RunRequest:
    run = context.instance.get_run_by_id(asset_event.run_id)
    tags = {k: v for k, v in (run.tags if run else {}).items() if k.startswith("dsgen/batch") or k == PARENT_TAG}
    partition = asset_event.dagster_event.partition if asset_event.dagster_event else None
    return dg.RunRequest(run_key=f"promote:{asset_event.run_id}:{partition}", tags=tags)


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=5,
                       description="A failed run → recorded on its annotation batches and its model version "
                                   "(dsgen batches, dsgen models).")
def record_run_failures(context: dg.RunFailureSensorContext, registry: RegistryResource) -> None:
    run = context.dagster_run
    batches = tagged_batches(dict(run.tags))
    partition = run.tags.get("dagster/partition")
    model_version = None
    steps = context.get_step_failure_events()
    error = "; ".join(f"{e.step_key}: {e.step_failure_data.error.message.strip()}" for e in steps
                      if e.step_failure_data.error is not None) or context.failure_event.message or "run failed"
    with registry.session() as s:
        project = registry.project_or_skip(s)
        if isinstance(project, dg.SkipReason):
            return
        if run.job_name == train_model_job.name:
            model_version = model_version_of_run(s, project, run.run_id)
        if not batches and model_version is None:
            return
        record_failure(s, project, run_id=run.run_id, job=run.job_name, partition=partition,
                       batches=batches, model_version=model_version, error=error,
                       actor=f"dagster:{context.sensor_name}")

