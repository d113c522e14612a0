"""Exact numbers of every insight on the hand-made project of conftest.py, on both backends."""

from __future__ import annotations

import orjson
import pytest

from dsgen_core.errors import DsgenError
from dsgen_core.insights.compute import INSIGHTS, compute_insights, parse_which
from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import Project

from .conftest import Sample


def _compute(registry: Registry, sample: Sample, query: str = "", which: list[str] | None = None) -> dict:
    with registry.session() as s:
        return compute_insights(s, s.get(Project, sample.project_id), query, which)


def _nonzero(hist: dict) -> dict[str, int]:
    return {label: n for label, n in zip(hist["labels"], hist["counts"]) if n}


def test_whole_project(registry: Registry, sample: Sample) -> None:
    out = _compute(registry, sample)
    assert set(INSIGHTS) <= set(out)
    assert (out["images"], out["objects"], out["query"]) == (5, 7, "")
    # Everything is JSON-able as it is (the CLI and Dagster metadata print it).
    assert orjson.loads(orjson.dumps(out)) == out

    cd = out["class_distribution"]
    assert [(c["key"], c["objects"], c["images"]) for c in cd["classes"]] == [
        ("car", 3, 2),
        ("person", 2, 2),
        ("(unlabeled)", 1, 1),
        ("dog", 1, 1),
    ]
    assert cd["classes"][0]["name"] == "Car" and cd["classes"][0]["color"] == "#d62728"
    assert (cd["num_classes"], cd["objects"], cd["images"]) == (4, 7, 5)

    tags = out["tag_counts"]
    assert tags["tags"] == {"day": 2, "city": 1, "night": 1}
    assert (tags["distinct"], tags["assignments"], tags["tagged_images"], tags["untagged_images"]) == (3, 4, 3, 2)
    assert tags["object_tags"] == {"hard": 1} and tags["object_tag_assignments"] == 1

    meta = out["metadata_values"]["keys"]
    assert list(meta) == ["weather", "camera", "iso"]  # most images first
    assert meta["weather"] == {"images": 3, "distinct": 2, "min": None, "max": None, "values": {"sunny": 2, "rain": 1}}
    assert meta["camera"]["values"] == {"cam1": 2}
    assert (meta["iso"]["min"], meta["iso"]["max"], meta["iso"]["values"]) == (100.0, 400.0, {"100": 1, "400": 1})

    res = out["resolution"]
    assert res["top_sizes"] == [
        {"width": 1920, "height": 1080, "images": 2},
        {"width": 640, "height": 480, "images": 1},
        {"width": 100, "height": 100, "images": 1},
    ]
    assert (res["distinct_sizes"], res["unknown_size"], res["images"]) == (3, 1, 5)
    assert _nonzero(res["width"]) == {"<320": 1, "640–800": 1, "1920–2560": 2}
    assert _nonzero(res["height"]) == {"<320": 1, "480–640": 1, "1024–1280": 2}
    assert res["width_stats"] == {"min": 100.0, "max": 1920.0, "mean": 1145.0}

    size = out["bbox_size"]
    assert (size["boxes"], size["no_box"], size["degenerate"], size["unknown_image_size"]) == (5, 1, 1, 0)
    assert _nonzero(size["sqrt_area"]) == {"8–16": 1, "32–64": 1, "64–96": 2, "256–512": 1}
    assert size["coco"] == {"small": 1, "medium": 3, "large": 1}
    assert size["coco_by_class"] == {
        "car": {"small": 1, "medium": 1, "large": 0},
        "person": {"small": 0, "medium": 1, "large": 1},
        "dog": {"small": 0, "medium": 1, "large": 0},
    }
    # sqrt(box/image area): 0.0069, 0.049, 0.048, 0.196 on 1920x1080; 0.354 for the dog on 100x100.
    assert _nonzero(size["relative"]) == {"<0.01": 1, "0.02–0.05": 2, "0.1–0.2": 1, "0.3–0.5": 1}

    aspect = out["bbox_aspect"]
    assert aspect["boxes"] == 5
    # w/h = 1 (car), 2 (car, dog), 1/3 and 1/2 (persons); bins are half octaves.
    assert _nonzero(aspect["ratio"]) == {"0.25–0.35": 1, "0.5–0.71": 1, "1–1.41": 1, "2–2.83": 2}

    opi = out["objects_per_image"]
    assert opi["histogram"] == [[0, 1], [1, 2], [2, 1], [3, 1]]
    assert (opi["images"], opi["objects"], opi["images_without_objects"], opi["max"]) == (5, 7, 1, 3)
    assert opi["mean"] == pytest.approx(1.4) and opi["median"] == 1

    src = out["sources"]
    assert (src["human"], src["model"]) == (5, 2)
    assert src["by_class"] == {
        "car": {"human": 2, "model": 1},
        "person": {"human": 1, "model": 1},
        "(unlabeled)": {"human": 1, "model": 0},
        "dog": {"human": 1, "model": 0},
    }

    conf = out["confidence"]
    assert (conf["model_objects"], conf["without_confidence"]) == (2, 0)
    assert conf["mean"] == pytest.approx(0.685)
    assert _nonzero(conf["histogram"]) == {"0.4–0.5": 1, "≥0.9": 1}
    assert conf["mean_by_class"] == pytest.approx({"car": 0.95, "person": 0.42})


