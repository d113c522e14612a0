"""Embeddings in Chroma: one partition per embedding version and level (the collection's name).

A materialization is a delta: it drains the version's outbox (what changed since the last sync).
A new partition starts with every object of the project queued, so its first materialization (or
a backfill) embeds everything for the new encoder. Model-based encoders have lineage to
``model_version``; the re-embedding sensor belongs to the continuous loop.
"""

import dagster as dg

from dsgen_core.embeddings import sync, versions
from dsgen_pipelines.metadata import png_markdown
from dsgen_pipelines.ml.assets import model_version
from dsgen_pipelines.partitions import embedding_versions
from dsgen_pipelines.registry.assets import registry_tables
from dsgen_pipelines.resources import (
    TRANSIENT_RETRIES,
    ChromaResource,
    RegistryResource,
    StorageResource,
    run_actor,
    user_errors,
)


@dg.asset(
    partitions_def=embedding_versions,
    # Every model version may give an encoder; which one a partition uses is its registry row.
    deps=[*registry_tables, dg.AssetDep(model_version, partition_mapping=dg.AllPartitionMapping())],
    retry_policy=TRANSIENT_RETRIES,
    group_name="embeddings",
    kinds={"chromadb"},
    description="Visual embeddings of the project's objects (or images) in a Chroma collection, kept in step "
                "with the registry through the outbox.",
)
def embeddings(context: dg.AssetExecutionContext, registry: RegistryResource, storage: StorageResource,
               chroma: ChromaResource) -> dg.MaterializeResult:
    with registry.session() as s:
        project = registry.get_project(s)
        ev = versions.by_collection(s, project, context.partition_key)
        vid, lineage = ev.id, versions.model_weights(s, ev)
        model = lineage.human_id if lineage is not None else ""
    store = chroma.open(registry.settings)
    with user_errors():
        result = sync.sync_version(registry.registry, registry.project, vid, store=store,
                                   embedder=sync.encoder_factory(registry.registry, vid, storage.open()),
                                   actor=run_actor(context))
    context.log.info(f"{context.partition_key}: {result.upserted} embedded, {result.deleted} removed, "
                     f"{result.failed} failed, {result.pending} pending in {result.seconds} s")
    with registry.session() as s:
        row = s.get(versions.EmbeddingVersion, vid)
        assert row is not None
        status = sync.version_status(s, registry.get_project(s), row, store)
        spec, fingerprint = versions.spec_of(row), row.fingerprint or ""
        png = sync.collection_map(store, row)
    return dg.MaterializeResult(metadata={
        "embedding_version": status.name, "level": status.level, "encoder": f"{spec.encoder}: {spec.model_name}",
        "model_version": model, "dimension": status.dimension, "fingerprint": fingerprint,
        "embedded": result.upserted, "removed": result.deleted, "failed_now": result.failed,
        "pending": status.pending, "failed": status.failed, "synced": status.synced,
        "sync_lag_s": status.lag_s if status.lag_s is not None else 0.0,
        "registry_count": status.registry_count, "chroma_count": status.chroma_count or 0,
        "seconds": result.seconds,
        "map": dg.MetadataValue.md(png_markdown("2-D map (PCA) by class", png) if png else "no vectors yet"),
    })


embeddings_job = dg.define_asset_job("embeddings_job", selection=[embeddings], partitions_def=embedding_versions,
                                     description="Sync one embedding version: drain its outbox into Chroma.")
