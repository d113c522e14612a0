"""The registry sensor: follows the registry's change sequence with a cursor.

Per tick, in one result:
- a new dataset version (``dsgen version create v3``) becomes a ``dataset_versions`` partition;
- a new embedding version (``dsgen embed create``) becomes an ``embedding_versions`` partition
  (its collection's name);
- a freeze request (``dsgen version freeze v3 --request``), or a freeze done outside Dagster,
  adds the partition and requests its ``freeze_version_job`` run;
- imports into the registry become materializations of the registry table assets, with their
  row counts and the change sequence number.
"""

import dagster as dg

from dsgen_core.registry.changes import changes_since
from dsgen_core.registry.stats import registry_stats
from dsgen_pipelines.partitions import DATASET_VERSIONS, EMBEDDING_VERSIONS, dataset_versions, embedding_versions
from dsgen_pipelines.registry.assets import registry_tables, table_metadata
from dsgen_pipelines.resources import DAGSTER_ACTOR, RegistryResource
from dsgen_pipelines.versions.assets import freeze_version_job

BATCH = 1000  # changes a sensor reads per tick at most
TABLE_ENTITIES = {"assets", "annotations"}


@dg.sensor(
    job=freeze_version_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Follows the registry's change sequence: version partitions, freeze runs, registry table events.",
)
def registry_changes(context: dg.SensorEvaluationContext, registry: RegistryResource) -> dg.SensorResult | dg.SkipReason:
    cursor = int(context.cursor or 0)
    with registry.session() as s:
        project = registry.project_or_skip(s)
        if isinstance(project, dg.SkipReason):
            return project
        changes = changes_since(s, cursor, limit=BATCH, project_id=project.id)
        tables_changed = any(c.entity in TABLE_ENTITIES for c in changes)
        stats = registry_stats(s, project) if tables_changed else None
    if not changes:
        return dg.SkipReason(f"no registry change after #{cursor} in project {registry.project!r}")

    tags: list[str] = []
    runs: list[dg.RunRequest] = []
    for c in changes:
        if c.entity != "dataset_versions" or not (c.detail or {}).get("tag"):
            continue
        assert c.detail is not None  # it has a tag
        tag = c.detail["tag"]
        tags.append(tag)
        frozen_elsewhere = c.op == "frozen" and not str(c.detail.get("actor") or "").startswith(DAGSTER_ACTOR)
        if c.op == "freeze_requested" or frozen_elsewhere:
            runs.append(dg.RunRequest(partition_key=tag, run_key=f"{c.op}:{tag}:{c.seq}", tags={"dsgen/change_seq": str(c.seq)}))

    known = set(context.instance.get_dynamic_partitions(DATASET_VERSIONS))
    new_tags = sorted({t for t in tags if t not in known})
    collections = {str(c.detail["collection"]) for c in changes
                   if c.entity == "embedding_versions" and c.detail and c.detail.get("collection")}
    new_collections = sorted(collections - set(context.instance.get_dynamic_partitions(EMBEDDING_VERSIONS)))
    partition_requests = [dataset_versions.build_add_request(new_tags)] if new_tags else []
    if new_collections:
        partition_requests.append(embedding_versions.build_add_request(new_collections))
    events = []
    if stats is not None:
        meta = table_metadata(stats)
        events = [dg.AssetMaterialization(spec.key, metadata=meta[spec.key.path[-1]]) for spec in registry_tables]
    # A tick that only records events or adds partitions says so, instead of Dagster's "empty result".
    did = [f"registry tables recorded (#{changes[0].seq}..#{changes[-1].seq})"] if events else []
    did += [f"version partition(s) {', '.join(new_tags)} added"] if new_tags else []
    did += [f"embedding partition(s) {', '.join(new_collections)} added"] if new_collections else []
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=partition_requests,
        asset_events=events,
        cursor=str(changes[-1].seq),
        skip_reason=None if runs else "; ".join(did) or f"changes #{changes[0].seq}..#{changes[-1].seq}: nothing to do",
    )
