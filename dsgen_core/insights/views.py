"""Saved insight views (seed 001 ``InsightView``): a name, a query, the charts to draw and a
visualization config, kept per project so a subset's dashboard can be shared and re-rendered.

Views are upserted by name; every change is audited (``insight_view.save`` / ``.delete``) and
appended to the change sequence in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.insights.charts import render_charts
from dsgen_core.insights.compute import TOP_N, compute_insights, parse_which
from dsgen_core.query import compile_query
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.schema import InsightView, Project, utcnow

NAME_MAX = 255


@dataclass(frozen=True)
class RenderedView:
    view: dict[str, Any]
    insights: dict[str, Any]
    charts: dict[str, Path]


def view_to_dict(view: InsightView) -> dict[str, Any]:
    return {
        "id": view.id,
        "project_id": view.project_id,
        "name": view.name,
        "query": view.query,
        "charts": list(view.charts or []),
        "visualization": dict(view.visualization or {}),
        "saved_by": view.saved_by,
        "created_at": view.created_at.isoformat() if view.created_at else None,
        "updated_at": view.updated_at.isoformat() if view.updated_at else None,
    }


def _validate(name: str, query: str, charts: list[str] | None, visualization: dict[str, Any] | None, project_id: int) -> None:
    if not name.strip() or len(name) > NAME_MAX:
        raise DsgenError(f"a view name must be 1 to {NAME_MAX} characters, got {name!r}")
    if "/" in name or "\\" in name or any(ord(c) < 32 for c in name):  # it is a URL path segment
        raise DsgenError(f"a view name cannot hold '/', '\\' or control characters, got {name!r}")
    if charts:
        parse_which(charts)
    if visualization is not None:
        if not isinstance(visualization, dict):
            raise DsgenError("the visualization config must be a JSON object")
        try:
            orjson.dumps(visualization)
        except TypeError as exc:
            raise DsgenError(f"the visualization config is not JSON: {exc}") from None
        for key in ("top", "overview_top", "dpi"):
            value = visualization.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 1000):
                raise DsgenError(f"visualization {key!r} must be a whole number from 1 to 1000, got {value!r}")
    # Compiling raises QueryError (a DsgenError) on a bad query, so a broken view is never saved.
    compile_query(query, project_id=project_id)


def save_view(
    session: Session,
    project: Project,
    name: str,
    *,
    query: str = "",
    charts: list[str] | None = None,
    visualization: dict[str, Any] | None = None,
    saved_by: str | None = None,
    actor: str | None = None,
) -> InsightView:
    """Create the view ``name`` or replace its query, charts and visualization config.

    ``charts`` are insight names (empty: all); ``visualization`` is free JSON for front ends, of
    which :func:`render_charts` reads ``top``, ``overview_top``, ``dpi`` and ``title``.
    """
    project_id = project.id
    _validate(name, query, charts, visualization, project_id)
    chart_names = parse_which(charts) if charts else []
    view = session.scalar(select(InsightView).where(InsightView.project_id == project_id, InsightView.name == name))
    created = view is None
    if view is None:
        view = InsightView(project_id=project_id, name=name)
        session.add(view)
    view.query = query
    view.charts = chart_names
    view.visualization = visualization or {}
    view.saved_by = saved_by
    view.updated_at = utcnow()
    session.flush()
    detail = {"name": name, "query": query, "charts": chart_names, "created": created}
    audit(session, "insight_view.save", project_id=project_id, entity_type="insight_view", entity_ids=[view.id], detail=detail, actor=actor or saved_by)
    record_change(session, project_id=project_id, entity="insight_views", op="create" if created else "update", entity_id=view.id)
    return view


def list_views(session: Session, project: Project) -> list[InsightView]:
    return list(session.scalars(select(InsightView).where(InsightView.project_id == project.id).order_by(InsightView.name)))


def get_view(session: Session, project: Project, name: str) -> InsightView:
    view = session.scalar(select(InsightView).where(InsightView.project_id == project.id, InsightView.name == name))
    if view is None:
        known = ", ".join(v.name for v in list_views(session, project)) or "none"
        raise NotFound(f"no insight view named {name!r} (saved views: {known})")
    return view


def delete_view(session: Session, project: Project, name: str, *, actor: str | None = None) -> None:
    project_id = project.id
    view = get_view(session, project, name)
    view_id = view.id
    session.delete(view)
    session.flush()
    audit(session, "insight_view.delete", project_id=project_id, entity_type="insight_view", entity_ids=[view_id], detail={"name": name}, actor=actor)
    record_change(session, project_id=project_id, entity="insight_views", op="delete", entity_id=view_id)


def safe_name(name: str) -> str:
    """A folder name for a project's or view's charts: readable, and distinct for names that
    differ only in characters a file system would not take."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "view"
    return safe if safe == name else f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def render_view(session: Session, project: Project, name: str, out_dir: Path) -> RenderedView:
    """Compute a saved view's insights on the registry as it is now and draw them into ``out_dir``."""
    view = get_view(session, project, name)
    config = dict(view.visualization or {})
    insights = compute_insights(session, project, view.query, view.charts or None, top=int(config.get("top", TOP_N)))
    insights["view"] = view.name
    charts = render_charts(insights, out_dir, config={"title": f"Insight view “{view.name}”", **config})
    return RenderedView(view=view_to_dict(view), insights=insights, charts=charts)
