"""Model partitions (dataset version × recipe): training, ONNX artifact, evaluation, their checks and automation."""

from __future__ import annotations

import dagster as dg
import pytest
from sqlalchemy import select

from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import ModelVersion
from dsgen_pipelines.ml.assets import model_version

from .test_assets import latest, requested

V1_TINY = dg.MultiPartitionKey({"dataset_version": "v1", "recipe": "tiny"})
MODEL_ASSETS = {"model_version", "onnx_artifact", "evaluation"}


def freeze_v1(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    from dsgen_core.registry.projects import get_project
    from dsgen_core.versions.lifecycle import create_version

    registry = defs.resources["registry"]
    with registry.session() as s:
        create_version(s, get_project(s, "default"), "v1", seed=1)
    instance.add_dynamic_partitions("dataset_versions", ["v1"])
    assert defs.resolve_job_def("freeze_version_job").execute_in_process(instance=instance, partition_key="v1").success


def test_model_partitions_map_to_their_dataset_version(defs: dg.Definitions) -> None:
    partitions = model_version.partitions_def
    assert isinstance(partitions, dg.MultiPartitionsDefinition)
    assert {d.name for d in partitions.partitions_defs} == {"dataset_version", "recipe"}
    assert {"demo", "tiny"} <= set(partitions.get_partitions_def_for_dimension("recipe").get_partition_keys())
    assert str(V1_TINY) == "v1|tiny"
    assert model_version.op.pool == "gpu"
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("dataset_version") in graph.get(model_version.key).parent_keys


def test_train_export_evaluate_through_dagster(
    imported: Registry, defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    freeze_v1(defs, instance)
    run = defs.resolve_job_def("train_model_job").execute_in_process(
        instance=instance, partition_key=str(V1_TINY), raise_on_error=False)
    assert run.success
    materialized = {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()}
    assert materialized == MODEL_ASSETS
    checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    assert checks == {"onnx_matches_pytorch": True, "not_worse_than_parent": True}

    trained = latest(instance, "model_version", str(V1_TINY))
    assert trained["model_version"] == "m1" and trained["epochs"] == 3 and "data:image/png;base64," in trained["curves"]
    assert trained["per_epoch"].count("\n| ") == 3
    epochs = [e for e in run.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert [e.event_specific_data.asset_observation.metadata["epoch"].value for e in epochs] == [1, 2, 3]
    onnx = latest(instance, "onnx_artifact", str(V1_TINY))
    assert onnx["model_version"] == "m1" and onnx["opset"] > 0 and onnx["uri"] == f"models/p1/m1/onnx/model-{onnx['sha256'][:12]}.onnx"
    ev = latest(instance, "evaluation", str(V1_TINY))
    assert set(ev) >= {"precision", "recall", "f1", "map50", "map50_95", "per_class", "charts"}
    assert ev["charts"].count("data:image/png;base64,") == 2
    with imported.session() as s:
        mv = s.scalar(select(ModelVersion).where(ModelVersion.human_id == "m1"))
        assert mv.dagster_run_id == run.run_id and mv.status == "succeeded"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_onnx_and_evaluation_follow_training_by_automation(
    imported: Registry, defs: dg.Definitions, instance: dg.DagsterInstance
) -> None:
    freeze_v1(defs, instance)
    auto = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert not set(requested(auto)) & MODEL_ASSETS, "training runs only when asked"
    job = defs.resolve_job_def("train_model_job")
    assert job.get_subset(asset_selection={model_version.key}).execute_in_process(
        instance=instance, partition_key=str(V1_TINY)).success
    auto = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=auto.cursor)
    assert requested(auto).get("onnx_artifact") == {str(V1_TINY)} and "evaluation" not in requested(auto)
