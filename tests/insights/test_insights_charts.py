"""The charts are real PNG files of the expected size, for full, filtered and empty data."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from dsgen_core.insights.charts import DPI, render_charts
from dsgen_core.insights.compute import INSIGHTS, compute_insights
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import ensure_project
from dsgen_core.registry.schema import Project

from .conftest import Sample

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _assert_png(path: Path, min_width: int = 600, min_height: int = 250, min_bytes: int = 10_000) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > min_bytes, f"{path} is suspiciously small ({len(data)} bytes)"
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode in ("RGB", "RGBA")
        assert img.width >= min_width and img.height >= min_height, (path, img.size)
        return img.size


@sqlite_only
def test_every_insight_has_a_chart_and_an_overview(registry: Registry, sample: Sample, tmp_path: Path) -> None:
    with registry.session() as s:
        insights = compute_insights(s, s.get(Project, sample.project_id))
    paths = render_charts(insights, tmp_path / "charts")
    assert set(paths) == {*INSIGHTS, "overview"}
    for name, path in paths.items():
        assert path == tmp_path / "charts" / f"{name}.png"
        _assert_png(path)
    # The overview is a 3x3 grid of 6.4x5.2-inch panels.
    width, height = _assert_png(paths["overview"])
    assert (width, height) == (round(3 * 6.4 * DPI), round((3 * 5.2 + 0.5) * DPI))


@sqlite_only
def test_selected_insights_config_and_empty_project(registry: Registry, sample: Sample, tmp_path: Path) -> None:
    with registry.session() as s:
        some = compute_insights(s, s.get(Project, sample.project_id), "tag:night", ["class_distribution", "confidence"])
        empty_id = ensure_project(s, "empty").id
        empty = compute_insights(s, s.get(Project, empty_id))
    paths = render_charts(some, tmp_path / "some", config={"dpi": 60, "top": 5, "title": "Night"})
    assert set(paths) == {"class_distribution", "confidence", "overview"}
    small = _assert_png(paths["confidence"], min_width=300, min_height=150, min_bytes=3_000)
    assert small == (round(9 * 60), round(4.8 * 60))
    # Nothing to draw is drawn as "no data", never an exception or a missing file.
    empty_paths = render_charts(empty, tmp_path / "empty")
    assert set(empty_paths) == {*INSIGHTS, "overview"}
    for path in empty_paths.values():
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert render_charts({"images": 0, "objects": 0}, tmp_path / "none") == {}


def test_long_lists_are_cut_to_top_n_with_others(tmp_path: Path) -> None:
    classes = [{"key": f"class-{i:03d}-with-a-rather-long-name", "name": None, "color": "not-a-colour", "objects": 1000 - i, "images": 10} for i in range(120)]
    insights = {
        "query": "",
        "images": 10,
        "objects": sum(c["objects"] for c in classes),
        "class_distribution": {"images": 10, "objects": 0, "num_classes": len(classes), "classes": classes},
        "objects_per_image": {"images": 10, "objects": 5000, "images_without_objects": 0, "mean": 500.0, "median": 450.0, "max": 2500, "histogram": [[k, 1] for k in (1, 3, 9, 12, 40, 450, 900, 2500)]},
    }
    paths = render_charts(insights, tmp_path)
    _assert_png(paths["class_distribution"])
    _assert_png(paths["objects_per_image"])


def test_top_items_and_count_bins() -> None:
    from dsgen_core.insights.charts import _count_bins, _top_items

    items = [(f"c{i}", 100 - i) for i in range(40)]
    top = _top_items(items, 30)
    assert len(top) == 30 and top[0] == ("c0", 100) and top[28] == ("c28", 72)
    assert top[-1] == ("others (11)", sum(100 - i for i in range(29, 40)))
    assert _top_items(items[:5], 30) == items[:5]

    assert _count_bins({0: 2, 3: 1}, max_bars=12) == (["0", "1", "2", "3"], [2, 0, 0, 1])
    labels, values = _count_bins({0: 1, 5: 2, 12: 3, 40: 4, 2500: 5}, max_bars=16)
    assert labels == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10–14", "15–19", "20–29", "30–49", "50–74", "≥75"]
    assert values == [1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0, 0, 4, 0, 5]
