"""A small registry scene, inserted through the ORM, that every query predicate can be checked on.

Names stand for ids (``scene.a["street1"]``, ``scene.o["car1"]``) so tests read as sets of
names and stay independent of how either database numbers rows. See :func:`scene` for what
each image and object holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest
from sqlalchemy import JSON

from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import ensure_project
from dsgen_core.registry.schema import (
    Annotation,
    AnnotationMetadata,
    AnnotationTag,
    Asset,
    AssetMetadata,
    AssetTag,
    Dataset,
    DatasetSplit,
    DatasetVersion,
    DatasetVersionAsset,
    LabelClass,
    Model,
    ModelVersion,
    OntologyVersion,
    OntologyVersionClass,
    Track,
)

INJECTION_TAG = "x' OR 1=1 --"


@dataclass
class Scene:
    registry: Registry
    project_id: int
    other_project_id: int
    a: dict[str, int] = field(default_factory=dict)  # image name -> Asset.id
    o: dict[str, int] = field(default_factory=dict)  # object name -> Annotation.id

    def images(self, *names: str) -> set[int]:
        return {self.a[n] for n in names}

    def objects(self, *names: str) -> set[int]:
        return {self.o[n] for n in names}

    def image_names(self, ids: list[int] | set[int]) -> set[str]:
        back = {v: k for k, v in self.a.items()}
        return {back[i] for i in ids}

    def object_names(self, ids: list[int] | set[int]) -> set[str]:
        back = {v: k for k, v in self.o.items()}
        return {back[i] for i in ids}


def _meta(value: object) -> dict[str, object]:
    """Columns of a metadata row as tagging.set_metadata writes them."""
    if isinstance(value, bool):
        return {"value_text": str(value).lower(), "value_num": None, "value": {"v": value}}
    if isinstance(value, int | float):
        return {"value_text": str(value), "value_num": float(value), "value": {"v": value}}
    text = str(value)
    try:
        num: float | None = float(text)
    except ValueError:
        num = None
    return {"value_text": text, "value_num": num, "value": {"v": value}}


@pytest.fixture
def scene(registry: Registry) -> Scene:
    """Project "default" (the CLI's default) with four live images, one deleted, and objects.

    images (file, size, bytes; tags; metadata):
      street1  images/street 01.jpg  1920x1080  500000  car, day       color=red score=0.9 weather=sunny
      street2  images/street_02.png   640x480   100000  blurry         color=blue score=0.3 width=5
      dark     night/100%_dark.jpg   1024x1024 2000000  INJECTION_TAG  score="7" flag="true"
      nosize   misc/no_size.jpg      (no size)    None  -              -
      gone     deleted/gone.jpg (deleted_at set) car; a car object
    objects (image; class; confidence, source; extras):
      car1     street1 car     0.9  model  bbox 10x10, occluded=true rotation=15.5 color="Red", track "17",
                                           model m3, validated, own tag "front", own metadata color=green
      person1  street1 person  0.4  model  bbox 20x30 (no area), occluded=false rotation=0, polygon, tag "partial"
      car2     street2 car     0.3  model  bbox, area 50, occluded="True", mask, iscrowd, annotator alice
      truck1   street2 truck   -    human  area 5000, empty polygon [], keypoints, caption, annotator bob, validated
      person2  dark    person  -    human  polygon JSON null
      person3  nosize  person  0.95 model  rotation="abc"
    classes: car (display "Car", synonyms automobile, Auto) and person (display "Pedestrian",
    synonym human) in ontology o1; truck (display "Lorry") in ontology o2.
    dataset versions: v1 = street1 train, street2 val; v2 = street1 val, dark train.
    Project "other" holds an image tagged car with a car object, which nothing may return.
    """
    with registry.session() as s:
        project = ensure_project(s)
        other = ensure_project(s, "other")
        o1 = project.default_ontology_version_id
        o2 = OntologyVersion(project_id=project.id, version_tag="o2", parent_id=o1)
        s.add(o2)
        s.flush()
        car = LabelClass(project_id=project.id, key="car", display_name="Car", synonyms=["automobile", "Auto"])
        person = LabelClass(project_id=project.id, key="person", display_name="Pedestrian", synonyms=["human"])
        truck = LabelClass(project_id=project.id, key="truck", display_name="Lorry", synonyms=[])
        other_car = LabelClass(project_id=other.id, key="car", display_name="Car")
        s.add_all([car, person, truck, other_car])
        s.flush()
        s.add_all([OntologyVersionClass(ontology_version_id=o, label_class_id=c.id, display_name=c.display_name)
                   for o, c in ((o1, car), (o1, person), (o2.id, car), (o2.id, person), (o2.id, truck),
                                (other.default_ontology_version_id, other_car))])
        model = Model(project_id=project.id, name="detector", task="det")
        s.add(model)
        s.flush()
        m3 = ModelVersion(project_id=project.id, model_id=model.id, human_id="m3")
        m4 = ModelVersion(project_id=project.id, model_id=model.id, human_id="m4")
        track = Track(project_id=project.id, external_id="17")
        other_track = Track(project_id=other.id, external_id="17")
        s.add_all([m3, m4, track, other_track])
        s.flush()

        def image(name: str, project_id: int, file_name: str, **kw: object) -> Asset:
            asset = Asset(project_id=project_id, source_key=file_name, file_name=file_name, sha256=name.ljust(64, "0"),
                          **kw)
            s.add(asset)
            s.flush()
            return asset

        street1 = image("street1", project.id, "images/street 01.jpg", width=1920, height=1080, bytes=500_000)
        street2 = image("street2", project.id, "images/street_02.png", width=640, height=480, bytes=100_000)
        dark = image("dark", project.id, "night/100%_dark.jpg", width=1024, height=1024, bytes=2_000_000)
        nosize = image("nosize", project.id, "misc/no_size.jpg")
        gone = image("gone", project.id, "deleted/gone.jpg", width=1920, height=1080,
                     deleted_at=datetime(2024, 1, 1, tzinfo=timezone.utc))
        elsewhere = image("elsewhere", other.id, "images/street 01.jpg", width=1920, height=1080)

        for asset, tags in [(street1, ["car", "day"]), (street2, ["blurry"]), (dark, [INJECTION_TAG]),
                            (gone, ["car"]), (elsewhere, ["car"])]:
            s.add_all(AssetTag(asset_id=asset.id, tag=t) for t in tags)
        for asset, meta in [
            (street1, {"color": "red", "score": 0.9, "weather": "sunny"}),
            (street2, {"color": "blue", "score": 0.3, "width": 5}),
            (dark, {"score": "7", "flag": "true"}),
            (elsewhere, {"color": "red"}),
        ]:
            s.add_all(AssetMetadata(asset_id=asset.id, key=k, **_meta(v)) for k, v in meta.items())

        def obj(asset: Asset, cls: LabelClass, **kw: object) -> Annotation:
            kw.setdefault("geometry_type", "bbox")
            ann = Annotation(asset_id=asset.id, label_class_id=cls.id, **kw)
            s.add(ann)
            s.flush()
            return ann

        car1 = obj(street1, car, confidence=0.9, source="model", bbox_x=0.0, bbox_y=0.0, bbox_w=10.0, bbox_h=10.0,
                   area=100.0, attributes={"occluded": True, "rotation": 15.5, "color": "Red"}, track_id=track.id,
                   model_version_id=m3.id, is_validated=True)
        person1 = obj(street1, person, confidence=0.4, source="model", bbox_x=5.0, bbox_y=5.0, bbox_w=20.0, bbox_h=30.0,
                      attributes={"occluded": False, "rotation": 0}, polygon=[[5, 5, 25, 5, 25, 35]], model_version_id=m4.id)
        car2 = obj(street2, car, confidence=0.3, source="model", bbox_x=1.0, bbox_y=1.0, bbox_w=5.0, bbox_h=10.0, area=50.0,
                   attributes={"occluded": "True"}, mask_uri="masks/ab/cd/3.rle", iscrowd=True, annotator="alice",
                   geometry_type="mask")
        truck1 = obj(street2, truck, source="human", area=5000.0, polygon=[], keypoints=[1, 2, 2], num_keypoints=1,
                     caption="a truck", annotator="bob", is_validated=True, geometry_type="keypoints")
        # JSON null, not SQL NULL: has:polygon must treat both as "no polygon".
        person2 = obj(dark, person, source="human", geometry_type="polygon", polygon=JSON.NULL)
        person3 = obj(nosize, person, confidence=0.95, source="model", attributes={"rotation": "abc"})
        gone_car = obj(gone, car, confidence=0.1, source="model", attributes={"occluded": True})
        elsewhere_car = obj(elsewhere, other_car, confidence=0.1, source="model", attributes={"occluded": True},
                            track_id=other_track.id)

        s.add_all([AnnotationTag(annotation_id=car1.id, tag="front"), AnnotationTag(annotation_id=person1.id, tag="partial")])
        s.add(AnnotationMetadata(annotation_id=car1.id, key="color", **_meta("green")))

        dataset = Dataset(project_id=project.id, name="versions")
        s.add(dataset)
        s.flush()
        for tag, members in [("v1", [(street1, "train"), (street2, "val")]), ("v2", [(street1, "val"), (dark, "train")])]:
            version = DatasetVersion(dataset_id=dataset.id, project_id=project.id, version_tag=tag)
            s.add(version)
            s.flush()
            splits = {name: DatasetSplit(dataset_version_id=version.id, split=name) for name in ("train", "val")}
            s.add_all(splits.values())
            s.flush()
            s.add_all(
                DatasetVersionAsset(dataset_version_id=version.id, asset_id=a.id, split_id=splits[sp].id) for a, sp in members
            )
        s.flush()
        return Scene(
            registry=registry,
            project_id=project.id,
            other_project_id=other.id,
            a={"street1": street1.id, "street2": street2.id, "dark": dark.id, "nosize": nosize.id, "gone": gone.id,
               "elsewhere": elsewhere.id},
            o={"car1": car1.id, "person1": person1.id, "car2": car2.id, "truck1": truck1.id, "person2": person2.id,
               "person3": person3.id, "gone_car": gone_car.id, "elsewhere_car": elsewhere_car.id},
        )
