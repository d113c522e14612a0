"""CVAT push and pull as Dagster jobs, and a sensor (off by default) that pulls tasks annotators changed.

A pull is an annotation batch like any import: its run carries the batch tag, the annotations
table records the observation, and the continuous loop's sensors react to its change events.
"""

from typing import Literal

import dagster as dg
from pydantic import Field

from dsgen_core.cvat.connection import CvatServer, cvat_call, cvat_client
from dsgen_core.cvat.pull import pull_from_cvat
from dsgen_core.cvat.push import push_to_cvat
from dsgen_core.loop.batches import batch_tags
from dsgen_core.registry.schema import CvatTask
from dsgen_pipelines.registry.assets import REGISTRY_ANNOTATIONS
from dsgen_pipelines.resources import RegistryResource, StorageResource, run_actor, user_errors


class CvatPushConfig(dg.Config):
    query: str = Field(default="", description="The images to send ('' for all).")
    name: str = Field(description="The CVAT task's name (chunks get ' (k/n)').")
    annotations: Literal["human", "model", "all", "none"] = Field(default="all", description="Pre-annotations sent.")
    max_images_per_task: int | None = Field(default=None, description="Split into tasks of at most this many images.")
    segment_size: int | None = Field(default=None, description="Images per CVAT job.")
    cvat_project: int | None = Field(default=None, description="The CVAT project to make the tasks in.")


@dg.op(description="Push the images a query selects to CVAT as new tasks (CVAT_URL and credentials from the "
                   "environment).")
def cvat_push(context: dg.OpExecutionContext, config: CvatPushConfig, registry: RegistryResource,
              storage: StorageResource) -> None:
    with user_errors():
        result = push_to_cvat(registry.registry, registry.project, query=config.query, name=config.name,
                              storage=storage.open(), annotations=config.annotations,
                              max_images_per_task=config.max_images_per_task, segment_size=config.segment_size,
                              cvat_project=config.cvat_project, actor=run_actor(context))
    for line in result.loss_report.lines():
        context.log.info(f"loss report: {line}")
    context.add_output_metadata({"export_job": result.export_job_id, "tasks": [t.id for t in result.tasks],
                                 "urls": dg.MetadataValue.json([t.url for t in result.tasks])})


@dg.job(description="Push a selection to CVAT (ops.cvat_push.config: query, name, ...).")
def cvat_push_job() -> None:
    cvat_push()


class CvatPullConfig(dg.Config):
    task_id: int = Field(description="The CVAT task to pull (one dsgen pushed).")
    on_conflict: Literal["cvat", "registry"] = Field(default="cvat", description="Who wins when both sides changed.")
    changed_jobs_only: bool = Field(default=True, description="Read only the jobs CVAT changed since the push or "
                                                              "the last pull (dsgen cvat pull --since).")


@dg.op(description="Pull a pushed CVAT task's annotations back into the registry as one annotation batch.")
def cvat_pull(context: dg.OpExecutionContext, config: CvatPullConfig, registry: RegistryResource,
              storage: StorageResource) -> None:
    with user_errors(), registry.session() as s:
        r = pull_from_cvat(s, registry.get_project(s), config.task_id, storage=storage.open(),
                           on_conflict=config.on_conflict, actor=run_actor(context),
                           since="last" if config.changed_jobs_only else None)
    for c in r.conflicts:
        context.log.warning(f"conflict: {c}")
    if r.batch_id is not None:
        context.instance.add_run_tags(context.run_id, batch_tags([r.batch_id]))
        context.log_event(dg.AssetObservation(asset_key=REGISTRY_ANNOTATIONS, metadata={
            "batch": r.batch_id, "cvat_task": config.task_id, "added": r.added, "changed": r.changed,
            "deleted": r.deleted, "conflicts": len(r.conflicts)}))
    context.add_output_metadata(r.to_dict() | {"conflicts": len(r.conflicts)})


@dg.job(description="Pull a pushed CVAT task back (ops.cvat_pull.config.task_id).")
def cvat_pull_job() -> None:
    cvat_pull()


@dg.sensor(job=cvat_pull_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Pull each pushed CVAT task whenever CVAT says it changed (off by default: it polls CVAT).")
def cvat_pull_poll(context: dg.SensorEvaluationContext, registry: RegistryResource) -> dg.SensorResult | dg.SkipReason:
    with registry.session() as s:
        project = registry.project_or_skip(s)
        if isinstance(project, dg.SkipReason):
            return project
        server = CvatServer.from_env()
        tasks = [t.task_id for t in s.query(CvatTask).filter(CvatTask.project_id == project.id,
                                                             CvatTask.server == server.url,
                                                             CvatTask.status == "pushed")]
    if not tasks:
        return dg.SkipReason("no pushed CVAT tasks")
    requests = []
    with cvat_client(server) as client:
        for tid in tasks:
            with cvat_call(f"read task {tid}", server.url):
                updated = client.tasks.retrieve(tid).updated_date  # type: ignore[attr-defined]
            # One run per state of the task: a task nobody touched is not pulled again.
            requests.append(dg.RunRequest(run_key=f"cvat-pull:{tid}:{updated.isoformat()}", run_config={
                "ops": {"cvat_pull": {"config": {"task_id": tid}}}}, tags={"dsgen/cvat_task": str(tid)}))
    return dg.SensorResult(run_requests=requests)
