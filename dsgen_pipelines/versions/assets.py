"""``dataset_version``: one partition per version tag; materializing a partition freezes that version."""

from typing import Any

import dagster as dg

from dsgen_core.loop.policy import cut_next_version
from dsgen_core.versions.lifecycle import VersionSummary, freeze_version, get_version, version_exists, version_summary
from dsgen_pipelines.metadata import md_table
from dsgen_pipelines.partitions import dataset_versions
from dsgen_pipelines.registry.assets import REGISTRY_ANNOTATIONS, REGISTRY_ASSETS, REGISTRY_LABEL_CLASSES
from dsgen_pipelines.resources import TRANSIENT_RETRIES, RegistryResource, StorageResource, run_actor, user_errors


def class_table(classes: dict[str, dict[str, int]], splits: list[str]) -> str:
    """The class distribution per split as a markdown table."""
    rows = sorted(classes.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    return md_table(["class", *splits, "total"], ([k, *(n.get(s, 0) for s in splits), sum(n.values())] for k, n in rows))


def version_metadata(summary: VersionSummary, already_frozen: bool) -> dict[str, Any]:
    splits = summary.splits
    return {
        "content_hash": summary.content_hash,
        "images": sum(splits.values()),
        **{f"images/{name}": n for name, n in splits.items()},
        **{f"annotations/{name}": n for name, n in summary.annotations.items()},
        "class_distribution": dg.MetadataValue.md(class_table(summary.classes, list(splits))),
        "classes": len(summary.classes),
        "query": summary.query or "",
        "split_config": dg.MetadataValue.json(summary.split_config or {}),
        "seed": summary.seed,
        "frozen_at": summary.frozen_at,
        "already_frozen": already_frozen,
    }


class FreezeConfig(dg.Config):
    cut_from_policy: bool = False
    """Make the draft first, with the project policy's query, split config and seed (the next-version sensor)."""


@dg.asset(
    partitions_def=dataset_versions,
    retry_policy=TRANSIENT_RETRIES,
    deps=[REGISTRY_ASSETS, REGISTRY_ANNOTATIONS, REGISTRY_LABEL_CLASSES],
    group_name="versions",
    kinds={"python"},
    description="A frozen dataset version: members split into train/val/test, annotation snapshot, content hash.",
)
def dataset_version(
    context: dg.AssetExecutionContext, config: FreezeConfig, registry: RegistryResource, storage: StorageResource
) -> dg.MaterializeResult:
    tag = context.partition_key
    with user_errors(), registry.session() as s:
        project = registry.get_project(s)
        if config.cut_from_policy and not version_exists(s, project, tag):
            cut_next_version(s, project, tag, actor=run_actor(context))
        result = freeze_version(s, project, tag, storage=storage.open(), actor=run_actor(context))
        summary = version_summary(s, get_version(s, project, tag), counted=result)
    return dg.MaterializeResult(
        metadata=version_metadata(summary, result.already_frozen), data_version=dg.DataVersion(result.content_hash)
    )


freeze_version_job = dg.define_asset_job(
    "freeze_version_job",
    selection=dg.AssetSelection.assets(dataset_version),
    description="Freeze a version (the partition) and run its checks; exports and insights follow by automation.",
)
dataset_version_job = dg.define_asset_job(
    "dataset_version_job",
    # Models (and embeddings made by them) hang below versions too, but run only when asked (other jobs,
    # other partitions).
    selection=dg.AssetSelection.assets(dataset_version).downstream() - dg.AssetSelection.groups("models", "embeddings"),
    description="Freeze a version, check it, export it (COCO, YOLO) and chart it, in one run per partition.",
)
