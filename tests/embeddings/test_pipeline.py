"""The ``embeddings`` asset: a partition per embedding version, delta materializations, the agreement check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import pytest
from dagster_aws.s3 import S3Resource

from dsgen_core.embeddings.store import open_store
from dsgen_core.embeddings.versions import get_version
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_pipelines.definitions import build_definitions
from dsgen_pipelines.registry.sensors import registry_changes
from dsgen_pipelines.resources import ChromaResource, RegistryResource, StorageResource
from support import import_file


@pytest.fixture
def instance(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    with dg.instance_for_test() as inst:
        yield inst


def _defs(registry: Registry) -> dg.Definitions:
    home = str(registry.settings.home)
    return build_definitions({
        "registry": RegistryResource(home=home, database_url=registry.settings.database_url, project="p"),
        "storage": StorageResource(home=home, s3=S3Resource()),
        "chroma": ChromaResource(),
    })


def _meta(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_embeddings_partition_delta_and_check(registry: Registry, cli: Any, demo_data: Path, onnx_encoder: Path,
                                              instance: dg.DagsterInstance, tmp_path: Path) -> None:
    ann = demo_data / "annotations" / "instances_default.json"
    import_file(registry, ann, images=demo_data / "images")
    res = cli.invoke("embed", "create", "vis", "--project", "p", "--encoder", "onnx", "--weights", onnx_encoder,
                     "--level", "object", "--json")
    assert res.exit_code == 0, res.output
    queued = orjson.loads(res.output)[0]["queued"]
    defs = _defs(registry)

    # The registry sensor turns the new embedding version into a partition (its collection's name).
    with dg.build_sensor_context(instance=instance, resources=defs.resources, definitions=defs) as ctx:
        tick = registry_changes(ctx)
    assert isinstance(tick, dg.SensorResult)
    adds = [r for r in tick.dynamic_partitions_requests or [] if r.partitions_def_name == "embedding_versions"]
    assert [list(r.partition_keys) for r in adds] == [["objects_visual_vis"]]
    instance.add_dynamic_partitions("embedding_versions", ["objects_visual_vis"])

    job = defs.resolve_job_def("embeddings_job")
    first = job.execute_in_process(instance=instance, partition_key="objects_visual_vis")
    assert first.success
    meta = _meta(first)
    assert meta["embedded"] == queued and meta["pending"] == 0 and meta["dimension"] == 16
    assert meta["registry_count"] == meta["chroma_count"] == queued
    assert "data:image/png;base64," in meta["map"]
    (check,) = first.get_asset_check_evaluations()
    assert check.passed

    # A delta: the next materialization embeds only what changed since.
    data = json.loads(ann.read_text())
    one = data["images"][1]
    new = [{**a, "id": 70_000 + i} for i, a in enumerate(a for a in data["annotations"] if a["image_id"] == one["id"])]
    delta_file = tmp_path / "delta.json"
    delta_file.write_text(json.dumps({**data, "images": [one], "annotations": new}))
    import_file(registry, delta_file, images=demo_data / "images")
    second = job.execute_in_process(instance=instance, partition_key="objects_visual_vis")
    assert _meta(second)["embedded"] == len(new) > 0

    # Drift the outbox knows nothing about: the check fails.
    store = open_store(registry.settings)
    with registry.session() as s:
        ev = get_version(s, get_project(s, "p"), "vis", level="object")
    col = store.collection(ev)
    some = [i for ids, _m, _v in store.scan(col) for i in ids][:3]
    store.delete(col, some)
    third = job.execute_in_process(instance=instance, partition_key="objects_visual_vis")
    (check,) = third.get_asset_check_evaluations()
    assert not check.passed and check.metadata["chroma_count"].value == queued + len(new) - 3
