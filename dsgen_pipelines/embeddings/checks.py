"""Registry and Chroma agree: the count of vectors is the count of things that should have one."""

import warnings

import dagster as dg

from dsgen_core.embeddings import sync, versions
from dsgen_pipelines.embeddings.assets import embeddings
from dsgen_pipelines.partitions import embedding_versions
from dsgen_pipelines.resources import ChromaResource, RegistryResource

with warnings.catch_warnings():  # partitioned checks are a preview feature in 1.13; see versions/checks.py
    warnings.simplefilter("ignore", dg.PreviewWarning)
    _SPEC = dg.AssetCheckSpec("registry_and_chroma_agree", asset=embeddings, partitions_def=embedding_versions,
                              description="Chroma holds one vector per registry object (image) once the outbox "
                                          "is drained; fails when they drift (run `dsgen embed reconcile`).")


@dg.multi_asset_check(specs=[_SPEC], description="Registry and Chroma counts of an embedding version.")
def embeddings_in_step(context: dg.AssetCheckExecutionContext, registry: RegistryResource,
                       chroma: ChromaResource) -> dg.AssetCheckResult:
    store = chroma.open(registry.settings)
    with registry.session() as s:
        project = registry.get_project(s)
        ev = versions.by_collection(s, project, context.partition_key)
        st = sync.version_status(s, project, ev, store)
    in_flight = st.pending + st.failed
    chroma_count = st.chroma_count or 0
    # Rows still queued explain a difference of at most their number; anything beyond is drift.
    passed = st.chroma_error is None and abs(st.registry_count - chroma_count) <= in_flight
    return dg.AssetCheckResult(check_name="registry_and_chroma_agree", passed=passed, metadata={
        "registry_count": st.registry_count, "chroma_count": chroma_count, "pending": st.pending,
        "failed": st.failed, "chroma_error": st.chroma_error or ""})
