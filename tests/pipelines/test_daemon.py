"""A real dagster-daemon: a freeze requested through the CLI is run by the sensor, then exported by automation.

On PostgreSQL, both the registry and Dagster's own storage are PostgreSQL databases.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pytest

from dsgen_core.demo import DemoDataset
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.versions.lifecycle import create_version, get_version, version_summary
from support import REPO_ROOT

from .conftest import PROJECT

TIMEOUT_S = 300  # CI has 2 cores and runs two test workers; a pass takes about a minute here
DOWNSTREAM = ("coco_export", "yolo_export", "insights")
T = TypeVar("T")


class Daemon:
    """`dagster-daemon run` in its own process group, so that it, its code server and its runs all stop together."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.log = cwd / "daemon.log"
        exe = Path(sys.executable).parent / "dagster-daemon"
        self.proc = subprocess.Popen(
            [str(exe), "run", "-w", str(REPO_ROOT / "workspace.yaml")], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever of the group is left (code server, run workers)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)


def wait_for(what: str, probe: Callable[[], T | None], daemon: Daemon, deadline: float) -> T:
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        if daemon.proc.poll() is not None:
            break
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}; daemon exit code {daemon.proc.poll()}\n--- daemon log ---\n{daemon.tail()}")


@pytest.mark.slow
def test_daemon_runs_a_requested_freeze_and_automation_exports_it(
    registry: Registry, demo_export: DemoDataset, env: dict[str, str], dagster_home: Path, cli, tmp_path: Path
) -> None:
    cli("import", "coco", demo_export.annotations_path, "--images", demo_export.images_dir, check=True)
    with registry.session() as s:
        create_version(s, get_project(s, PROJECT), "v1")

    # Opening the instance first creates Dagster's tables: processes that all start on an empty
    # PostgreSQL database race to create them (`dagster instance migrate` does the same for a deployment).
    with dg.DagsterInstance.get() as instance:
        daemon = Daemon(dict(os.environ), tmp_path)
        try:
            cli("version", "freeze", "v1", "--request", check=True)
            deadline = time.monotonic() + TIMEOUT_S

            def freeze_run() -> dg.DagsterRun | None:
                runs = instance.get_runs(dg.RunsFilter(job_name="freeze_version_job", tags={"dagster/partition": "v1"}))
                for run in runs:
                    if run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
                        pytest.fail(f"run {run.run_id} {run.status}:\n" + "\n".join(
                            str(e.dagster_event.event_specific_data)[:2000] for e in instance.all_logs(run.run_id)
                            if e.is_dagster_event and e.dagster_event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")))
                return next((r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS), None)

            run = wait_for("the sensor's freeze run to succeed", freeze_run, daemon, deadline)
            assert run.tags["dagster/sensor_name"] == "registry_changes"
            assert instance.get_dynamic_partitions("dataset_versions") == ["v1"]
            assert "v1" in instance.get_materialized_partitions(dg.AssetKey("dataset_version"))

            def exported() -> set[str] | None:
                done = {k for k in DOWNSTREAM if "v1" in instance.get_materialized_partitions(dg.AssetKey(k))}
                return done if done == set(DOWNSTREAM) else None

            wait_for("automation to export and chart v1", exported, daemon, deadline)

            # The materializations are recorded before the run that made them is marked finished.
            def automation_run() -> dg.DagsterRun | None:
                runs = instance.get_runs(dg.RunsFilter(tags={"dagster/from_automation_condition": "true"}))
                return next((r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS
                             and r.tags.get("dagster/partition") == "v1"), None)

            wait_for("the automation run for v1 to finish", automation_run, daemon, deadline)
        finally:
            daemon.stop()

    with registry.session() as s:
        summary = version_summary(s, get_version(s, get_project(s, PROJECT), "v1")).to_dict()
    assert summary["frozen"] and sum(summary["splits"].values()) == demo_export.n_images
    exports = registry.settings.home / "exports" / PROJECT / "v1"
    assert sorted(p.name for p in (exports / "coco" / "annotations").iterdir()) == [
        "instances_test.json", "instances_train.json", "instances_val.json"]
    assert (exports / "yolo" / "data.yaml").is_file()
    assert sum(1 for _ in (exports / "yolo" / "labels").rglob("*.txt")) > 0
