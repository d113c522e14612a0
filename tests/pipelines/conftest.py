"""Fixtures for the Dagster definitions: demo data, resources on the test's registry, a test instance."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from dsgen_core.demo import DemoDataset, generate_demo_dataset
from dsgen_core.registry.db import Registry
from dsgen_pipelines.definitions import build_definitions
from dsgen_pipelines.resources import ChromaResource, RegistryResource, StorageResource
from support import REPO_ROOT, PostgresServer, import_file

PROJECT = "default"


@pytest.fixture(autouse=True)
def _no_outside_dagster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees a developer's Dagster instance, project or Dagster database."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    for name in ("DSGEN_PROJECT", "DSGEN_DAGSTER_PG_URL", "DSGEN_STORAGE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def demo_export(tmp_path_factory: pytest.TempPathFactory) -> DemoDataset:
    """40 synthetic images in CVAT COCO 1.0 layout: polygons, masks, a track, three classes."""
    return generate_demo_dataset(tmp_path_factory.mktemp("demo-export"), n_images=40, seed=3)


@pytest.fixture
def imported(registry: Registry, demo_export: DemoDataset) -> Registry:
    import_file(registry, demo_export.annotations_path, images=demo_export.images_dir, project=PROJECT)
    return registry


@pytest.fixture
def resources(registry: Registry) -> dict[str, dg.ConfigurableResource]:
    home = str(registry.settings.home)
    return {
        "registry": RegistryResource(home=home, database_url=registry.settings.database_url, project=PROJECT),
        "storage": StorageResource(home=home, s3=S3Resource()),
        "chroma": ChromaResource(),  # embedded, under the test registry's home
    }


@pytest.fixture
def defs(resources: dict[str, dg.ConfigurableResource]) -> dg.Definitions:
    return build_definitions(resources)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def dagster_home(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 request: pytest.FixtureRequest) -> Iterator[Path]:
    """A DAGSTER_HOME with the repository's dagster.yaml; on PostgreSQL, Dagster's storage in a database of its own."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DSGEN_PROJECT", PROJECT)
    dbname = None
    if database_url.startswith("postgresql"):
        server: PostgresServer = request.getfixturevalue("pg_server")
        dbname = server.create_database()
        monkeypatch.setenv("DSGEN_DAGSTER_PG_URL", server.url(dbname))
    yield home
    if dbname is not None:
        server.drop_database(dbname)
