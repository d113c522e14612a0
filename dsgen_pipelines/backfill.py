"""Asset backfills from the command line: real Dagster backfills (the UI's Backfills page shows
them), carried out by the daemon's backfill loop (``dagster-daemon run`` or ``dg dev``).

    python -m dsgen_pipelines.backfill embed [COLLECTION ...]      # re-embed everything (all versions)
    python -m dsgen_pipelines.backfill evaluate --on v2 [--recipe tiny]  # the newest model of each trained partition
    python -m dsgen_pipelines.backfill exports [v1 v2 ...]           # re-export (COCO, YOLO) and re-chart
    ... [--no-wait] [--json]

``dsgen backfill`` calls this. It waits by default, printing how many partitions are done and
failed; a partial failure leaves the rest done and lists the failed partitions (exit code 1).
"""

import argparse
import json
import sys
import time
from collections.abc import Sequence

import dagster as dg
import sqlalchemy as sa
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.utils import make_new_backfill_id

from dsgen_core.embeddings import versions
from dsgen_core.errors import DsgenError, ServiceUnavailable
from dsgen_core.ml.model_versions import list_model_versions, model_version_summary
from dsgen_core.registry.projects import get_project
from dsgen_core.versions.lifecycle import list_versions
from dsgen_pipelines.definitions import defs
from dsgen_pipelines.launch import ensure_dagster_home, registry_from_env
from dsgen_pipelines.ml.assets import EVAL_ON_TAG
from dsgen_pipelines.partitions import DATASET_VERSIONS, EMBEDDING_VERSIONS, recipes

DONE = {BulkActionStatus.COMPLETED_SUCCESS, BulkActionStatus.COMPLETED_FAILED, BulkActionStatus.COMPLETED,
        BulkActionStatus.FAILED, BulkActionStatus.CANCELED}
EXPORTS = ("coco_export", "yolo_export", "insights")
DAEMON_STALE_S = 60


def targets(kind: str, keys: Sequence[str], on: str | None, recipe: str | None,
            instance: dg.DagsterInstance) -> tuple[list[dg.AssetKey], list[str], dict[str, str]]:
    """The assets, partitions and tags of a backfill of ``kind``."""
    reg, project_name = registry_from_env()
    with reg.session() as s:  # the registry is closed when the process ends
        project = get_project(s, project_name)
        if kind == "embed":
            evs = versions.list_versions(s, project, active_only=not keys)
            chosen = [ev for ev in evs if not keys or versions.collection_name(ev) in keys]
            missing = set(keys) - {versions.collection_name(ev) for ev in chosen}
            if missing:
                raise DsgenError(f"no embedding version with collection {', '.join(sorted(missing))}; "
                                 "see `dsgen embed list`")
            for ev in chosen:  # everything again, not only what changed
                versions.queue_all(s, project, ev)
            parts = [versions.collection_name(ev) for ev in chosen]
            known = set(instance.get_dynamic_partitions(EMBEDDING_VERSIONS))
            instance.add_dynamic_partitions(EMBEDDING_VERSIONS, [p for p in parts if p not in known])
            return [dg.AssetKey("embeddings")], parts, {}
        frozen = [v.version_tag for v in list_versions(s, project) if v.is_frozen]
        if kind == "exports":
            unknown = set(keys) - set(frozen)
            if unknown:
                raise DsgenError(f"not frozen versions of project {project_name!r}: {', '.join(sorted(unknown))}")
            parts = list(keys) or frozen
            known = set(instance.get_dynamic_partitions(DATASET_VERSIONS))
            instance.add_dynamic_partitions(DATASET_VERSIONS, [p for p in parts if p not in known])
            return [dg.AssetKey(k) for k in EXPORTS], parts, {}
        if on is None or on not in frozen:
            raise DsgenError(f"evaluate --on: name a frozen version of project {project_name!r} "
                             f"({', '.join(frozen) or 'none yet'})")
        # Every trained model version, by its partition (the newest of a partition is what it evaluates).
        trained = {f"{m.dataset_version}|{m.recipe}" for m in (
            model_version_summary(s, mv) for mv in list_model_versions(s, project) if mv.status == "succeeded")
            if m.dataset_version and m.recipe in recipes.get_partition_keys()}
    parts = sorted(k for k in trained if recipe is None or k.endswith(f"|{recipe}"))
    if not parts:
        raise DsgenError("no trained model partitions to evaluate" + (f" with recipe {recipe!r}" if recipe else ""))
    tags_known = set(instance.get_dynamic_partitions(DATASET_VERSIONS))
    instance.add_dynamic_partitions(DATASET_VERSIONS, sorted({p.split("|")[0] for p in parts} - tags_known))
    return [dg.AssetKey("evaluation")], parts, {EVAL_ON_TAG: on}


