"""The README's Dagster commands on the demo data: `dsgen demo`, `dg launch`, `dagster job backfill`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from support import REPO_ROOT, tree_digest

BIN = Path(sys.executable).parent
DOWNSTREAM = ("coco_export", "yolo_export", "insights")


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_demo_then_launch_and_backfill_from_the_cli(cli, env: dict[str, str], tmp_path: Path) -> None:  # noqa: ANN001
    dagster_home = Path(env["DAGSTER_HOME"])
    out = json.loads(cli("demo", "--images", "30", "--recipe", "tiny", "--json", check=True).stdout.splitlines()[-1])
    assert out["version"]["tag"] == "v1" and out["version"]["frozen"] and len(out["version"]["content_hash"]) == 64
    assert sum(out["version"]["splits"].values()) == 30
    v1 = out["dagster"]["versions"]["v1"]
    assert v1["success"] and v1["materialized"] == ["coco_export", "dataset_version", "insights", "yolo_export"]
    assert all(v1["checks"].values())
    assert out["dagster"]["dagster_home"] == str(dagster_home)
    # The demo trains a model on v1 (here the tiny recipe), exports it to ONNX and evaluates it, through Dagster.
    model_run = out["dagster"]["models"]["v1|tiny"]
    assert model_run["success"] and model_run["materialized"] == ["evaluation", "model_version", "onnx_artifact"]
    assert model_run["checks"] == {"onnx_matches_pytorch": True, "not_worse_than_parent": True}
    ev = out["evaluation"]
    assert {"precision", "recall", "f1", "map50", "map50_95", "per_class"} <= set(ev) and ev["split"] == "test"
    assert ev["model_version"] == "m1" and set(ev["per_class"]) == set(out["classes"])
    assert (dagster_home / "dagster.yaml").read_text() == (REPO_ROOT / "dagster.yaml").read_text()
    exports = Path(env["DSGEN_HOME"]) / "exports" / "demo" / "v1"
    assert (exports / "coco" / "annotations" / "instances_train.json").is_file()
    assert (exports / "yolo" / "data.yaml").is_file()
    # The CLI, without Dagster, writes the same bytes as the Dagster assets.
    cli("export", "yolo", "v1", tmp_path / "cli-yolo", "--project", "demo", check=True)
    cli("export", "coco", "--version", "v1", tmp_path / "cli-coco", "--project", "demo", check=True)
    assert tree_digest(tmp_path / "cli-yolo") == tree_digest(exports / "yolo")
    assert tree_digest(tmp_path / "cli-coco") == tree_digest(exports / "coco")

    dagster_env = {**env, "DSGEN_PROJECT": "demo"}
    run("dg", "launch", "--assets", "dataset_version", "--partition", "v1", env=dagster_env)
    # A second model of the same partition, trained from the CLI as the README shows.
    run("dg", "launch", "--assets", "model_version", "--partition", "v1|tiny", env=dagster_env)
    models = json.loads(cli("models", "--project", "demo", "--json", check=True).stdout)
    assert [(m["human_id"], m["status"], m["dataset_version"]) for m in models] == [
        ("m1", "succeeded", "v1"), ("m2", "succeeded", "v1")]

    cli("version", "create", "v2", "--project", "demo", "--query", "category:circle", check=True)
    with dg.DagsterInstance.get() as instance:
        assert len(instance.fetch_materializations(dg.AssetKey("dataset_version"), limit=10).records) == 2
        instance.add_dynamic_partitions("dataset_versions", ["v2"])  # what the registry sensor does under `dg dev`

    run("dagster", "job", "backfill", "-j", "dataset_version_job", "--partitions", "v1,v2", "--noprompt", env=dagster_env)
    with dg.DagsterInstance.get() as instance:
        deadline = time.monotonic() + 300  # the CLI leaves once its code server stops, at most 60 s after launching
        while True:
            runs = instance.get_runs(dg.RunsFilter(job_name="dataset_version_job"))
            backfill = [r for r in runs if "dagster/backfill" in r.tags]
            if all(r.is_finished for r in backfill) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert sorted(r.tags["dagster/partition"] for r in backfill) == ["v1", "v2"]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in backfill), [r.status for r in backfill]
        for key in ("dataset_version", *DOWNSTREAM):
            assert instance.get_materialized_partitions(dg.AssetKey(key)) == {"v1", "v2"}, key
    assert (Path(env["DSGEN_HOME"]) / "exports" / "demo" / "v2" / "yolo" / "data.yaml").is_file()
    versions = {v["tag"]: v for v in json.loads(cli("version", "list", "--project", "demo", "--json", check=True).stdout)}
    assert versions["v2"]["frozen"] and versions["v2"]["content_hash"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_launch_refuses_a_recipe_without_model_partitions(env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "dsgen_pipelines.launch", "v1", "--train", "segment-160"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "no model partitions for recipe 'segment-160'" in proc.stderr
    assert "Traceback" not in proc.stderr
