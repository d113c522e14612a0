"""Checks of model partitions: the ONNX artifact must detect what the PyTorch weights detect
(blocking: a failed parity leaves the model unevaluated), and a child model should not be worse
than its parent on the same test split (a warning: forgetting is worth seeing, not stopping)."""

import warnings
from collections.abc import Callable

import dagster as dg

from dsgen_core.evaluation.model_eval import own_test_evaluation, worse_than_parent
from dsgen_core.ml import model_versions as mvs
from dsgen_core.ml.onnx_artifacts import onnx_parity
from dsgen_pipelines.ml.assets import evaluation, onnx_artifact, partition_model_version
from dsgen_pipelines.partitions import model_partitions
from dsgen_pipelines.resources import RegistryResource, StorageResource

PARITY_IMAGES = 8


def _partitioned(fn: Callable[[], dg.AssetCheckSpec]) -> dg.AssetCheckSpec:
    # Partitioned checks are a preview feature in 1.13; each model partition gets its own results.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return fn()


onnx_check_spec = _partitioned(lambda: dg.AssetCheckSpec(
    "onnx_matches_pytorch", asset=onnx_artifact, blocking=True, partitions_def=model_partitions,
    description="The same images through PyTorch and ONNX Runtime: boxes within 1 px, scores within 1e-3 after NMS."))
parent_check_spec = _partitioned(lambda: dg.AssetCheckSpec(
    "not_worse_than_parent", asset=evaluation, blocking=False, partitions_def=model_partitions,
    description="An incrementally trained model keeps its parent's mAP on the same test split (overall and per old class)."))


@dg.multi_asset_check(specs=[onnx_check_spec], description="ONNX export parity with the PyTorch weights.")
def onnx_parity_check(context: dg.AssetCheckExecutionContext, registry: RegistryResource,
                      storage: StorageResource) -> dg.AssetCheckResult:
    human_id = partition_model_version(registry, context)
    with registry.session() as s:
        report = onnx_parity(s, registry.get_project(s), human_id, storage=storage.open(), images=PARITY_IMAGES)
    return dg.AssetCheckResult(
        check_name="onnx_matches_pytorch", passed=report.ok,
        metadata={"images": report.images, "detections": report.detections,
                  "max_box_diff_px": float(report.max_box_diff_px), "max_score_diff": float(report.max_score_diff),
                  "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in report.problems[:20]) or "none")},
    )


@dg.multi_asset_check(specs=[parent_check_spec], description="Child model against its parent.")
def parent_regression_check(context: dg.AssetCheckExecutionContext, registry: RegistryResource) -> dg.AssetCheckResult:
    human_id = partition_model_version(registry, context)
    with registry.session() as s:
        mv = mvs.get_model_version(s, registry.get_project(s), human_id)
        row = own_test_evaluation(s, mv)
        if row is None:
            return dg.AssetCheckResult(check_name="not_worse_than_parent", passed=False,
                                       severity=dg.AssetCheckSeverity.WARN,
                                       metadata={"reason": f"{human_id} has no evaluation yet"})
        parent = (row.extra or {}).get("parent")
        from_scratch = mv.parent_model_version_id is None
        lost = worse_than_parent(row, parent)
    if from_scratch:
        return dg.AssetCheckResult(check_name="not_worse_than_parent", passed=True,
                                   metadata={"model_version": human_id, "parent": "none (trained from scratch)"})
    if not parent:
        return dg.AssetCheckResult(check_name="not_worse_than_parent", passed=False,
                                   severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"reason": f"{human_id}'s evaluation has no parent numbers; evaluate it again"})
    return dg.AssetCheckResult(
        check_name="not_worse_than_parent", passed=not lost, severity=dg.AssetCheckSeverity.WARN,
        metadata={"model_version": human_id, "parent": parent["model_version"],
                  "map50": float(row.map50), "parent_map50": float(parent["map50"]),
                  "regressions": dg.MetadataValue.md("\n".join(f"- {x}" for x in lost) or "none")},
    )
