"""Insights of each frozen version: statistics and PNG charts, embedded in the materialization's markdown."""

from pathlib import Path

import dagster as dg

from dsgen_core.insights.charts import render_charts
from dsgen_core.insights.compute import compute_insights
from dsgen_pipelines.automation import after_checked_upstream
from dsgen_pipelines.metadata import png_markdown
from dsgen_pipelines.partitions import dataset_versions
from dsgen_pipelines.resources import RegistryResource
from dsgen_pipelines.versions.assets import dataset_version

# Embedded in the metadata (the overview holds every insight's main panel); the other PNGs are
# linked by path, to keep each materialization event a few hundred KB.
EMBEDDED = ("overview", "class_distribution")


def charts_markdown(charts: dict[str, Path]) -> str:
    """The embedded PNGs inline as data: URIs (Dagster's metadata has no image type), then the others' paths."""
    parts = [png_markdown(name.replace("_", " "), charts[name].read_bytes()) for name in EMBEDDED if name in charts]
    others = [f"- {name.replace('_', ' ')}: `{path}`" for name, path in sorted(charts.items()) if name not in EMBEDDED]
    if others:
        parts.append("### other charts\n\n" + "\n".join(others))
    return "\n\n".join(parts)


@dg.asset(
    partitions_def=dataset_versions,
    deps=[dataset_version],
    automation_condition=after_checked_upstream,
    group_name="insights",
    kinds={"python"},
    description="Class distribution, tags, resolutions, box sizes, attributes... of the version's images, with charts.",
)
def insights(context: dg.AssetExecutionContext, registry: RegistryResource) -> dg.MaterializeResult:
    tag = context.partition_key
    with registry.session() as s:
        data = compute_insights(s, registry.get_project(s), query=f'version:"{tag}"')
    out_dir = registry.settings.insights_dir(registry.project, tag)
    charts = render_charts(data, out_dir)
    classes = data["class_distribution"]["classes"]
    return dg.MaterializeResult(metadata={
        "images": data["images"],
        "objects": data["objects"],
        "classes": len(classes),
        "objects_per_class": dg.MetadataValue.json({c["key"]: c["objects"] for c in classes}),
        "charts": dg.MetadataValue.md(charts_markdown(charts)),
        "chart_dir": dg.MetadataValue.path(str(out_dir)),
    })
