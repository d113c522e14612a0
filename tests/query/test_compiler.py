"""Every predicate on real rows, on SQLite and PostgreSQL, asserted as exact sets of named rows.

Each test checks a table of queries against one scene (see conftest.py for what it holds): a
fresh database per query would make the PostgreSQL run minutes long.
"""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select

from dsgen_core.errors import DsgenError
from dsgen_core.query import QueryError, compile_query, count_query, run_query
from dsgen_core.registry.schema import Asset, Project

from .conftest import INJECTION_TAG, Scene

ALL_IMAGES = {"street1", "street2", "dark", "nosize"}
ALL_OBJECTS = {"car1", "person1", "car2", "truck1", "person2", "person3"}


def check(scene: Scene, cases: list[tuple[str, set[str]]], level: str = "image") -> None:
    """Run every query; fail once, listing every query whose result differs."""
    wrong = []
    with scene.registry.session() as s:
        for text, expected in cases:
            ids = run_query(s, s.get(Project, scene.project_id), text, level=level)  # type: ignore[arg-type]
            got = scene.image_names(ids) if level == "image" else scene.object_names(ids)
            n = count_query(s, s.get(Project, scene.project_id), text, level=level)  # type: ignore[arg-type]
            if got != expected or n != len(expected) or ids != sorted(ids):
                wrong.append(f"{level} {text!r}: expected {sorted(expected)}, got {sorted(got)} (count {n})")
    assert not wrong, "\n".join(wrong)


def test_everything_and_scoping(scene: Scene) -> None:
    check(scene, [("", ALL_IMAGES), ("   ", ALL_IMAGES)])
    check(scene, [("", ALL_OBJECTS)], "object")


def test_tags(scene: Scene) -> None:
    check(scene, [
        ("tag:car", {"street1"}),  # not the deleted image, not the other project's
        ("tag:day", {"street1"}),
        ("tag:front", set()),  # an object's tag is not an image tag
        ("-tag:car", {"street2", "dark", "nosize"}),
        ("tag:nothing", set()),
        ("has:tag", {"street1", "street2", "dark"}),
        ("-has:tag", {"nosize"}),
    ])
    check(scene, [
        ("tag:car", {"car1", "person1"}),  # objects inherit their image's tags
        ("tag:front", {"car1"}),
        ("tag:partial", {"person1"}),
        ("-tag:car", {"car2", "truck1", "person2", "person3"}),
        ("has:tag", {"car1", "person1", "car2", "truck1", "person2"}),
    ], "object")


def test_categories(scene: Scene) -> None:
    check(scene, [
        ("category:car", {"street1", "street2"}),
        ("category:CAR", {"street1", "street2"}),
        ("class:automobile", {"street1", "street2"}),  # synonym
        ("label:auto", {"street1", "street2"}),  # synonym, case-insensitive
        ("category:Pedestrian", {"street1", "dark", "nosize"}),  # display name
        ("category:human", {"street1", "dark", "nosize"}),
        ("category:lorry", {"street2"}),  # a class of another ontology version
        ("category:bicycle", set()),
        ("-category:car", {"dark", "nosize"}),
    ])
    check(scene, [
        ("category:car", {"car1", "car2"}),
        ("class:truck", {"truck1"}),
        ("-category:person", {"car1", "car2", "truck1"}),
    ], "object")


def test_image_numbers(scene: Scene) -> None:
    check(scene, [
        ("width>1024", {"street1"}),
        ("width>=1024", {"street1", "dark"}),
        ("width=640", {"street2"}),
        ("width:640", {"street2"}),
        ("width!=640", {"street1", "dark"}),  # an unknown width is not "different from 640"
        ("-width:640", {"street1", "dark", "nosize"}),  # ... but negation is the complement
        ("-width>1000", {"street2", "nosize"}),
        ("height<=480", {"street2"}),
        ("height<1080", {"street2", "dark"}),
        ("bytes>150000", {"street1", "dark"}),
        ("bytes<=100000", {"street2"}),
        ("aspect>1.5", {"street1"}),
        ("aspect:1", {"dark"}),
        ("aspect<1.4", {"street2", "dark"}),
        ("width>1e3", {"street1", "dark"}),
        # Fractional bounds on integer columns: never rounded.
        ("width>1023.5", {"street1", "dark"}),
        ("width>=1024.5", {"street1"}),
        ("width<640.5", {"street2"}),
        ("width<=639.5", set()),
        ("width=640.5", set()),
        ("width!=640.5", {"street1", "street2", "dark"}),
        ("bytes>=100000.5", {"street1", "dark"}),
    ])
    check(scene, [("width>1024", {"car1", "person1"}), ("height<=480", {"car2", "truck1"})], "object")


