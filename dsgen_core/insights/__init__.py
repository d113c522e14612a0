"""Insights: SQL-aggregated statistics of a project or query subset, PNG charts, saved views.

- :func:`dsgen_core.insights.compute.compute_insights` — the numbers, as a JSON-able dict.
- :func:`dsgen_core.insights.charts.render_charts` — one PNG per insight plus an overview.
- :mod:`dsgen_core.insights.views` — saved InsightViews (query + charts + visualization config).

Importing this package imports neither matplotlib nor the query compiler; the submodules do.
"""
