"""The pipelines on S3 storage: the client comes from dagster-aws' S3Resource (moto's server stands in for S3)."""

from __future__ import annotations

import dataclasses
import uuid

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from dsgen_core.demo import DemoDataset
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.storage.s3 import S3Storage
from dsgen_core.versions.lifecycle import create_version
from dsgen_pipelines.definitions import build_definitions
from dsgen_pipelines.resources import ChromaResource, RegistryResource, StorageResource
from support import BUCKET, CREDENTIALS, MotoServer, import_file

from .conftest import PROJECT


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_freeze_checks_and_exports_read_masks_from_s3(
    registry: Registry, demo_export: DemoDataset, s3_server: MotoServer, monkeypatch: pytest.MonkeyPatch,
    instance: dg.DagsterInstance,
) -> None:
    root = f"s3://{BUCKET}/p-{uuid.uuid4().hex[:12]}"
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DSGEN_STORAGE", root)  # dsgen_core's own writers (the import) store there, through
    monkeypatch.setenv("DSGEN_S3_ENDPOINT_URL", s3_server.url)  # a client of their own; the pipelines use S3Resource's
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    s3 = S3Resource(endpoint_url=s3_server.url, region_name="us-east-1")
    home = str(registry.settings.home)
    resources = {
        "registry": RegistryResource(home=home, database_url=registry.settings.database_url, project=PROJECT),
        "storage": StorageResource(home=home, root=root, s3=s3),
        "chroma": ChromaResource(),
    }
    store = resources["storage"].open()
    assert isinstance(store, S3Storage) and store.client.meta.endpoint_url == s3_server.url

    reg = Registry(dataclasses.replace(registry.settings, storage_root=root))
    try:
        import_file(reg, demo_export.annotations_path, images=demo_export.images_dir, project=PROJECT)
        with reg.session() as s:
            create_version(s, get_project(s, PROJECT), "v1")
    finally:
        reg.dispose()
    assert any(k.startswith("masks/") for k in store.list(""))  # the masks the content hash reads are in S3

    monkeypatch.delenv("DSGEN_S3_ENDPOINT_URL")  # from here on, only S3Resource knows where S3 is
    instance.add_dynamic_partitions("dataset_versions", ["v1"])
    run = build_definitions(resources).resolve_job_def("dataset_version_job").execute_in_process(
        instance=instance, partition_key="v1")
    assert run.success
    assert all(e.passed for e in run.get_asset_check_evaluations())
    assert {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()} == {
        "dataset_version", "coco_export", "yolo_export", "insights"}