def test_ids_and_files(scene: Scene) -> None:
    a, o = scene.a, scene.o
    check(scene, [
        (f"id:{a['street2']}", {"street2"}),
        (f"id>={a['dark']}", {"dark", "nosize"}),
        (f"id:{a['gone']}", set()),
        (f"-id:{a['street2']}", {"street1", "dark", "nosize"}),
        ("file:street", {"street1", "street2"}),
        ("filename:STREET", {"street1", "street2"}),  # case-insensitive
        ('file:"street 01"', {"street1"}),
        ("file:%", {"dark"}),  # LIKE wildcards are literal
        ("file:_", {"street2", "dark", "nosize"}),
        ("file:night/", {"dark"}),
    ])
    check(scene, [
        (f"id:{o['car2']}", {"car2"}),
        (f"id:{o['car2']} category:car", {"car2"}),
        (f"id:{o['car1']} category:person", set()),
        ("file:night", {"person2"}),
    ], "object")


def test_object_fields_at_image_level(scene: Scene) -> None:
    check(scene, [
        ("confidence<0.5", {"street1", "street2"}),
        ("confidence>0.9", {"nosize"}),
        ("confidence>=0.9", {"street1", "nosize"}),
        ("area>=600", {"street1", "street2"}),  # person1's area comes from its box, 20x30
        ("area<60", {"street2"}),
        ("source:human", {"street2", "dark"}),
        ("source:model", {"street1", "street2", "nosize"}),
        ("iscrowd:1", {"street2"}),
        ("iscrowd:true", {"street2"}),
        ("iscrowd:false", {"street1", "street2", "dark", "nosize"}),
        ("validated:true", {"street1", "street2"}),
        ("validated:0", {"street1", "street2", "dark", "nosize"}),
        ("has:mask", {"street2"}),
        ("has:polygon", {"street1"}),  # [] and JSON null are no polygon
        ("has:keypoints", {"street2"}),
        ("has:bbox", {"street1", "street2"}),
        ("has:caption", {"street2"}),
        ("has:track", {"street1"}),
        ("track:17", {"street1"}),
        ("track:18", set()),
        ("model:m3", {"street1"}),
        ("model:m4", {"street1"}),
        ("annotator:alice", {"street2"}),
        ("annotator:carol", set()),
    ])
    check(scene, [
        ("confidence<0.5", {"person1", "car2"}),
        ("-confidence<0.5", {"car1", "truck1", "person2", "person3"}),  # NULL confidence is in the complement
        ("area>=600", {"person1", "truck1"}),
        ("source:human", {"truck1", "person2"}),
        ("iscrowd:0", ALL_OBJECTS - {"car2"}),
        ("validated:true", {"car1", "truck1"}),
        ("has:mask", {"car2"}),
        ("has:polygon", {"person1"}),
        ("has:keypoints", {"truck1"}),
        ("has:bbox", {"car1", "person1", "car2"}),
        ("has:caption", {"truck1"}),
        ("has:track", {"car1"}),
        ("track:17", {"car1"}),
        ("model:m3", {"car1"}),
        ("annotator:bob", {"truck1"}),
    ], "object")


def test_attributes(scene: Scene) -> None:
    check(scene, [
        ("attr.occluded:true", {"car1", "car2"}),  # JSON true and the string "True"
        ("attr.occluded:TRUE", {"car1", "car2"}),
        ("attr.occluded:1", {"car1", "car2"}),
        ("attr.occluded:false", {"person1"}),
        ("attr.occluded:0", {"person1"}),
        ("-attr.occluded:true", {"person1", "truck1", "person2", "person3"}),
        ("attr.occluded:*", {"car1", "person1", "car2"}),
        ("attr.rotation>10", {"car1"}),  # the string "abc" is not a number, and no error
        ("attr.rotation<=0", {"person1"}),
        ("attr.rotation:0", {"person1"}),
        ("attr.rotation:15.5", {"car1"}),
        ("attr.rotation!=0", {"car1", "person3"}),
        ("attr.rotation:abc", {"person3"}),
        ("attr.color:Red", {"car1"}),
        ("attr.color:red", set()),  # non-boolean strings compare exactly
        ("attr.missing:*", set()),
    ], "object")
    check(scene, [("attr.occluded:true", {"street1", "street2"}), ("attr.rotation>10", {"street1"})])


def test_metadata(scene: Scene) -> None:
    check(scene, [
        ("color:red", {"street1"}),
        ("color:blue", {"street2"}),
        ("color:green", set()),  # car1's own metadata is not image metadata
        ("color:*", {"street1", "street2"}),
        ("-color:*", {"dark", "nosize"}),
        ("color!=red", {"street2"}),  # has the key, with another value
        ("-color:red", {"street2", "dark", "nosize"}),
        ("score>0.5", {"street1", "dark"}),  # "7" stored as text is numeric too
        ("score<=0.3", {"street2"}),
        ("score:7", {"dark"}),
        ("score:7.0", {"dark"}),
        ("score:0.90", {"street1"}),
        ("score!=0.9", {"street2", "dark"}),
        ("flag:true", {"dark"}),
        ("weather:sunny", {"street1"}),
        ("weather:SUNNY", set()),  # text values compare exactly
        ("unknown_key:x", set()),
        ("meta.width:5", {"street2"}),  # a metadata key named like a builtin field
        ("width:5", set()),
        ("META.color:red", {"street1"}),
    ])
    check(scene, [
        ("color:green", {"car1"}),  # the object's own value
        ("color:red", {"person1"}),  # inherited from street1; car1 overrides it with green
        ("color:*", {"car1", "person1", "car2", "truck1"}),
        ("score>0.5", {"car1", "person1", "person2"}),
        ("has:metadata", {"car1", "person1", "car2", "truck1", "person2"}),
    ], "object")
    check(scene, [("has:metadata", {"street1", "street2", "dark"})])


