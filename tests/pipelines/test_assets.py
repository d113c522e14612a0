"""Materializations, checks, the registry sensor and automation against a real (test) Dagster instance."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from dsgen_core.demo import DemoDataset
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Annotation
from dsgen_core.storage import LocalStorage
from dsgen_core.versions.lifecycle import create_version, freeze_version, get_version, request_freeze, version_summary
from dsgen_pipelines.registry.assets import thumbnails
from dsgen_pipelines.registry.sensors import registry_changes

from .conftest import PROJECT

DOWNSTREAM = ("coco_export", "yolo_export", "insights")


def evaluate_sensor(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    """One tick, applied to the instance as the daemon would: partitions added, asset events stored."""
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources, definitions=defs) as ctx:
        result = registry_changes(ctx)
    if isinstance(result, dg.SensorResult):
        for req in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        for event in result.asset_events or []:
            instance.report_runless_asset_event(event)
    return result


def run_partition(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, tag: str) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=tag, raise_on_error=False)


def materialization(instance: dg.DagsterInstance, key: str | list[str], partition: str | None = None) -> dg.AssetMaterialization | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition] if partition else None),
        limit=1, ascending=False,
    ).records
    return records[0].asset_materialization if records else None


def latest(instance: dg.DagsterInstance, key: str | list[str], partition: str | None = None) -> dict[str, object] | None:
    """The metadata of the newest materialization (of one partition)."""
    m = materialization(instance, key, partition)
    return None if m is None else {k: v.value for k, v in m.metadata.items()}


def requested(result: dg.EvaluateAutomationConditionsResult) -> dict[str, set[str]]:
    """Asset -> requested partition keys (an empty set for an unpartitioned asset)."""
    return {r.key.to_user_string(): set(r.true_subset.expensively_compute_partition_keys())
            if r.true_subset.is_partitioned else set() for r in result.results if r.true_subset.size}


def test_import_job_sensor_freeze_checks_and_automation(
    registry: Registry, demo_export: DemoDataset, defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    # The import job, with the CVAT export given as run config.
    result = defs.resolve_job_def("import_coco_job").execute_in_process(instance=instance, run_config={
        "ops": {"import_coco_export": {"config": {"annotations": str(demo_export.annotations_path),
                                                  "images": str(demo_export.images_dir)}}}})
    assert result.success
    (output,) = [e.event_specific_data for e in result.all_events if e.is_successful_output]
    assert output.metadata["images_new"].value == demo_export.n_images
    assert output.metadata["annotations"].value == demo_export.n_annotations

    # First tick: the import becomes materializations of the registry tables; no version yet.
    tick = evaluate_sensor(defs, instance, None)
    assert isinstance(tick, dg.SensorResult)
    assert not tick.run_requests and not tick.dynamic_partitions_requests
    tables = latest(instance, ["registry", "assets"])
    assert tables is not None and tables["dagster/row_count"] == demo_export.n_images
    assert latest(instance, ["registry", "annotations"])["dagster/row_count"] == demo_export.n_annotations
    assert latest(instance, ["registry", "label_classes"])["dagster/row_count"] == 3
    assert tables["change_seq"] == int(tick.cursor)
    assert isinstance(evaluate_sensor(defs, instance, tick.cursor), dg.SkipReason)  # nothing new

    # A draft becomes a partition; a freeze request becomes a run request, in one result.
    with registry.session() as s:
        project = get_project(s, PROJECT)
        create_version(s, project, "v1")
    tick = evaluate_sensor(defs, instance, tick.cursor)
    assert [list(r.partition_keys) for r in tick.dynamic_partitions_requests] == [["v1"]]
    assert not tick.run_requests
    with registry.session() as s:
        create_version(s, project, "v2", query="category:circle")
        request_freeze(s, project, "v1")
        request_freeze(s, project, "v2")
    tick = evaluate_sensor(defs, instance, tick.cursor)
    assert [list(r.partition_keys) for r in tick.dynamic_partitions_requests] == [["v2"]]
    assert [(r.partition_key, r.job_name) for r in tick.run_requests] == [("v1", None), ("v2", None)]
    assert len({r.run_key for r in tick.run_requests}) == 2
    assert set(instance.get_dynamic_partitions("dataset_versions")) == {"v1", "v2"}

    # Nothing downstream is requested before the version is materialized.
    auto = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert not set(requested(auto)) & set(DOWNSTREAM)

    # The requested runs: freeze and check each version.
    for req in tick.run_requests:
        run = run_partition(defs, instance, "freeze_version_job", req.partition_key)
        assert run.success
        checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
        assert set(checks) == {"content_hash_verifies", "no_empty_split", "no_asset_in_two_splits",
                               "every_class_has_train_examples"}
        assert checks["content_hash_verifies"] and checks["no_empty_split"] and checks["no_asset_in_two_splits"]
        if req.partition_key == "v1":
            assert checks["every_class_has_train_examples"]
    with registry.session() as s:
        summary = version_summary(s, get_version(s, project, "v1")).to_dict()
    meta = latest(instance, "dataset_version", "v1")
    assert summary["frozen"] and meta["content_hash"] == summary["content_hash"]
    assert meta["images"] == demo_export.n_images == sum(summary["splits"].values())
    assert {k: meta[f"images/{k}"] for k in summary["splits"]} == summary["splits"]
    assert "| circle |" in meta["class_distribution"] and meta["already_frozen"] is False
    assert materialization(instance, "dataset_version", "v1").tags["dagster/data_version"] == summary["content_hash"]

    # Freezes done by Dagster come back through the change sequence and are not run again.
    tick = evaluate_sensor(defs, instance, tick.cursor)
    assert isinstance(tick, dg.SensorResult) and not tick.run_requests

    # Automation: exports and insights of both versions, once each.
    auto = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=auto.cursor)
    assert {k: v for k, v in requested(auto).items() if k in DOWNSTREAM} == dict.fromkeys(DOWNSTREAM, {"v1", "v2"})
    again = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=auto.cursor)
    assert not set(requested(again)) & set(DOWNSTREAM)

    run = defs.resolve_job_def("dataset_version_job").get_subset(
        asset_selection={dg.AssetKey(k) for k in DOWNSTREAM}).execute_in_process(instance=instance, partition_key="v1")
    assert run.success
    home = registry.settings.home
    coco = latest(instance, "coco_export", "v1")
    assert Path(coco["path"]) == home / "exports" / PROJECT / "v1" / "coco"
    assert coco["images"] == demo_export.n_images
    assert sorted(p.name for p in (home / "exports" / PROJECT / "v1" / "coco" / "annotations").iterdir()) == [
        "instances_test.json", "instances_train.json", "instances_val.json"]
    assert (home / "exports" / PROJECT / "v1" / "yolo" / "data.yaml").is_file()
    charts = latest(instance, "insights", "v1")["charts"]
    assert charts.count("data:image/png;base64,") == 2 and "### overview" in charts
    assert latest(instance, "insights", "v1")["images"] == demo_export.n_images


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_version_frozen_outside_dagster_is_materialized(
    imported: Registry, defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    """`dsgen version freeze v1` without --request: the sensor still brings the version into Dagster."""
    with imported.session() as s:
        project = get_project(s, PROJECT)
        create_version(s, project, "v1")
        freeze_version(s, project, "v1", storage=LocalStorage(imported.settings.storage_root))
    tick = evaluate_sensor(defs, instance, None)
    assert [r.partition_key for r in tick.run_requests] == ["v1"]
    assert tick.run_requests[0].run_key.startswith("frozen:v1:")
    run = run_partition(defs, instance, "freeze_version_job", "v1")
    assert run.success and latest(instance, "dataset_version", "v1")["already_frozen"] is True


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_failed_blocking_check_gates_the_exports(
    imported: Registry, defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    """A frozen version whose stored masks changed no longer verifies: no export, by run or by automation."""
    with imported.session() as s:
        project = get_project(s, PROJECT)
        create_version(s, project, "v1")
    instance.add_dynamic_partitions("dataset_versions", ["v1"])
    assert run_partition(defs, instance, "freeze_version_job", "v1").success
    with imported.session() as s:
        mask_uri = s.scalar(select(Annotation.mask_uri).where(Annotation.mask_uri.is_not(None)).limit(1))
    storage = LocalStorage(imported.settings.storage_root)
    storage.write_bytes(storage.key_of(mask_uri), b"tampered")

    run = run_partition(defs, instance, "dataset_version_job", "v1")
    assert not run.success
    checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    assert checks["content_hash_verifies"] is False and checks["no_empty_split"] is True
    materialized = {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()}
    assert materialized == {"dataset_version"}
    assert not (imported.settings.home / "exports").exists()

    auto = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert not set(requested(auto)) & set(DOWNSTREAM)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_thumbnails_follow_imports(
    imported: Registry, defs: dg.Definitions, resources: dict[str, dg.ConfigurableResource], instance: dg.DagsterInstance
) -> None:
    auto = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert "thumbnails" not in requested(auto)  # the registry tables have not been recorded yet
    evaluate_sensor(defs, instance, None)
    auto = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=auto.cursor)
    assert "thumbnails" in requested(auto)
    result = dg.materialize([thumbnails], instance=instance, resources=resources)
    assert result.success
    assert latest(instance, "thumbnails")["created"] == 40
