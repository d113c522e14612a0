"""The daily storage clean-up: files no registry row refers to (``dsgen gc`` on a schedule)."""

import dagster as dg
from pydantic import Field

from dsgen_core.formats.coco.importer import local_sources_dir
from dsgen_core.registry.gc import GC_MIN_AGE, collect_garbage
from dsgen_pipelines.resources import RegistryResource, StorageResource, run_actor


class StorageGcConfig(dg.Config):
    min_age: float = Field(default=GC_MIN_AGE, ge=0, description="Keep unreferenced files younger than this (seconds).")
    dry_run: bool = Field(default=False, description="Only report what would be removed.")


@dg.op(description="Remove masks, thumbnails and unpacked ZIPs that no registry row refers to.")
def collect_storage_garbage(context: dg.OpExecutionContext, config: StorageGcConfig, registry: RegistryResource,
                            storage: StorageResource) -> None:
    store = storage.open()
    with registry.session() as s:
        report = collect_garbage(s, storage=store, sources_dir=local_sources_dir(store, registry.settings.home),
                                 min_age=config.min_age, dry_run=config.dry_run, actor=run_actor(context))
    context.log.info(f"storage gc: {report.to_dict()}")
    context.add_output_metadata({k: v for k, v in report.to_dict().items() if isinstance(v, int | float)})


@dg.job(description="Remove files no registry row refers to (what `dsgen gc` does).")
def storage_gc_job() -> None:
    collect_storage_garbage()


storage_gc_schedule = dg.ScheduleDefinition(
    job=storage_gc_job, cron_schedule="30 3 * * *", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night: files left behind by killed imports and deleted images.",
)