def test_versions_and_splits(scene: Scene) -> None:
    check(scene, [
        ("version:v1", {"street1", "street2"}),
        ("version:v2", {"street1", "dark"}),
        ("version:v9", set()),
        ("split:train", {"street1", "dark"}),  # in the train split of any version
        ("split:val", {"street1", "street2"}),
        ("version:v1 split:train", {"street1"}),  # the train split of v1
        ("split:train version:v2", {"dark"}),
        ("version:v2 split:val", {"street1"}),
        ("-split:train", {"street2", "nosize"}),
        ("version:v1 OR split:train", {"street1", "street2", "dark"}),
    ])
    check(scene, [("version:v1 split:val", {"car2", "truck1"})], "object")


def test_same_object_rule(scene: Scene) -> None:
    check(scene, [
        # car2 is the only car below 0.5; street1 has a car (0.9) and a person (0.4), not a low car.
        ("category:car confidence<0.5", {"street2"}),
        ("confidence<0.5 category:car", {"street2"}),
        ("category:person confidence<0.5", {"street1"}),
        ("category:car attr.occluded:true", {"street1", "street2"}),
        ("category:person attr.occluded:true", set()),
        ("category:car iscrowd:0", {"street1"}),
        # A second category starts another object: a car and a person, not one car-person.
        ("category:car category:person", {"street1"}),
        ("category:person confidence<0.5 category:car", {"street1"}),
        ("category:car confidence<0.5 category:person", set()),
        # An image predicate ends the run, so the two object predicates may be different objects.
        ("category:car width>100 confidence<0.5", {"street1", "street2"}),
        # A negated object predicate is the complement at image level.
        ("category:car -iscrowd:1", {"street1"}),
        ("(category:car confidence<0.5) OR has:keypoints", {"street2"}),
    ])
    check(scene, [("category:car confidence<0.5", {"car2"}), ("category:car category:person", set())], "object")


def test_boolean_structure(scene: Scene) -> None:
    check(scene, [
        ("tag:blurry OR tag:day", {"street1", "street2"}),
        ("tag:blurry OR tag:day width>1000", {"street1", "street2"}),  # AND binds tighter than OR
        ("(tag:blurry OR tag:day) width>1000", {"street1"}),
        ("(tag:blurry OR color:red) width>1000", {"street1"}),
        ("-(tag:car OR tag:blurry)", {"dark", "nosize"}),
        ("--tag:car", {"street1"}),
        ("tag:car AND tag:day", {"street1"}),
        ("tag:car AND tag:blurry", set()),
        ("((tag:car))", {"street1"}),
    ])


def test_injection_is_just_a_value(scene: Scene) -> None:
    check(scene, [
        (f'tag:"{INJECTION_TAG}"', {"dark"}),  # the tag exists, literally
        ("tag:\"x' OR '1'='1\"", set()),
        ("tag:'x\\' OR 1=1 --'", {"dark"}),
        ('color:"red\' OR 1=1 --"', set()),
        ('file:"\'; DROP TABLE assets; --"', set()),
        ("category:\"car') OR ('1'='1\"", set()),
        ("attr.occluded:\"x' OR 1=1 --\"", set()),
    ])
    with scene.registry.session() as s:
        assert s.scalar(select(Asset.id).where(Asset.id == scene.a["street1"])) == scene.a["street1"]
    assert "assets" in inspect(scene.registry.engine).get_table_names()


def test_limit_offset_and_subquery(scene: Scene) -> None:
    with scene.registry.session() as s:
        pid = scene.project_id
        everything = run_query(s, s.get(Project, pid), "")
        assert everything == sorted(scene.images(*ALL_IMAGES))
        assert run_query(s, s.get(Project, pid), "", limit=2) == everything[:2]
        assert run_query(s, s.get(Project, pid), "", limit=2, offset=1) == everything[1:3]
        assert run_query(s, s.get(Project, pid), "", offset=3) == everything[3:]
        # Usable as a subquery, as other modules do.
        names = set(s.scalars(select(Asset.file_name).where(Asset.id.in_(compile_query("tag:car", project_id=pid)))))
        assert names == {"images/street 01.jpg"}
        assert count_query(s, s.get(Project, scene.other_project_id), "tag:car") == 1
        assert count_query(s, s.get(Project, scene.other_project_id), "category:car", level="object") == 1
        assert count_query(s, s.get(Project, scene.other_project_id), "track:17") == 1


def test_errors_are_raised_before_sql(scene: Scene) -> None:
    with scene.registry.session() as s:
        with pytest.raises(QueryError) as err:
            count_query(s, s.get(Project, scene.project_id), "width>wide")
        assert err.value.column == 7
        with pytest.raises(DsgenError, match="unknown query level"):
            compile_query("", project_id=scene.project_id, level="frame")  # type: ignore[arg-type]