def launch(instance: dg.DagsterInstance, kind: str, keys: Sequence[str], on: str | None = None,
           recipe: str | None = None) -> PartitionBackfill:
    assets, parts, tags = targets(kind, keys, on, recipe, instance)
    if not parts:
        raise DsgenError(f"nothing to backfill: no {'embedding versions' if kind == 'embed' else 'frozen versions'}")
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(), asset_graph=defs.resolve_asset_graph(), partition_names=parts,
        asset_selection=assets, backfill_timestamp=time.time(), tags={"dsgen/backfill": kind, **tags},
        dynamic_partitions_store=instance, all_partitions=False, title=f"dsgen backfill {kind}",
        description=f"{kind}: {', '.join(parts)}" + (f" on {on}" if on else ""), run_config=None)
    instance.add_backfill(backfill)
    return backfill


def daemon_running(instance: dg.DagsterInstance) -> bool:
    beat = instance.get_daemon_heartbeats().get("BACKFILL")
    return beat is not None and time.time() - beat.timestamp < DAEMON_STALE_S


def progress(instance: dg.DagsterInstance, backfill_id: str) -> tuple[PartitionBackfill, int, int, int, list[str]]:
    """The backfill, its target, done and failed asset partitions, and the failed ones by name."""
    b = instance.get_backfill(backfill_id)
    assert b is not None and b.asset_backfill_data is not None
    data = b.asset_backfill_data
    failed = sorted(f"{ap.asset_key.to_user_string()}[{ap.partition_key}]"
                    for ap in data.failed_and_downstream_subset.iterate_asset_partitions())
    return b, data.target_subset.num_partitions_and_non_partitioned_assets, \
        data.materialized_subset.num_partitions_and_non_partitioned_assets, len(failed), failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dsgen backfill", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["embed", "evaluate", "exports"])
    parser.add_argument("keys", nargs="*", help="embed: collections; exports: version tags (default: all)")
    parser.add_argument("--on", help="evaluate: the frozen version whose test split every model is evaluated on")
    parser.add_argument("--recipe", help="evaluate: only the models of this recipe")
    parser.add_argument("--no-wait", dest="wait", action="store_false", help="launch it and return")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait at most")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except DsgenError as exc:  # a refusal of dsgen's: one line, exit 2 (3: a server is unreachable)
        print(f"error: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, ServiceUnavailable) else 2
    except sa.exc.OperationalError as exc:
        print(f"error: the registry database cannot be reached: {str(exc.orig).strip().splitlines()[0]}",
              file=sys.stderr)
        return 3


def _run(args: argparse.Namespace) -> int:
    ensure_dagster_home()
    with dg.DagsterInstance.get() as instance:
        b = launch(instance, args.kind, args.keys, args.on, args.recipe)
        print(f"backfill {b.backfill_id} launched: {b.description} (UI: Runs → Backfills)", file=sys.stderr)
        if not daemon_running(instance):
            print("no dagster-daemon is running on this instance: the backfill waits for one "
                  "(dagster-daemon run -w workspace.yaml, or dg dev)", file=sys.stderr)
        if not args.wait:
            return 0
        deadline, shown = time.monotonic() + args.timeout, None
        while True:
            b, total, done, failed, names = progress(instance, b.backfill_id)
            line = f"{done}/{total} done, {failed} failed ({b.status.value.lower()})"
            if line != shown:
                print(line, file=sys.stderr, flush=True)
                shown = line
            if b.status in DONE:
                break
            if time.monotonic() > deadline:
                print(f"stopped waiting after {args.timeout:g} s; the backfill goes on (UI: Backfills)",
                      file=sys.stderr)
                break
            time.sleep(2)
    out = {"backfill_id": b.backfill_id, "status": b.status.value, "partitions": total, "done": done,
           "failed": names}
    if args.json:
        print(json.dumps(out))
    elif names:
        print("failed: " + ", ".join(names))
    return 0 if b.status == BulkActionStatus.COMPLETED_SUCCESS and not names else 1


if __name__ == "__main__":
    sys.exit(main())