def test_attributes(registry: Registry, sample: Sample) -> None:
    attrs = _compute(registry, sample, which=["attributes"])["attributes"]
    keys = attrs["keys"]
    # Most objects first, then fewer values; track_id is tracking bookkeeping, not an attribute.
    assert list(keys) == ["occluded", "rotation", "color", "truncation"]
    assert keys["occluded"] == {
        "objects": 5, "types": {"boolean": 5}, "distinct": 2, "categorical": True,
        "min": None, "max": None, "mean": None, "values": {"false": 3, "true": 2},
    }
    assert keys["color"]["values"] == {"blue": 1, "red": 1}
    assert keys["truncation"]["values"] == {"2": 1} and keys["truncation"]["types"] == {"integer": 1}
    rotation = keys["rotation"]
    assert (rotation["categorical"], rotation["objects"], rotation["types"]) == (False, 2, {"real": 2})
    assert (rotation["min"], rotation["max"], rotation["mean"]) == (15.5, 90.0, pytest.approx(52.75))
    assert "values" not in rotation and "rotation" not in attrs["by_class"]

    occluded = attrs["by_class"]["occluded"]
    assert occluded == {"classes": ["car", "person", "dog"], "values": ["false", "true"], "counts": [[1, 1], [1, 1], [1, 0]]}
    assert attrs["by_class"]["color"] == {"classes": ["car"], "values": ["blue", "red"], "counts": [[1, 1]]}


def test_query_restricts_images_and_their_objects(registry: Registry, sample: Sample) -> None:
    out = _compute(registry, sample, "tag:day")
    assert (out["images"], out["objects"], out["query"]) == (2, 4, "tag:day")
    assert [(c["key"], c["objects"], c["images"]) for c in out["class_distribution"]["classes"]] == [
        ("car", 2, 1),
        ("(unlabeled)", 1, 1),
        ("person", 1, 1),
    ]
    assert out["tag_counts"]["tags"] == {"day": 2, "city": 1}
    assert out["metadata_values"]["keys"]["weather"]["values"] == {"sunny": 2}
    assert out["resolution"]["top_sizes"] == [{"width": 1920, "height": 1080, "images": 1}, {"width": 640, "height": 480, "images": 1}]
    assert out["objects_per_image"]["histogram"] == [[1, 1], [3, 1]]
    assert out["bbox_size"]["coco"] == {"small": 1, "medium": 2, "large": 0}
    assert (out["sources"]["human"], out["sources"]["model"]) == (2, 2)
    assert out["attributes"]["keys"]["occluded"]["values"] == {"false": 2, "true": 1}

    # A small subset (below a fifth of the project) takes the index-lookup plan: same answers.
    small = _compute(registry, sample, "category:dog")
    assert (small["images"], small["objects"]) == (1, 1)
    assert [(c["key"], c["objects"]) for c in small["class_distribution"]["classes"]] == [("dog", 1)]
    assert small["bbox_aspect"]["boxes"] == 1 and small["attributes"]["keys"]["truncation"]["values"] == {"2": 1}

    empty = _compute(registry, sample, "tag:nothing-has-this")
    assert (empty["images"], empty["objects"]) == (0, 0)
    assert empty["class_distribution"]["classes"] == [] and empty["objects_per_image"]["histogram"] == []
    assert empty["attributes"] == {"keys": {}, "by_class": {}} and empty["confidence"]["mean"] is None


def test_which_and_errors(registry: Registry, sample: Sample) -> None:
    out = _compute(registry, sample, which=["tag_counts"])
    assert set(out) == {"project_id", "query", "images", "objects", "tag_counts"}
    assert out["objects"] == 7
    assert parse_which("sources, tag_counts") == ["tag_counts", "sources"]
    assert parse_which("") == list(INSIGHTS)
    with pytest.raises(DsgenError, match="unknown insight"):
        _compute(registry, sample, which=["nope"])
    with pytest.raises(DsgenError):
        _compute(registry, sample, "width>>3")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_uncommitted_changes_are_seen(registry: Registry, sample: Sample) -> None:
    """The SQLite attribute stream reads through a raw cursor: it must still see the session's own writes."""
    from dsgen_core.registry.schema import Annotation

    with registry.session() as s:
        s.add(Annotation(asset_id=sample.assets["a5"], geometry_type="bbox", bbox_w=5, bbox_h=5, attributes={"occluded": True}))
        out = compute_insights(s, s.get(Project, sample.project_id), "", ["attributes"])
        assert out["attributes"]["keys"]["occluded"]["values"] == {"false": 3, "true": 3}
        s.rollback()


def test_gigapixel_image(registry: Registry) -> None:
    """width * height past 2**31 must not overflow PostgreSQL's integer arithmetic."""
    from dsgen_core.registry.projects import ensure_project
    from dsgen_core.registry.schema import Annotation, Asset

    with registry.session() as s:
        pid = ensure_project(s, "satellite").id
        asset = Asset(project_id=pid, source_key="tile.tif", file_name="tile.tif", sha256="t", width=100_000, height=100_000)
        s.add(asset)
        s.flush()
        s.add(Annotation(asset_id=asset.id, geometry_type="bbox", bbox_w=5_000, bbox_h=5_000))
    with registry.session() as s:
        out = compute_insights(s, s.get(Project, pid), "", ["bbox_size", "resolution"])
    assert _nonzero(out["bbox_size"]["relative"]) == {"0.05–0.1": 1}
    assert _nonzero(out["resolution"]["width"]) == {"≥3840": 1}
