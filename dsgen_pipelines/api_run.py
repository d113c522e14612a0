"""One job run for the REST API, in a process of its own: an import or a training must not hold the
API server's interpreter, and the run's id is chosen by the API so it can answer for it at once.

    python -m dsgen_pipelines.api_run JOB --run-id ID [--partition KEY] [--config JSON] [--asset KEY ...] [--tag K=V ...]

The registry, storage and project come from the environment (DSGEN_HOME, DSGEN_DATABASE_URL,
DSGEN_PROJECT) as for every run; the Dagster instance is $DAGSTER_HOME's, so the run, its events and
its materializations are in the Dagster UI with the others.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import dagster as dg

from dsgen_pipelines.definitions import defs
from dsgen_pipelines.launch import ensure_dagster_home
from dsgen_pipelines.partitions import DATASET_VERSIONS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dsgen_pipelines.api_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("job")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--partition")
    parser.add_argument("--config", default="{}", help="run config as JSON")
    parser.add_argument("--asset", action="append", default=[], help="materialize only these assets of the job")
    parser.add_argument("--tag", action="append", default=[], help="a run tag, KEY=VALUE")
    parser.add_argument("--remove-on-failure", type=Path, help="a folder of the run's inputs, deleted if it fails")
    args = parser.parse_args(argv)
    ensure_dagster_home()
    job = defs.resolve_job_def(args.job)
    tags = dict(t.split("=", 1) for t in args.tag)
    with dg.DagsterInstance.get() as instance:
        if args.partition:  # a version's partition ("v1", or "v1|recipe" for a model) exists once it is asked for
            tag = args.partition.split("|")[0]
            if not instance.has_dynamic_partition(DATASET_VERSIONS, tag):
                instance.add_dynamic_partitions(DATASET_VERSIONS, [tag])
        result = job.execute_in_process(
            run_config=json.loads(args.config), instance=instance, partition_key=args.partition, run_id=args.run_id,
            tags=tags, asset_selection=[dg.AssetKey.from_user_string(a) for a in args.asset] or None,
            raise_on_error=False)
    if not result.success and args.remove_on_failure is not None:
        shutil.rmtree(args.remove_on_failure, ignore_errors=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
