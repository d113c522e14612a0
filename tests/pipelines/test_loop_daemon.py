"""The continuous loop with a real dagster-daemon (issue 11): a batch over the policy's threshold
re-embeds, cuts and freezes v2 with stable splits, exports it, trains m2 from the production m1
with rehearsal, exports ONNX with parity, evaluates on both test splits and decides the promotion,
all by itself; a batch under the threshold only re-embeds.

Setup (m1 trained, promoted and embedding the project) runs in this process through the same
Dagster jobs; only the loop itself runs under the daemon. On PostgreSQL, the registry and
Dagster's storage are both PostgreSQL databases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from dsgen_core.demo import DemoDataset, generate_demo_dataset
from dsgen_core.loop.promotion import production_model
from dsgen_core.ml.model_versions import get_model_version
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import (
    Annotation,
    DatasetSplit,
    DatasetVersion,
    DatasetVersionAsset,
    EmbeddingOutbox,
    EmbeddingVersion,
    Evaluation,
    ModelVersion,
)
from dsgen_core.versions.lifecycle import create_version
from support import REPO_ROOT

from .conftest import PROJECT
from .test_daemon import Daemon, wait_for

TIMEOUT_S = 900  # two test workers share CI's 2 cores; import → decision takes about a minute alone
COLLECTION = "objects_visual_default-m1"


def _splits(registry: Registry, tag: str) -> dict[int, str]:
    with registry.session() as s:
        return dict(s.execute(select(DatasetVersionAsset.asset_id, DatasetSplit.split)
                              .join(DatasetSplit, DatasetSplit.id == DatasetVersionAsset.split_id)
                              .join(DatasetVersion, DatasetVersion.id == DatasetVersionAsset.dataset_version_id)
                              .where(DatasetVersion.version_tag == tag)).all())


def _runs_failed(instance: dg.DagsterInstance) -> None:
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])):
        errors = [str(e.dagster_event.event_specific_data)[:1500] for e in instance.all_logs(run.run_id)
                  if e.is_dagster_event and e.dagster_event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")]
        pytest.fail(f"run {run.job_name} {run.tags.get('dagster/partition')} failed:\n" + "\n".join(errors))


def _embedding_runs(instance: dg.DagsterInstance, batch: int) -> list[dg.DagsterRun]:
    return [r for r in instance.get_runs(dg.RunsFilter(job_name="embeddings_job", statuses=[dg.DagsterRunStatus.SUCCESS]))
            if str(batch) in r.tags.get("dsgen/batches", "").split(",")]


@pytest.mark.slow
def test_the_loop_runs_by_itself_under_the_daemon(registry: Registry, demo_export: DemoDataset, dagster_home: Path,
                                                  env: dict[str, str], cli, tmp_path: Path) -> None:  # noqa: ANN001
    # dagster_home first: the CLI's environment (env) then names the same Dagster instance.
    cli("import", "coco", demo_export.annotations_path, "--images", demo_export.images_dir, check=True)
    with registry.session() as s:
        create_version(s, get_project(s, PROJECT), "v1")
    environ = dict(os.environ)
    setup = subprocess.run([sys.executable, "-m", "dsgen_pipelines.launch", "v1", "--train", "tiny", "--embed", "tiny",
                            "--json"], env=environ, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert setup.returncode == 0, setup.stderr[-3000:]
    assert json.loads(setup.stdout)["models"]["production_model"]["success"]
    with registry.session() as s:
        m1 = production_model(s, get_project(s, PROJECT))
        assert m1 is not None and m1.human_id == "m1"
    cli("policy", "set", "--on", "--min-annotations", "20", "--recipe", "tiny", "--tolerance", "1", check=True)
    v1_splits = _splits(registry, "v1")

    batch_b = generate_demo_dataset(tmp_path / "b", n_images=12, seed=5, add_class="star")
    batch_c = generate_demo_dataset(tmp_path / "c", n_images=2, seed=7, add_class="hexagon")
    with dg.DagsterInstance.get() as instance:
        daemon = Daemon(environ, tmp_path)
        try:
            t0 = time.monotonic()
            deadline = t0 + TIMEOUT_S
            out = cli("import", "coco", batch_b.annotations_path, "--images", batch_b.images_dir, "--json", check=True)
            b_id = json.loads(out.stdout)["batch_id"]

            def decided() -> ModelVersion | None:
                _runs_failed(instance)
                with registry.session() as s:
                    mv = s.scalar(select(ModelVersion).where(ModelVersion.human_id == "m2"))
                    return mv if mv is not None and mv.promotion is not None else None

            m2 = wait_for("m2's promotion decision", decided, daemon, deadline)
            loop_s = time.monotonic() - t0
            wait_for("the re-embedding of batch B", lambda: _embedding_runs(instance, b_id), daemon, deadline)
            wait_for("v2's exports", lambda: all("v2" in instance.get_materialized_partitions(dg.AssetKey(k))
                                                 for k in ("yolo_export", "coco_export")) or None, daemon, deadline)

            # The batch is the unit of change: the runs it started carry it.
            train_runs = instance.get_runs(dg.RunsFilter(job_name="train_model_job",
                                                         tags={"dagster/sensor_name": "train_after_freeze"}))
            assert len(train_runs) == 1 and train_runs[0].tags["dsgen/batches"] == str(b_id)
            assert train_runs[0].tags["dsgen/parent"] == "m1"
            freeze = instance.get_runs(dg.RunsFilter(job_name="freeze_version_job",
                                                     tags={"dagster/sensor_name": "next_version_on_policy"}))
            assert [r.tags["dagster/partition"] for r in freeze] == ["v2"]
            assert freeze[0].tags["dsgen/batches"] == str(b_id)

            # A batch under the threshold: re-embedding only.
            out = cli("import", "coco", batch_c.annotations_path, "--images", batch_c.images_dir, "--json", check=True)
            c_id = json.loads(out.stdout)["batch_id"]
            wait_for("the re-embedding of batch C", lambda: _embedding_runs(instance, c_id), daemon, deadline)
            time.sleep(25)  # two ticks of the next-version sensor
            _runs_failed(instance)
            assert instance.get_dynamic_partitions("dataset_versions") == ["v1", "v2"]
            assert len(instance.get_runs(dg.RunsFilter(job_name="train_model_job"))) == 2  # m1 (setup) and m2

            # Backfills from the CLI: every model re-evaluated on v2's test split; v1 re-exported.
            out = cli("backfill", "evaluate", "--on", "v2", "--json", "--timeout", "600", check=True)
            done = json.loads(out.stdout)
            assert (done["status"], done["partitions"], done["done"], done["failed"]) == (
                "COMPLETED_SUCCESS", 2, 2, [])
            backfill = instance.get_backfill(done["backfill_id"])
            assert backfill is not None and backfill.tags["dsgen/eval_on"] == "v2"
            out = cli("backfill", "exports", "v1", "--json", "--timeout", "600", check=True)
            assert json.loads(out.stdout)["done"] == 3  # COCO, YOLO and insights of v1
            out = cli("backfill", "embed", COLLECTION, "--json", "--timeout", "600", check=True)
            assert json.loads(out.stdout)["done"] == 1
            with registry.session() as s:  # everything again: every object of the project, embedded anew
                n = s.scalar(select(func.count()).select_from(EmbeddingOutbox).join(
                    EmbeddingVersion, EmbeddingVersion.id == EmbeddingOutbox.embedding_version_id).where(
                    EmbeddingVersion.level == "object", EmbeddingOutbox.status == "synced"))
                objects = s.scalar(select(func.count()).select_from(Annotation))
            assert objects and n is not None and n >= 2 * objects  # queued when made, and again by the backfill
        finally:
            daemon.stop()

    with registry.session() as s:
        p = get_project(s, PROJECT)
        m2 = get_model_version(s, p, "m2")
        v2 = s.scalar(select(DatasetVersion).where(DatasetVersion.version_tag == "v2"))
        assert v2 is not None and v2.is_frozen and (v2.filter_config or {}).get("by_policy")
        assert m2.parent_model_version_id == m1.id and m2.training_data_version_id == v2.id
        assert "rehearsal" in json.dumps(m2.incremental_info)
        evaluated = {(e.dataset_version_id, e.split) for e in s.scalars(
            select(Evaluation).where(Evaluation.model_version_id == m2.id))}
        assert {(v2.id, "test"), (m1.training_data_version_id, "test")} <= evaluated
        m1_on_v2 = s.scalar(select(Evaluation.id).where(Evaluation.model_version_id == m1.id,
                                                        Evaluation.dataset_version_id == v2.id))
        assert m1_on_v2 is not None  # by the backfill (and the promotion's comparison on the new classes)
        decision = m2.promotion or {}
        assert decision["decision"] in ("promoted", "candidate") and decision["reference"] == "m1"
        assert decision["reason"] and "v1/test" in decision["reason"]
        assert (production_model(s, p).human_id == "m2") == (decision["decision"] == "promoted")
    v2_splits = _splits(registry, "v2")
    assert {a: v2_splits[a] for a in v1_splits} == v1_splits  # stable splits: no v1 image moved
    assert len(v2_splits) == len(v1_splits) + 12
    print(f"import → promotion decision: {loop_s:.0f} s")
