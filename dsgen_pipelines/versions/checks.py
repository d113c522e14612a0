"""Checks of each frozen version; the blocking ones gate the exports and insights of that version."""

import warnings
from collections.abc import Iterator

import dagster as dg

from dsgen_core.versions.content_hash import verify_content_hash
from dsgen_core.versions.lifecycle import get_version
from dsgen_core.versions.quality import classes_without_train_examples, empty_splits, split_leaks
from dsgen_pipelines.partitions import dataset_versions
from dsgen_pipelines.resources import RegistryResource, StorageResource
from dsgen_pipelines.versions.assets import dataset_version

SHOWN = 20


def _spec(name: str, description: str, *, blocking: bool) -> dg.AssetCheckSpec:
    # Partitioned checks (a preview feature in 1.13) give each version its own check results, so a
    # failed check of v2 gates v2's exports only; the preview warning would repeat in every process.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=dataset_version, description=description, blocking=blocking,
                                 partitions_def=dataset_versions)


@dg.multi_asset_check(
    specs=[
        _spec("content_hash_verifies", "The frozen version still hashes to its recorded content hash.", blocking=True),
        _spec("no_empty_split", "Every split with a ratio > 0 holds at least one image.", blocking=True),
        _spec("no_asset_in_two_splits", "No image (by id or content) and no track is in two splits.", blocking=True),
        _spec("every_class_has_train_examples", "Each class of the version's ontology has train annotations.",
              blocking=False),
    ],
    description="Quality checks of a frozen dataset version.",
)
def dataset_version_checks(
    context: dg.AssetCheckExecutionContext, registry: RegistryResource, storage: StorageResource
) -> Iterator[dg.AssetCheckResult]:
    tag = context.partition_key
    with registry.session() as s:
        v = get_version(s, registry.get_project(s), tag)
        hash_ok = verify_content_hash(s, v, storage.open())
        empty = empty_splits(s, v)
        leaks = split_leaks(s, v)
        untrained = classes_without_train_examples(s, v)
    yield dg.AssetCheckResult(check_name="content_hash_verifies", passed=hash_ok,
                              metadata={"content_hash": v.content_hash or "", "frozen": bool(v.is_frozen)})
    yield dg.AssetCheckResult(check_name="no_empty_split", passed=not empty,
                              metadata={"empty_splits": dg.MetadataValue.json(empty)})
    yield dg.AssetCheckResult(
        check_name="no_asset_in_two_splits", passed=not any(leaks.values()),
        metadata={**{f"{kind}_in_two_splits": len(found) for kind, found in leaks.items()},
                  "examples": dg.MetadataValue.json({kind: found[:SHOWN] for kind, found in leaks.items() if found})},
    )
    yield dg.AssetCheckResult(check_name="every_class_has_train_examples", passed=not untrained,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"classes_without_train_examples": dg.MetadataValue.json(untrained)})
