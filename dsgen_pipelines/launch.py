"""Materialize dataset versions (and models) into the local Dagster instance, in this process, without a daemon.

    python -m dsgen_pipelines.launch v1 [v2 ...] [--train RECIPE] [--embed RECIPE] [--json]

For each tag: add the ``dataset_versions`` partition, then run ``dataset_version_job`` for it
(freeze, checks, COCO and YOLO exports, insights); with ``--train``, then ``train_model_job`` for
its ``<tag>|<recipe>`` partition (train, ONNX export and parity check, evaluation) and the promotion
decision (``production_model``: the project's first model becomes its production model); with ``--embed``,
then that recipe's newest model's backbone becomes the project's embedding versions (object and image level)
and ``embeddings_job`` fills their Chroma collections. The instance is ``$DAGSTER_HOME`` (default
``./.dagster_home``, given the repository's dagster.yaml if it has none), so ``dg dev`` started with
the same DAGSTER_HOME shows the runs and materializations. ``dsgen demo`` calls this.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import dagster as dg

from dsgen_pipelines.definitions import defs
from dsgen_pipelines.partitions import DATASET_VERSIONS, EMBEDDING_VERSIONS, recipes

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"
if TYPE_CHECKING:
    from dsgen_core.registry.db import Registry

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Training logs each epoch (n/N, losses, mAP) at INFO: shown, so a run of minutes is not silent.
TRAINING = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


class RunOutcome(TypedDict):
    run_id: str
    success: bool
    materialized: list[str]
    checks: dict[str, bool]


class LaunchOutcome(TypedDict):
    dagster_home: str
    versions: dict[str, RunOutcome]  # by version tag
    models: dict[str, RunOutcome]  # by model partition key ("v1|demo")
    embeddings: dict[str, RunOutcome]  # by embedding partition key ("objects_visual_demo-m1")


def ensure_dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and REPO_DAGSTER_YAML.exists():
        shutil.copyfile(REPO_DAGSTER_YAML, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _outcome(result: dg.ExecuteInProcessResult) -> RunOutcome:
    return {
        "run_id": result.run_id,
        "success": result.success,
        # e.materialization, not e.asset_key: the same key, typed as always present
        "materialized": sorted(e.materialization.asset_key.to_user_string()
                               for e in result.get_asset_materialization_events()),
        "checks": {e.check_name: e.passed for e in result.get_asset_check_evaluations()},
    }


def registry_from_env() -> tuple["Registry", str]:
    """The registry and project name, read from the environment as the CLI does (outside a run:
    the resources' EnvVars resolve only inside one)."""
    from dsgen_core.config import load_settings
    from dsgen_core.registry.db import Registry
    from dsgen_core.registry.projects import DEFAULT_PROJECT

    return Registry(load_settings()), os.environ.get("DSGEN_PROJECT") or DEFAULT_PROJECT


def model_embedding_partitions(tag: str, recipe: str) -> list[str]:
    """The embedding versions of the model trained for ``tag|recipe`` (made if missing): their partition keys."""
    from dsgen_core.embeddings.sync import model_encoder
    from dsgen_core.embeddings.versions import default_version_name, ensure_embedding_versions
    from dsgen_core.ml.model_versions import latest_model_version
    from dsgen_core.registry.projects import get_project
    from dsgen_core.storage import open_storage

    reg, project_name = registry_from_env()
    try:
        with reg.session() as s:
            project = get_project(s, project_name)
            mv = latest_model_version(s, project, tag, recipe)
            spec = model_encoder(reg, s, mv, open_storage(reg.settings.storage_root)).spec
            made = ensure_embedding_versions(s, project, default_version_name(project, spec), spec, model_version=mv,
                                             actor="dagster:launch")
    finally:
        reg.dispose()
    return [m.collection for m in made]


def materialize_versions(tags: list[str], train: str | None = None, embed: str | None = None) -> LaunchOutcome:
    home = ensure_dagster_home()
    job = defs.resolve_job_def("dataset_version_job")
    out: LaunchOutcome = {"dagster_home": str(home), "versions": {}, "models": {}, "embeddings": {}}
    with dg.DagsterInstance.get() as instance:
        known = set(instance.get_dynamic_partitions(DATASET_VERSIONS))
        instance.add_dynamic_partitions(DATASET_VERSIONS, [t for t in tags if t not in known])
        for tag in tags:
            result = job.execute_in_process(instance=instance, partition_key=tag, run_config=QUIET, raise_on_error=False)
            out["versions"][tag] = _outcome(result)
            if train and result.success:
                key = str(dg.MultiPartitionKey({"dataset_version": tag, "recipe": train}))
                out["models"][key] = _outcome(defs.resolve_job_def("train_model_job").execute_in_process(
                    instance=instance, partition_key=key, run_config=TRAINING, raise_on_error=False))
                if out["models"][key]["success"]:  # what the promotion sensor does when a daemon runs
                    out["models"]["production_model"] = _outcome(defs.resolve_job_def("promotion_job").execute_in_process(
                        instance=instance, run_config=QUIET, raise_on_error=False))
            if embed and result.success and all(r["success"] for r in out["models"].values()):
                keys = model_embedding_partitions(tag, embed)
                known = set(instance.get_dynamic_partitions(EMBEDDING_VERSIONS))
                instance.add_dynamic_partitions(EMBEDDING_VERSIONS, [k for k in keys if k not in known])
                for k in keys:
                    out["embeddings"][k] = _outcome(defs.resolve_job_def("embeddings_job").execute_in_process(
                        instance=instance, partition_key=k, run_config=QUIET, raise_on_error=False))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dsgen_pipelines.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("tags", nargs="+", help="dataset version tags (the version must exist in the registry)")
    parser.add_argument("--train", metavar="RECIPE", help="also train, export and evaluate a model with this recipe")
    parser.add_argument("--embed", metavar="RECIPE",
                        help="embed the project's objects and images with the backbone of the newest model trained "
                             "with this recipe on the version (after --train, if given)")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    args = parser.parse_args(argv)
    if args.train and args.train not in recipes.get_partition_keys():
        parser.error(f"--train: no model partitions for recipe {args.train!r}; detection recipes: "
                     f"{', '.join(recipes.get_partition_keys())}")
    out = materialize_versions(args.tags, train=args.train, embed=args.embed)
    if args.json:
        print(json.dumps(out))
    else:
        for tag, r in out["versions"].items():
            print(f"{tag}: {'succeeded' if r['success'] else 'FAILED'} (run {r['run_id']}): {', '.join(r['materialized'])}")
        for key, r in [*out["models"].items(), *out["embeddings"].items()]:
            print(f"{key}: {'succeeded' if r['success'] else 'FAILED'} (run {r['run_id']}): {', '.join(r['materialized'])}")
        print(f"Dagster instance: {out['dagster_home']}")
    runs = [*out["versions"].values(), *out["models"].values(), *out["embeddings"].values()]
    return 0 if all(r["success"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
