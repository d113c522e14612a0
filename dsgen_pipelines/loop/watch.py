"""Watch the loop react to one annotation batch, under a real ``dagster-daemon``: ``dsgen demo --loop``
and the loop latency benchmark.

    python -m dsgen_pipelines.loop.watch --project demo --recipe demo [--images 60] [--json]

It switches the project's policy on (the next version at 20 new human annotations, children
trained with ``--recipe``), makes sure the project has a production model, starts
``dagster-daemon run`` on this instance, imports a second demo batch with a new class (``star``)
and prints each step the daemon starts for it, with the seconds since the import's commit:
re-embedding, the freeze of the next version, its exports, the child's training (with its
epochs), ONNX export, evaluation and the promotion decision. The daemon stops at the end.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy import select

from dsgen_core.config import load_settings
from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.errors import DsgenError
from dsgen_core.formats.coco.importer import import_coco, local_sources_dir
from dsgen_core.loop import promotion
from dsgen_core.loop.batches import batch_tag
from dsgen_core.loop.policy import set_policy
from dsgen_core.ml.model_versions import list_model_versions
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import TrainingEpochMetric
from dsgen_core.storage import open_storage
from dsgen_pipelines.launch import ensure_dagster_home

REPO_WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"
# (what, job, step or None): the steps shown, in the order they happen.
STEPS = (
    ("re-embedding", "embeddings_job", "embeddings"),
    ("next version: freeze", "freeze_version_job", "dataset_version"),
    ("its exports", None, "yolo_export"),
    ("child training", "train_model_job", "model_version"),
    ("ONNX export + parity", "train_model_job", "onnx_artifact"),
    ("evaluation (both test splits)", "train_model_job", "evaluation"),
    ("promotion decision", "promotion_job", "production_model"),
)


@dataclass
class Step:
    what: str
    partition: str
    started_s: float  # seconds after the import's commit
    run_id: str


def start_daemon(log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    where = ["-w", str(REPO_WORKSPACE)] if REPO_WORKSPACE.is_file() else ["-m", "dsgen_pipelines.definitions", "-a", "defs"]
    exe = Path(sys.executable).parent / "dagster-daemon"
    return subprocess.Popen([str(exe), "run", *where], env=env, stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)  # the daemon, its code server and its runs
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def step_starts(instance: dg.DagsterInstance, batch: int, t0: float) -> dict[str, Step]:
    """The steps started because of ``batch`` (runs tagged with it, and what followed them)."""
    found: dict[str, Step] = {}
    records = instance.get_run_records(dg.RunsFilter(tags={batch_tag(batch): "true"}))
    runs = [r.dagster_run for r in records]
    frozen = {r.tags.get("dagster/partition") for r in runs if r.job_name == "freeze_version_job"}
    # Exports run by automation: tagged with nothing of ours, but of the new version's partition.
    for tag in frozen:
        runs += [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(
            tags={"dagster/partition": str(tag), "dagster/from_automation_condition": "true"}))]
    for run in runs:
        for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START):
            for what, job, step in STEPS:
                if event.step_key == step and (job is None or job == run.job_name) and what not in found:
                    found[what] = Step(what, run.tags.get("dagster/partition", ""), round(event.timestamp - t0, 1),
                                       run.run_id)
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dsgen demo --loop", description=__doc__.split("\n\n")[0])
    ap.add_argument("--project", default="demo")
    ap.add_argument("--recipe", default="demo")
    ap.add_argument("--images", type=int, default=60, help="images of the second batch")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    say = (lambda *_: None) if args.json else (lambda msg: print(msg, flush=True))

    home = ensure_dagster_home()
    settings = load_settings()
    reg = Registry(settings)
    storage = open_storage(settings.storage_root)
    try:
        with reg.session() as s:
            project = get_project(s, args.project)
            set_policy(s, project, enabled=True, trigger="sensor", min_annotations=20, train=True,
                       recipe=args.recipe, actor="cli:demo")
            if promotion.production_model(s, project) is None:
                trained = [mv for mv in list_model_versions(s, project) if mv.status == "succeeded"]
                if trained:
                    promotion.decide_promotion(s, project, trained[-1].human_id, storage=storage, actor="cli:demo")
            parent = promotion.production_model(s, project)
            if parent is None:
                raise DsgenError(f"project {args.project!r} has no production model: run `dsgen demo` first, or "
                                 "`dsgen model promote m1`")
            started_after = max((mv.id for mv in list_model_versions(s, project)), default=0)
    except DsgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    say(f"policy on: the next version at 20 new human annotations, children trained with {args.recipe!r}; "
        f"production model {parent.human_id}")

    env = {**os.environ, "DAGSTER_HOME": str(home), "DSGEN_PROJECT": args.project}
    log = home / "loop-daemon.log"
    daemon = start_daemon(log, env)
    say(f"dagster-daemon started (log: {log}); watch it in the UI too: DAGSTER_HOME={home} DSGEN_PROJECT="
        f"{args.project} dg dev")
    out: dict[str, Any] = {"parent": parent.human_id}
    try:
        time.sleep(5)  # the daemon takes the sensors' first ticks (cursors) before the batch lands
        # A batch this project has not seen: the same file again would change nothing (imports are idempotent).
        seed = args.seed
        while (settings.home / "demo" / f"batch-star-{args.images}-{seed}").exists():
            seed += 1
        src = settings.home / "demo" / f"batch-star-{args.images}-{seed}"
        generate_demo_dataset(src, n_images=args.images, seed=seed, add_class="star")
        with reg.session(bulk=True) as s:
            r = import_coco(s, get_project(s, args.project), src / "annotations" / "instances_default.json",
                            images=src / "images", storage=storage,
                            sources_dir=local_sources_dir(storage, settings.home), actor="cli:demo")
        t0 = time.time()
        batch = r.ingest.batch_id
        out["batch"] = batch
        say(f"imported batch #{batch}: {r.ingest.images_new} images, {r.ingest.objects_new} objects, "
            f"{r.ingest.classes_new} new class(es); the daemon takes it from here")
        shown: set[str] = set()
        decision, epochs_shown = None, 0
        deadline = time.monotonic() + args.timeout
        with dg.DagsterInstance.get() as instance:
            while time.monotonic() < deadline and daemon.poll() is None:
                steps = step_starts(instance, batch, t0)
                for what, _job, _step in STEPS:
                    if what in steps and what not in shown:
                        st = steps[what]
                        say(f"  +{st.started_s:>6.1f} s  {what} ({st.partition}, run {st.run_id[:8]})")
                        shown.add(what)
                with reg.session() as s:
                    p = get_project(s, args.project)
                    child = next((mv for mv in list_model_versions(s, p) if mv.parent_model_version_id == parent.id
                                  and mv.id > started_after), None)
                    if child is not None:
                        for e in s.scalars(select(TrainingEpochMetric).where(
                                TrainingEpochMetric.model_version_id == child.id,
                                TrainingEpochMetric.epoch > epochs_shown).order_by(TrainingEpochMetric.epoch)):
                            say(f"           {child.human_id} epoch {e.epoch}/{((child.training_config or {}).get('recipe') or {}).get('epochs', '?')}"
                                f"  loss {e.train_loss or 0:.3f}  mAP50 {e.map50 or 0:.3f}")
                            epochs_shown = e.epoch
                        if child.promotion is not None:
                            decision = {"model_version": child.human_id, **child.promotion}
                if decision is not None:
                    break
                failed = instance.get_run_records(dg.RunsFilter(tags={batch_tag(batch): "true"},
                                                                statuses=[dg.DagsterRunStatus.FAILURE]))
                if failed:
                    out["failed"] = [f.dagster_run.job_name for f in failed]
                    break
                time.sleep(2)
            out["steps"] = [asdict(s) for s in step_starts(instance, batch, t0).values()]
        out["decision"] = decision
        out["decision_s"] = round(time.time() - t0, 1)
    finally:
        stop_daemon(daemon)
    if decision is not None:
        say(f"  +{out['decision_s']:>6.1f} s  {decision['model_version']}: {decision['decision']} ({decision['reason']})")
    elif out.get("failed"):
        say(f"a run failed: {', '.join(out['failed'])} (see `dsgen batches` and the daemon log {log})")
    else:
        say(f"no promotion decision within {args.timeout:.0f} s (daemon log: {log})")
    if args.json:
        print(json.dumps(out))
    return 0 if decision is not None else 1


if __name__ == "__main__":
    sys.exit(main())
