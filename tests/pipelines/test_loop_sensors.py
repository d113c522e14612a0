"""Each loop sensor's decision from a given registry state and change sequence (one tick each)."""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.utils import make_new_run_id
from sqlalchemy import select

from dsgen_core.loop.batches import record_failure
from dsgen_core.loop.policy import set_policy
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import DatasetVersion, ImportBatch
from dsgen_pipelines.loop.sensors import next_version_on_policy, reembed_on_changes, train_after_freeze

from .conftest import PROJECT


def tick(sensor: dg.SensorDefinition, defs: dg.Definitions, instance: dg.DagsterInstance,
         cursor: str | None = None) -> dg.SensorResult | dg.RunRequest | dg.SkipReason:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources, definitions=defs) as ctx:
        return sensor(ctx)


def test_the_next_version_sensor_follows_the_policy(imported: Registry, defs: dg.Definitions,
                                                    instance: dg.DagsterInstance) -> None:
    off = tick(next_version_on_policy, defs, instance)
    assert isinstance(off, dg.SkipReason) and "policy off" in (off.skip_message or "")
    with imported.session() as s:
        set_policy(s, get_project(s, PROJECT), enabled=True, min_images=10, seed=3)
        batch = s.scalar(select(ImportBatch.id))
    req = tick(next_version_on_policy, defs, instance)
    assert isinstance(req, dg.RunRequest) and req.partition_key == "v1"
    assert req.tags["dsgen/batches"] == str(batch) and "40 new images >= 10" in req.tags["dsgen/reason"]
    assert instance.get_dynamic_partitions("dataset_versions") == ["v1"]

    # While a freeze or a training runs, the next version waits (a second batch joins it later).
    instance.add_run(DagsterRun(job_name="train_model_job", run_id=make_new_run_id(), status=dg.DagsterRunStatus.STARTED))
    waiting = tick(next_version_on_policy, defs, instance)
    assert isinstance(waiting, dg.SkipReason) and "waiting for train_model_job" in (waiting.skip_message or "")


def test_the_requested_freeze_cuts_the_draft_from_the_policy(imported: Registry, defs: dg.Definitions,
                                                              instance: dg.DagsterInstance) -> None:
    with imported.session() as s:
        set_policy(s, get_project(s, PROJECT), enabled=True, min_images=10, seed=3)
    req = tick(next_version_on_policy, defs, instance)
    assert isinstance(req, dg.RunRequest)
    result = defs.resolve_job_def("freeze_version_job").execute_in_process(
        instance=instance, partition_key="v1", run_config=req.run_config, tags=req.tags)
    assert result.success
    with imported.session() as s:
        v = s.scalar(select(DatasetVersion).where(DatasetVersion.version_tag == "v1"))
        assert v is not None and v.is_frozen and v.seed == 3 and v.through_batch_id is not None
    again = tick(next_version_on_policy, defs, instance)
    assert isinstance(again, dg.SkipReason) and "nothing changed since v1" in (again.skip_message or "")

    # Frozen without a production model: the training sensor says why it trains nothing, and moves on.
    res = tick(train_after_freeze, defs, instance)
    assert isinstance(res, dg.SensorResult) and not res.run_requests
    assert "no production model" in (res.skip_reason.skip_message if res.skip_reason else "")
    assert res.cursor is not None and int(res.cursor) > 0
    quiet = tick(train_after_freeze, defs, instance, cursor=res.cursor)
    assert isinstance(quiet, dg.SkipReason)


def test_the_reembedding_sensor_without_an_embedding_version(imported: Registry, defs: dg.Definitions,
                                                             instance: dg.DagsterInstance) -> None:
    res = tick(reembed_on_changes, defs, instance)
    assert isinstance(res, dg.SensorResult) and not res.run_requests
    assert "no active embedding version" in (res.skip_reason.skip_message if res.skip_reason else "")


def test_a_failed_run_is_recorded_on_its_batches(imported: Registry) -> None:
    with imported.session() as s:
        p = get_project(s, PROJECT)
        batch = s.scalars(select(ImportBatch)).one()
        for _ in range(2):  # the same run twice: recorded once
            record_failure(s, p, run_id="r" * 36, job="freeze_version_job", partition="v1", batches=[batch.id],
                           model_version=None, error="boom", actor="test")
        assert [f["error"] for f in batch.failures or []] == ["boom"]


def test_a_schedule_policy_is_evaluated_by_the_nightly_schedule_only(imported: Registry, defs: dg.Definitions,
                                                                     instance: dg.DagsterInstance) -> None:
    from dsgen_pipelines.loop.schedules import nightly_policy_evaluation

    with imported.session() as s:
        set_policy(s, get_project(s, PROJECT), enabled=True, trigger="schedule", min_images=1)
    by_sensor = tick(next_version_on_policy, defs, instance)
    assert isinstance(by_sensor, dg.SkipReason) and "not evaluated by the sensor" in (by_sensor.skip_message or "")
    with dg.build_schedule_context(instance=instance, resources=defs.resources) as ctx:
        req = nightly_policy_evaluation(ctx)
    assert isinstance(req, dg.RunRequest) and req.partition_key == "v1"
    assert instance.get_dynamic_partitions("dataset_versions") == ["v1"]


def test_a_registry_tick_that_only_records_says_what_it_did(imported: Registry, defs: dg.Definitions,
                                                             instance: dg.DagsterInstance) -> None:
    """The issue: such ticks showed as SKIPPED with "Sensor function returned an empty result"."""
    from dsgen_pipelines.registry.sensors import registry_changes

    res = tick(registry_changes, defs, instance)
    assert isinstance(res, dg.SensorResult) and not res.run_requests and res.asset_events
    assert res.skip_reason is not None and "registry tables recorded" in (res.skip_reason.skip_message or "")
