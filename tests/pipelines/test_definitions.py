"""The definitions load, have the documented shape, and one code location name is used everywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dsgen_pipelines.automation import after_checked_upstream
from dsgen_pipelines.definitions import defs as env_defs
from support import REPO_ROOT

LOCATION = "dsgen"
CHECKS = {
    "content_hash_verifies": True,
    "no_empty_split": True,
    "no_asset_in_two_splits": True,
    "every_class_has_train_examples": False,
    "onnx_matches_pytorch": True,
    "not_worse_than_parent": False,
    "registry_and_chroma_agree": False,
}


def test_definitions_are_loadable() -> None:
    dg.Definitions.validate_loadable(env_defs)


def test_asset_graph_and_lineage() -> None:
    graph = env_defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {
        "registry/assets", "registry/annotations", "registry/label_classes", "registry/tracks",
        "thumbnails", "dataset_version", "coco_export", "yolo_export", "insights",
        "model_version", "onnx_artifact", "evaluation", "embeddings", "production_model",
    }
    key = dg.AssetKey
    assert graph.get(key("dataset_version")).parent_keys == {
        key(["registry", "assets"]), key(["registry", "annotations"]), key(["registry", "label_classes"])}
    for name in ("coco_export", "yolo_export", "insights"):
        node = graph.get(key(name))
        assert node.parent_keys == {key("dataset_version")}
        assert node.partitions_def == graph.get(key("dataset_version")).partitions_def
        assert node.automation_condition == after_checked_upstream
    assert graph.get(key("thumbnails")).automation_condition is not None
    assert graph.get(key("dataset_version")).automation_condition is None  # freezing is asked for, never automatic
    assert not graph.get(key(["registry", "assets"])).is_materializable  # external: the sensor records them
    # Models hang below versions; training is asked for, its ONNX export and evaluation follow.
    assert graph.get(key("model_version")).parent_keys == {key("dataset_version")}
    assert graph.get(key("model_version")).automation_condition is None
    assert graph.get(key("onnx_artifact")).parent_keys == {key("model_version")}
    assert graph.get(key("evaluation")).parent_keys == {key("onnx_artifact")}
    for name in ("onnx_artifact", "evaluation"):
        assert graph.get(key(name)).automation_condition == after_checked_upstream
    # Embeddings: below the registry tables and the models whose backbones embed; one partition per version.
    emb = graph.get(key("embeddings"))
    assert emb.parent_keys == {*(key(["registry", t]) for t in ("assets", "annotations", "label_classes", "tracks")),
                               key("model_version")}
    assert emb.partitions_def is not None and emb.partitions_def.name == "embedding_versions"
    # The production model follows every evaluation (by the promotion sensor, not a condition).
    prod = graph.get(key("production_model"))
    assert prod.parent_keys == {key("evaluation")} and prod.partitions_def is None
    assert prod.automation_condition is None
    # Transient failures are retried; training once, the rest twice.
    for name, tries in (("dataset_version", 2), ("model_version", 1), ("onnx_artifact", 2), ("evaluation", 2),
                        ("embeddings", 2), ("production_model", 2)):
        policy = env_defs.resolve_assets_def(name).op.retry_policy
        assert policy is not None and policy.max_retries == tries, name

    checks = {c.name: c for c in graph.asset_check_keys}
    assert set(checks) == set(CHECKS)
    for name, blocking in CHECKS.items():
        assert graph.get(checks[name]).blocking is blocking, name


def test_jobs_sensors_and_resources() -> None:
    assert {j.name for j in env_defs.resolve_all_job_defs()} >= {"import_coco_job", "freeze_version_job", "dataset_version_job",
                                                                     "train_model_job"}
    freeze = env_defs.resolve_job_def("freeze_version_job")
    assert freeze.partitions_def is not None and freeze.partitions_def.name == "dataset_versions"
    assert set(freeze.graph.node_dict) == {"dataset_version", "dataset_version_checks"}
    full = env_defs.resolve_job_def("dataset_version_job")
    assert set(full.graph.node_dict) == {"dataset_version", "dataset_version_checks", "coco_export", "yolo_export", "insights"}

    sensors = {s.name: s for s in env_defs.sensors}
    assert set(sensors) == {"registry_changes", "dsgen_automation", "reembed_on_changes", "next_version_on_policy",
                            "train_after_freeze", "promote_after_evaluation", "record_run_failures", "cvat_pull_poll"}
    # Every sensor runs by default but the CVAT poll, which asks a server on the network.
    assert {n for n, s in sensors.items() if s.default_status != dg.DefaultSensorStatus.RUNNING} == {"cvat_pull_poll"}
    assert sensors["cvat_pull_poll"].job_name == "cvat_pull_job"
    assert sensors["registry_changes"].job_name == "freeze_version_job"
    assert sensors["next_version_on_policy"].job_name == "freeze_version_job"
    assert sensors["train_after_freeze"].job_name == "train_model_job"
    assert sensors["reembed_on_changes"].job_name == "embeddings_job"
    assert sensors["promote_after_evaluation"].job_name == "promotion_job"
    # Schedules: only the nightly reconcile (and the storage gc) run unless switched on.
    schedules = {s.name: s.default_status for s in env_defs.schedules}
    running = dg.DefaultScheduleStatus.RUNNING
    assert {n for n, st in schedules.items() if st == running} == {"storage_gc_job_schedule", "nightly_embedding_reconcile"}
    assert set(schedules) >= {"nightly_policy_evaluation", "weekly_production_reevaluation"}
    assert set(env_defs.resources) == {"registry", "storage", "chroma"}
    emb = env_defs.resolve_job_def("embeddings_job")
    assert set(emb.graph.node_dict) == {"embeddings", "embeddings_in_step"}


def test_resources_read_the_environment_through_envvar(monkeypatch: pytest.MonkeyPatch) -> None:
    from dsgen_pipelines.resources import build_resources

    monkeypatch.setenv("DSGEN_DATABASE_URL", "sqlite:////nowhere/registry.db")
    monkeypatch.setenv("DSGEN_PROJECT", "demo")
    res = build_resources()
    assert isinstance(res["registry"].database_url, dg.EnvVar)
    assert isinstance(res["registry"].project, dg.EnvVar)
    monkeypatch.delenv("DSGEN_DATABASE_URL")
    monkeypatch.delenv("DSGEN_PROJECT")
    res = build_resources()
    assert res["registry"].database_url is None and res["registry"].project == "default"


def test_one_code_location_name_everywhere() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["dagster"]["code_location_name"] == LOCATION
    assert pyproject["tool"]["dg"]["project"]["code_location_name"] == LOCATION
    assert pyproject["tool"]["dagster"]["module_name"] == "dsgen_pipelines.definitions"
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    assert entry["python_module"]["location_name"] == LOCATION
    assert entry["python_module"]["module_name"] == "dsgen_pipelines.definitions"


def test_dg_check_defs(tmp_path: Path) -> None:
    """What CI and a developer run: `dg check defs` from the project root."""
    dg_exe = Path(sys.executable).parent / "dg"
    proc = subprocess.run([str(dg_exe), "check", "defs"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DAGSTER_HOME": str(tmp_path)}, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_dagster_yaml_storage_follows_the_environment(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """The repository's dagster.yaml: SQLite under DAGSTER_HOME, or PostgreSQL when DSGEN_DAGSTER_PG_URL is set."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    if database_url.startswith("postgresql"):
        monkeypatch.setenv("DSGEN_DAGSTER_PG_URL", database_url)  # the SQLAlchemy spelling is accepted too
    with dg.DagsterInstance.get() as instance:
        storage = type(instance.run_storage).__name__
        assert storage == ("PostgresRunStorage" if database_url.startswith("postgresql") else "PooledRunStorage")
        if not database_url.startswith("postgresql"):
            # One event-log file for all runs, not a new database per run.
            assert [p.name for p in (home / "history" / "runs").glob("*.db")] == ["event_log.db"]
        assert type(instance.run_coordinator).__name__ in ("DefaultRunCoordinator", "SyncInMemoryRunCoordinator")
        instance.add_dynamic_partitions("dataset_versions", ["v1"])
        instance.report_runless_asset_event(dg.AssetMaterialization(["registry", "assets"], metadata={"change_seq": 1}))
        ref = instance.get_ref()
    with dg.DagsterInstance.from_ref(ref) as again:  # what run workers and code servers do
        assert again.get_dynamic_partitions("dataset_versions") == ["v1"]
        assert again.get_latest_materialization_event(dg.AssetKey(["registry", "assets"])) is not None


def test_sqlite_event_log_can_go_back_to_one_file_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`event_log: per_run` in dagster.yaml gives Dagster's own layout; a run's events land in its own file."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        (REPO_ROOT / "dagster.yaml").read_text().replace("event_log: single_file", "event_log: per_run"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("DSGEN_DAGSTER_PG_URL", raising=False)

    @dg.asset
    def one() -> int:
        return 1

    with dg.DagsterInstance.get() as instance:
        assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
        run_id = dg.materialize([one], instance=instance).run_id
        assert instance.get_latest_materialization_event(dg.AssetKey("one")) is not None
    assert (home / "history" / "runs" / f"{run_id}.db").is_file()


def test_training_pool_allows_one_run_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository's dagster.yaml gives the `gpu` pool (model_version's) one slot."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("DSGEN_DAGSTER_PG_URL", raising=False)
    from dsgen_pipelines.ml.assets import GPU_POOL, model_version

    assert model_version.op.pool == GPU_POOL
    with dg.DagsterInstance.get() as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
