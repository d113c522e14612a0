"""The registry's tables as assets, the COCO import job that fills them, and thumbnails.

The tables are external assets: whoever writes them (the import job, ``dsgen import coco``, a
notebook) appends to the registry's change sequence, and the registry sensor records a
materialization with their row counts and that sequence number.
"""

from typing import Any

import dagster as dg
from pydantic import Field

from dsgen_core.formats.coco.importer import import_coco, local_sources_dir
from dsgen_core.registry.ingest import OnConflict
from dsgen_core.registry.projects import ensure_project
from dsgen_core.thumbnails import make_thumbnails
from dsgen_pipelines.resources import RegistryResource, StorageResource, run_actor, user_errors

# registry table -> the registry_stats() count of its rows in the project
TABLE_COUNTS = {"assets": "images", "annotations": "objects", "label_classes": "categories", "tracks": "tracks"}
TABLE_DESCRIPTIONS = {
    "assets": "Images (and videos) of the project: file, sha256, size, tags, metadata.",
    "annotations": "Objects and image labels: boxes, polygons, masks, keypoints, attributes, tracks.",
    "label_classes": "The classes of the project's ontology versions.",
    "tracks": "Objects followed across video frames (CVAT track_id).",
}
registry_tables = [
    dg.AssetSpec(["registry", table], description=TABLE_DESCRIPTIONS[table], group_name="registry", kinds={"sql"})
    for table in TABLE_COUNTS
]
REGISTRY_ASSETS, REGISTRY_ANNOTATIONS, REGISTRY_LABEL_CLASSES, _ = (spec.key for spec in registry_tables)


def table_metadata(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Materialization metadata per registry table, from ``registry_stats``."""
    return {
        table: {"dagster/row_count": int(stats[count]), "change_seq": int(stats["change_seq"])}
        for table, count in TABLE_COUNTS.items()
    }


class CocoImportConfig(dg.Config):
    """A CVAT "COCO 1.0" export (or any COCO file) to import into the configured project."""

    annotations: str = Field(description="Path of the COCO JSON (e.g. annotations/instances_default.json).")
    images: str | None = Field(default=None, description="Image folder or ZIP (CVAT's export layout works as is).")
    skip_invalid: bool = Field(default=False, description="Import the valid records and report the rest.")
    create_missing: bool = Field(default=False, description="Results files: create images/classes the project lacks.")
    on_conflict: OnConflict = Field(default="error", description="A record that contradicts the registry: error, "
                                                                 "keep (the registry's value) or replace (with the file's).")


@dg.op(description="Import a COCO export into the registry; the registry sensor then records the tables' new state.")
def import_coco_export(context: dg.OpExecutionContext, config: CocoImportConfig, registry: RegistryResource,
                       storage: StorageResource) -> None:
    store, actor = storage.open(), run_actor(context)
    with user_errors(), registry.registry.session(bulk=True) as s:
        result = import_coco(s, ensure_project(s, registry.project, source="coco", actor=actor), config.annotations,
                             images=config.images, storage=store,
                             sources_dir=local_sources_dir(store, registry.settings.home), actor=actor,
                             skip_invalid=config.skip_invalid, on_conflict=config.on_conflict,
                             create_missing=config.create_missing)
    summary = result.summary()
    context.log.info(f"imported {config.annotations}: {summary}")
    context.add_output_metadata({k: v for k, v in summary.items() if isinstance(v, int | float | str)})


@dg.job(description="Import a CVAT COCO 1.0 export given as run config (ops.import_coco_export.config).")
def import_coco_job() -> None:
    import_coco_export()


class DatamakerImportConfig(dg.Config):
    """Datamaker annotatorData (seed 004): one file or a folder of them."""

    path: str = Field(description="An annotatorData JSON file or a folder of them.")
    images: str | None = Field(default=None, description="The image folder.")
    skip_invalid: bool = Field(default=False, description="Import the valid records and report the rest.")
    on_conflict: OnConflict = Field(default="error", description="error, keep or replace (see the COCO import).")


@dg.op(description="Import Datamaker annotatorData into the registry.")
def import_datamaker_export(context: dg.OpExecutionContext, config: DatamakerImportConfig,
                            registry: RegistryResource, storage: StorageResource) -> None:
    from dsgen_core.formats.datamaker.importer import import_datamaker

    actor = run_actor(context)
    with user_errors(), registry.registry.session(bulk=True) as s:
        result = import_datamaker(s, ensure_project(s, registry.project, source="datamaker", actor=actor),
                                  config.path, images=config.images, storage=storage.open(), actor=actor,
                                  skip_invalid=config.skip_invalid, on_conflict=config.on_conflict)
    summary = result.summary()
    context.log.info(f"imported {config.path}: {summary}")
    context.add_output_metadata({k: v for k, v in summary.items() if isinstance(v, int | float | str)})


@dg.job(description="Import Datamaker annotatorData given as run config (ops.import_datamaker_export.config).")
def import_datamaker_job() -> None:
    import_datamaker_export()


@dg.asset(
    deps=[REGISTRY_ASSETS],
    group_name="registry",
    kinds={"python"},
    automation_condition=dg.AutomationCondition.eager(),
    description="A thumbnail for every image that has none yet (longest side 512 px), in the storage.",
)
def thumbnails(registry: RegistryResource, storage: StorageResource) -> dg.MaterializeResult:
    with registry.session() as s:
        counts = make_thumbnails(s, registry.get_project(s), storage=storage.open())
    return dg.MaterializeResult(metadata=counts.to_dict())
