"""COCO and YOLO exports of each frozen version, under ``$DSGEN_HOME/exports/<project>/<tag>/<format>``."""

from collections.abc import Callable
from typing import Any

import dagster as dg

from dsgen_core.formats.version_export import ExportResult, export_version_coco, export_version_yolo
from dsgen_pipelines.automation import after_checked_upstream
from dsgen_pipelines.partitions import dataset_versions
from dsgen_pipelines.resources import RegistryResource, StorageResource
from dsgen_pipelines.versions.assets import dataset_version

EXPORTERS: dict[str, tuple[Callable[..., ExportResult], str]] = {
    "coco": (export_version_coco, "COCO: annotations/instances_<split>.json and images/<split>/."),
    "yolo": (export_version_yolo, "Ultralytics YOLO (detect): data.yaml, images/<split>/, labels/<split>/."),
}


def export_metadata(result: ExportResult) -> dict[str, Any]:
    return {
        "path": dg.MetadataValue.path(str(result.out_dir)),
        "images": sum(result.files.values()),
        **{f"images/{split}": n for split, n in result.files.items()},
        "annotations": sum(result.annotations.values()),
        "skipped": dg.MetadataValue.json(result.skipped),
        "seconds": round(result.seconds, 3),
    }


def build_export(fmt: str) -> dg.AssetsDefinition:
    exporter, description = EXPORTERS[fmt]

    @dg.asset(
        name=f"{fmt}_export",
        partitions_def=dataset_versions,
        deps=[dataset_version],
        automation_condition=after_checked_upstream,
        group_name="exports",
        kinds={fmt},
        description=description,
    )
    def _export(context: dg.AssetExecutionContext, registry: RegistryResource, storage: StorageResource) -> dg.MaterializeResult:
        tag = context.partition_key
        out_dir = registry.settings.export_dir(registry.project, tag, fmt)
        with registry.session() as s:
            result = exporter(s, registry.get_project(s), tag, out_dir, storage=storage.open())
        return dg.MaterializeResult(metadata=export_metadata(result))

    return _export


coco_export = build_export("coco")
yolo_export = build_export("yolo")
