"""Dagster's overhead: materializing ``dataset_version`` for a 5,000-image version, side by side
with calling the core function (``freeze_version``) directly; target: Dagster <= 1.5x direct.

    python benchmarks/bench_dagster.py                       # SQLite, then PostgreSQL; 5 rounds each, median
    python benchmarks/bench_dagster.py --only sqlite --rounds 3

Input: ``datagen.generate_small`` (5,000 JPEGs, 35,000 boxes) imported once into a fresh registry.
Each round creates identical draft versions (all images, default split) and freezes one directly
(``freeze_version`` in one session) and one by materializing its ``dataset_version`` partition with
Dagster in this process: run record, resources, the asset body (freeze + summary), the event log.
Dagster's instance is the repository's dagster.yaml in a temp DAGSTER_HOME: its storage is SQLite
files, or PostgreSQL (DSGEN_DAGSTER_PG_URL) in the ``postgresql`` configuration, where the registry
is PostgreSQL too (the tests' throwaway server). Two more lines for reference: the same
materialization on an in-memory instance (Dagster's execution machinery alone, nothing stored),
and the partition's ``freeze_version_job`` (the asset plus its four checks) on the real instance.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

import dagster as dg  # noqa: E402
import datagen  # noqa: E402
from dagster_aws.s3 import S3Resource  # noqa: E402

from dsgen_core.config import load_settings  # noqa: E402
from dsgen_core.registry.db import Registry  # noqa: E402
from dsgen_core.registry.projects import get_project  # noqa: E402
from dsgen_core.storage import open_storage  # noqa: E402
from dsgen_core.versions.lifecycle import create_version, freeze_version  # noqa: E402
from dsgen_pipelines.definitions import build_definitions  # noqa: E402
from dsgen_pipelines.partitions import dataset_versions  # noqa: E402
from dsgen_pipelines.resources import RegistryResource, StorageResource  # noqa: E402
from dsgen_pipelines.versions.assets import dataset_version  # noqa: E402
from support import import_file  # noqa: E402

PROJECT = "bench"
TARGET = 1.5
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class Bench:
    """One registry with the 5,000-image set, and the ways to freeze a fresh version of it."""

    def __init__(self, data: Path, home: Path, database_url: str | None) -> None:
        self.reg = Registry(load_settings(home=home, database_url=database_url))
        t = time.perf_counter()
        r = import_file(self.reg, data / "annotations" / "instances_default.json", images=data / "images", project=PROJECT)
        print(f"  imported {r.summary()['images']} images, {r.summary()['annotations']} boxes in "
              f"{time.perf_counter() - t:.1f} s ({self.reg.dialect} registry)")
        resources = {
            "registry": RegistryResource(home=str(home), database_url=self.reg.settings.database_url, project=PROJECT),
            "storage": StorageResource(home=str(home), s3=S3Resource()),
        }
        defs = build_definitions(resources)
        only_asset = dg.define_asset_job("freeze_only", selection=dg.AssetSelection.assets(dataset_version).without_checks())
        self.asset_job = dg.Definitions(assets=[dataset_version], jobs=[only_asset], resources=resources,
                                        executor=dg.in_process_executor).resolve_job_def("freeze_only")
        self.checks_job = defs.resolve_job_def("freeze_version_job")
        self.n = 0

    def draft(self, instance: dg.DagsterInstance | None = None) -> str:
        self.n += 1
        tag = f"v{self.n}"
        with self.reg.session() as s:
            create_version(s, get_project(s, PROJECT), tag)
        if instance is not None:
            instance.add_dynamic_partitions(dataset_versions.name, [tag])
        return tag

    def direct(self) -> float:
        tag = self.draft()
        t = time.perf_counter()
        with self.reg.session() as s:
            freeze_version(s, get_project(s, PROJECT), tag, storage=open_storage(self.reg.settings.storage_root))
        return time.perf_counter() - t

    def dagster(self, instance: dg.DagsterInstance, job: dg.JobDefinition | None = None) -> float:
        tag = self.draft(instance)
        t = time.perf_counter()
        result = (job or self.asset_job).execute_in_process(instance=instance, partition_key=tag, run_config=QUIET)
        dt = time.perf_counter() - t
        assert result.success
        return dt


def measure(bench: Bench, instance: dg.DagsterInstance, rounds: int) -> dict[str, list[float]]:
    ephemeral = dg.DagsterInstance.ephemeral()
    for inst in (instance, ephemeral):
        bench.dagster(inst)  # first run of each kind (imports, first connections): not timed
    rows: dict[str, list[float]] = {"direct": [], "dagster": [], "in_memory": [], "with_checks": []}
    for i in range(rounds):
        order = ["direct", "dagster", "in_memory"] if i % 2 == 0 else ["in_memory", "dagster", "direct"]
        for which in order:
            if which == "direct":
                rows["direct"].append(bench.direct())
            else:
                rows[which].append(bench.dagster(instance if which == "dagster" else ephemeral))
        rows["with_checks"].append(bench.dagster(instance, bench.checks_job))
        print("  round {}: {}".format(i + 1, ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rows.items())))
    return rows


def report(config: str, rows: dict[str, list[float]]) -> dict[str, object]:
    med = {k: statistics.median(v) for k, v in rows.items()}
    ratio = med["dagster"] / med["direct"]
    lines = [
        ("freeze_version() directly", "direct", ""),
        ("dataset_version through Dagster", "dagster", f"target <= {TARGET}x: {'ok' if ratio <= TARGET else 'MISSED'}"),
        ("  same, in-memory Dagster instance", "in_memory", "Dagster's execution alone, nothing stored"),
        ("  + its four checks (freeze job)", "with_checks", "checks re-read and re-hash the version"),
    ]
    print(f"\n  {config}: freeze a 5,000-image version     median   x direct")
    for label, key, note in lines:
        print(f"  {label:<40} {med[key]:>6.2f} s   {med[key] / med['direct']:>6.2f}   {note}")
    print()
    return {"rounds": rows, "median_s": med, "ratio": ratio, "ok": ratio <= TARGET}


def run_config(config: str, data: Path, rounds: int, tmp: Path) -> dict[str, object]:
    server = None
    database_url = None
    if config == "postgresql":
        from support import PostgresServer  # noqa: PLC0415 - the tests' throwaway server

        server = PostgresServer().start()
        database_url = server.url(server.create_database())
        os.environ["DSGEN_DAGSTER_PG_URL"] = server.url(server.create_database())
    else:
        os.environ.pop("DSGEN_DAGSTER_PG_URL", None)
    try:
        dagster_home = tmp / config / "dagster_home"
        dagster_home.mkdir(parents=True)
        shutil.copyfile(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(dagster_home)
        bench = Bench(data, tmp / config / "home", database_url)
        with dg.DagsterInstance.get() as instance:
            rows = measure(bench, instance, rounds)
        bench.reg.dispose()
        return report(config, rows)
    finally:
        if server is not None:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", choices=["sqlite", "postgresql"])
    ap.add_argument("--data", type=Path, default=OUT / "small", help="the 5,000-image set (made there if missing)")
    args = ap.parse_args(argv)
    if not (args.data / "annotations" / "instances_default.json").exists():
        datagen.generate_small(args.data, progress=False)
    tmp = Path(tempfile.mkdtemp(prefix="dsgen-bench-dagster-"))
    results = {}
    try:
        for config in [args.only] if args.only else ["sqlite", "postgresql"]:
            print(f"{config}: registry and Dagster storage")
            results[config] = run_config(config, args.data, args.rounds, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_dagster.json").write_text(json.dumps(results, indent=2))
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
