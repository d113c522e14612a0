"""Saved insight views: upsert by name, list, get, delete, audit rows, rendering."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.insights.views import delete_view, get_view, list_views, render_view, safe_name, save_view, view_to_dict
from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import AuditLog, ChangeEvent, InsightView, Project

from .conftest import Sample


def _audit(registry: Registry, project_id: int) -> list[tuple[str, list, dict]]:
    with registry.session() as s:
        rows = s.scalars(
            select(AuditLog).where(AuditLog.project_id == project_id, AuditLog.action.like("insight_view.%")).order_by(AuditLog.id)
        )
        return [(r.action, r.entity_ids, r.detail) for r in rows]


def test_crud_and_audit(registry: Registry, sample: Sample) -> None:
    pid = sample.project_id
    with registry.session() as s:
        view = save_view(s, s.get(Project, pid), "night", query="tag:night", charts=["sources", "class_distribution"], visualization={"top": 10}, saved_by="ana")
        first_id = view.id
        first_updated = view.updated_at
    with registry.session() as s:
        got = view_to_dict(get_view(s, s.get(Project, pid), "night"))
    assert got["query"] == "tag:night"
    assert got["charts"] == ["class_distribution", "sources"]  # canonical order
    assert got["visualization"] == {"top": 10} and got["saved_by"] == "ana"

    with registry.session() as s:
        again = save_view(s, s.get(Project, pid), "night", query="tag:night width>1000", saved_by="bo")
        assert again.id == first_id  # upsert by name, not a second row
        assert again.updated_at >= first_updated
        save_view(s, s.get(Project, pid), "all")
        save_view(s, s.get(Project, sample.other_project_id), "night")  # names are per project
    with registry.session() as s:
        views = list_views(s, s.get(Project, pid))
        assert [v.name for v in views] == ["all", "night"]
        night = view_to_dict(views[1])
        assert (night["query"], night["charts"], night["visualization"], night["saved_by"]) == ("tag:night width>1000", [], {}, "bo")
        assert len(s.scalars(select(InsightView)).all()) == 3

    with registry.session() as s:
        delete_view(s, s.get(Project, pid), "night", actor="cy")
    with registry.session() as s:
        assert [v.name for v in list_views(s, s.get(Project, pid))] == ["all"]
        with pytest.raises(NotFound, match="no insight view named 'night'.*all"):
            get_view(s, s.get(Project, pid), "night")
        with pytest.raises(NotFound):
            delete_view(s, s.get(Project, pid), "night")
        ops = [(e.entity, e.op) for e in s.scalars(select(ChangeEvent).where(ChangeEvent.entity == "insight_views", ChangeEvent.project_id == pid))]
        assert ops == [("insight_views", "create"), ("insight_views", "update"), ("insight_views", "create"), ("insight_views", "delete")]

    audit = _audit(registry, pid)
    assert [a[0] for a in audit] == ["insight_view.save", "insight_view.save", "insight_view.save", "insight_view.delete"]
    assert audit[0][1] == [first_id]
    assert audit[0][2] == {"name": "night", "query": "tag:night", "charts": ["class_distribution", "sources"], "created": True}
    assert audit[1][2]["created"] is False and audit[3][2] == {"name": "night"}


def test_invalid_views_are_refused(registry: Registry, sample: Sample) -> None:
    pid = sample.project_id
    with registry.session() as s:
        with pytest.raises(DsgenError, match="unknown insight"):
            save_view(s, s.get(Project, pid), "x", charts=["pie"])
        with pytest.raises(DsgenError):
            save_view(s, s.get(Project, pid), "x", query="width>>3")
        with pytest.raises(DsgenError, match="1 to 255"):
            save_view(s, s.get(Project, pid), "  ")
        with pytest.raises(DsgenError, match="'top'"):
            save_view(s, s.get(Project, pid), "x", visualization={"top": "many"})
        with pytest.raises(DsgenError, match="JSON object"):
            save_view(s, s.get(Project, pid), "x", visualization=[1, 2])  # type: ignore[arg-type]
    with registry.session() as s:
        assert list_views(s, s.get(Project, pid)) == []
    assert _audit(registry, pid) == []


def test_render_view(registry: Registry, sample: Sample, tmp_path: Path) -> None:
    pid = sample.project_id
    with registry.session() as s:
        save_view(s, s.get(Project, pid), "day boxes", query="tag:day", charts=["bbox_size", "class_distribution"], visualization={"title": "Day", "dpi": 50})
    with registry.session() as s:
        rendered = render_view(s, s.get(Project, pid), "day boxes", tmp_path)
    assert rendered.view["name"] == "day boxes"
    assert (rendered.insights["images"], rendered.insights["objects"], rendered.insights["view"]) == (2, 4, "day boxes")
    assert "tag_counts" not in rendered.insights
    assert rendered.insights["bbox_size"]["coco"] == {"small": 1, "medium": 2, "large": 0}
    assert set(rendered.charts) == {"bbox_size", "class_distribution", "overview"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" and p.parent == tmp_path for p in rendered.charts.values())


def test_safe_name() -> None:
    assert safe_name("night_v2") == "night_v2"
    assert safe_name("day boxes").startswith("day_boxes-") and safe_name("day boxes") != safe_name("day/boxes")
    assert safe_name("..").startswith("view-")
