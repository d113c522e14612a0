"""A small project whose every insight number can be worked out by hand.

Images (project "shop"):
    a1 1920x1080  tags day, city   weather=sunny camera=cam1 iso=100
        car    10x10    occluded=true  color=red  track_id=7        human
        car    100x50   occluded=false color=blue rotation=15.5   model 0.95   object tag "hard"
        person 40x120   occluded=false                             model 0.42
    a2 1920x1080  tag night        weather=rain  camera=cam1 iso=400
        person 200x400  occluded=true  rotation=90.0               human
        car    0x10     (degenerate, no attributes)                human
    a3 640x480    tag day          weather=sunny
        caption, no class, no box                                  human
    a4 100x100    -
        dog    normalised 0.5x0.25 (= 50x25 px)  occluded=false truncation=2   human
    a5 size unknown, no objects
Not in scope: a soft-deleted image with a car, and an image of another project with a car.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import ensure_project
from dsgen_core.registry.schema import (
    Annotation,
    AnnotationTag,
    Asset,
    AssetMetadata,
    AssetTag,
    LabelClass,
    OntologyVersionClass,
)

PROJECT = "shop"


@dataclass(frozen=True)
class Sample:
    project_id: int
    other_project_id: int
    assets: dict[str, int]


def _asset(project_id: int, name: str, width: int | None, height: int | None, **kw: object) -> Asset:
    return Asset(project_id=project_id, source_key=f"{name}.jpg", file_name=f"{name}.jpg", sha256=f"{project_id}-{name}", width=width, height=height, **kw)


def _box(asset: Asset, cls: LabelClass | None, w: float | None, h: float | None, attributes: dict | None = None, **kw: object) -> Annotation:
    return Annotation(
        asset_id=asset.id,
        label_class_id=cls.id if cls is not None else None,
        geometry_type=kw.pop("geometry_type", "bbox"),
        bbox_x=None if w is None else 0.0,
        bbox_y=None if h is None else 0.0,
        bbox_w=w,
        bbox_h=h,
        attributes=attributes,
        **kw,
    )


def _meta(asset: Asset, key: str, value: str | int) -> AssetMetadata:
    number = float(value) if isinstance(value, int) else None
    return AssetMetadata(asset_id=asset.id, key=key, value_text=str(value), value_num=number, value={"v": value})


def build_sample(registry: Registry) -> Sample:
    with registry.session() as s:
        project = ensure_project(s, PROJECT)
        other = ensure_project(s, "elsewhere")
        onto = project.default_ontology_version_id
        car = LabelClass(project_id=project.id, key="car", display_name="Car", color="#d62728")
        person = LabelClass(project_id=project.id, key="person", display_name="Person")
        dog = LabelClass(project_id=project.id, key="dog", display_name="Dog")
        other_car = LabelClass(project_id=other.id, key="car", display_name="Car")
        s.add_all([car, person, dog, other_car])
        s.flush()
        s.add_all([OntologyVersionClass(ontology_version_id=o, label_class_id=c.id, display_name=c.display_name)
                   for o, c in ((onto, car), (onto, person), (onto, dog), (other.default_ontology_version_id, other_car))])
        a1 = _asset(project.id, "a1", 1920, 1080)
        a2 = _asset(project.id, "a2", 1920, 1080)
        a3 = _asset(project.id, "a3", 640, 480)
        a4 = _asset(project.id, "a4", 100, 100)
        a5 = _asset(project.id, "a5", None, None)
        gone = _asset(project.id, "gone", 800, 600, deleted_at=datetime.now(timezone.utc))
        foreign = _asset(other.id, "foreign", 800, 600)
        s.add_all([a1, a2, a3, a4, a5, gone, foreign])
        s.flush()
        hard_car = _box(a1, car, 100, 50, {"occluded": False, "color": "blue", "rotation": 15.5}, source="model", confidence=0.95)
        s.add_all(
            [
                _box(a1, car, 10, 10, {"occluded": True, "color": "red", "track_id": 7}),
                hard_car,
                _box(a1, person, 40, 120, {"occluded": False}, source="model", confidence=0.42),
                _box(a2, person, 200, 400, {"occluded": True, "rotation": 90.0}),
                _box(a2, car, 0, 10),
                _box(a3, None, None, None, geometry_type="caption", caption="a shop front"),
                _box(a4, dog, 0.5, 0.25, {"occluded": False, "truncation": 2}, is_normalized=True),
                _box(gone, car, 30, 30, {"occluded": True}),
                _box(foreign, other_car, 30, 30, {"occluded": True}),
            ]
        )
        s.flush()
        s.add(AnnotationTag(annotation_id=hard_car.id, tag="hard"))
        s.add_all(
            [
                AssetTag(asset_id=a1.id, tag="day"),
                AssetTag(asset_id=a1.id, tag="city"),
                AssetTag(asset_id=a2.id, tag="night"),
                AssetTag(asset_id=a3.id, tag="day"),
                AssetTag(asset_id=gone.id, tag="day"),
                AssetTag(asset_id=foreign.id, tag="day"),
                _meta(a1, "weather", "sunny"),
                _meta(a2, "weather", "rain"),
                _meta(a3, "weather", "sunny"),
                _meta(a1, "camera", "cam1"),
                _meta(a2, "camera", "cam1"),
                _meta(a1, "iso", 100),
                _meta(a2, "iso", 400),
                _meta(foreign, "weather", "snow"),
            ]
        )
        return Sample(
            project_id=project.id,
            other_project_id=other.id,
            assets={a.file_name.removesuffix(".jpg"): a.id for a in (a1, a2, a3, a4, a5, gone, foreign)},
        )


@pytest.fixture
def sample(registry: Registry) -> Sample:
    return build_sample(registry)
