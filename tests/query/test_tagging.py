"""Tags and metadata on images and objects: single, by id list, by query; audit rows and change events."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from dsgen_core.errors import DsgenError, NotFound
from dsgen_core.query import count_query, run_query
from dsgen_core.registry import tagging
from dsgen_core.registry.projects import ensure_project
from dsgen_core.registry.schema import (
    AnnotationMetadata,
    Asset,
    AssetMetadata,
    AssetTag,
    AuditLog,
    ChangeEvent,
    Project,
)

from .conftest import INJECTION_TAG, Scene


def audits(s, action: str) -> list[AuditLog]:  # noqa: ANN001 - Session
    return list(s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def events(s, entity: str) -> list[ChangeEvent]:  # noqa: ANN001
    return list(s.scalars(select(ChangeEvent).where(ChangeEvent.entity == entity).order_by(ChangeEvent.seq)))


def test_add_and_remove_tags_by_ids(scene: Scene) -> None:
    pid, a = scene.project_id, scene.a
    with scene.registry.session() as s:
        n = tagging.add_tags(s, s.get(Project, pid), ["review", "night"], asset_ids=[a["street2"], a["dark"]])
        assert n == 4
        assert tagging.get_tags(s, a["street2"]) == ["blurry", "night", "review"]
        assert tagging.get_tags(s, a["dark"]) == ["night", "review", INJECTION_TAG]
        assert tagging.add_tags(s, s.get(Project, pid), "review", asset_ids=[a["street2"], a["street1"]]) == 1  # street2 had it
    with scene.registry.session() as s:
        rows = audits(s, "tag.add")
        assert [r.entity_ids for r in rows] == [sorted([a["street2"], a["dark"]]), sorted([a["street1"], a["street2"]])]
        assert rows[0].entity_type == "asset"
        assert rows[0].detail == {"tags": ["review", "night"], "level": "image", "changed": 4}
        assert rows[0].project_id == pid
        changes = events(s, "asset_tags")
        assert [(c.op, c.count, c.project_id) for c in changes] == [("add", 4, pid), ("add", 1, pid)]
        assert count_query(s, s.get(Project, pid), "tag:review") == 3

    with scene.registry.session() as s:
        assert tagging.remove_tags(s, s.get(Project, pid), ["review", "blurry"], asset_ids=[a["street2"]]) == 2
        assert tagging.get_tags(s, a["street2"]) == ["night"]
        assert tagging.remove_tags(s, s.get(Project, pid), ["review"], asset_ids=[a["street2"]]) == 0
    with scene.registry.session() as s:
        assert [r.detail["changed"] for r in audits(s, "tag.remove")] == [2, 0]
        # Nothing changed, nothing to wake a sensor for: one event, for the first removal.
        removal = [c for c in events(s, "asset_tags") if c.op == "remove"]
        assert [(c.count, c.entity_id) for c in removal] == [(2, a["street2"])]


def test_tags_by_query_are_set_based(scene: Scene) -> None:
    pid = scene.project_id
    with scene.registry.session() as s:
        assert tagging.add_tags(s, s.get(Project, pid), ["big"], query="width>=1024") == 2
        # The query may read the table it writes: tag every image that lacks the tag.
        assert tagging.add_tags(s, s.get(Project, pid), ["big"], query="-tag:big") == 2
        assert tagging.add_tags(s, s.get(Project, pid), ["big"], query="") == 0
        assert set(run_query(s, s.get(Project, pid), "tag:big")) == scene.images("street1", "street2", "dark", "nosize")
        assert tagging.remove_tags(s, s.get(Project, pid), ["big"], query="width<1024") == 1
    with scene.registry.session() as s:
        assert set(run_query(s, s.get(Project, pid), "tag:big")) == scene.images("street1", "dark", "nosize")
        # The deleted image and the other project were never touched.
        assert tagging.get_tags(s, scene.a["gone"]) == ["car"]
        assert tagging.get_tags(s, scene.a["elsewhere"]) == ["car"]
        first = audits(s, "tag.add")[0]
        assert first.entity_ids is None
        assert first.detail == {"tags": ["big"], "level": "image", "changed": 2, "query": "width>=1024"}
        assert [c.count for c in events(s, "asset_tags")] == [2, 2, 1]


def test_object_tags(scene: Scene) -> None:
    pid, o = scene.project_id, scene.o
    with scene.registry.session() as s:
        assert tagging.add_tags(s, s.get(Project, pid), ["check"], query="category:car", level="object") == 2
        assert tagging.add_tags(s, s.get(Project, pid), ["check"], asset_ids=[o["person3"]], level="object") == 1
        assert tagging.get_object_tags(s, o["car1"]) == ["check", "front"]
        assert set(run_query(s, s.get(Project, pid), "tag:check", level="object")) == scene.objects("car1", "car2", "person3")
        assert count_query(s, s.get(Project, pid), "tag:check") == 0  # object tags are not image tags
        assert tagging.remove_tags(s, s.get(Project, pid), "check", query="confidence<0.5", level="object") == 1
        assert set(run_query(s, s.get(Project, pid), "tag:check", level="object")) == scene.objects("car1", "person3")
    with scene.registry.session() as s:
        row = audits(s, "tag.add")[1]
        assert (row.entity_type, row.entity_ids) == ("annotation", [o["person3"]])
        assert [(c.op, c.count) for c in events(s, "annotation_tags")] == [("add", 2), ("add", 1), ("remove", 1)]


def test_set_and_unset_metadata(scene: Scene) -> None:
    pid, a = scene.project_id, scene.a
    with scene.registry.session() as s:
        assert tagging.set_metadata(s, s.get(Project, pid), "camera", "cam-7", asset_ids=[a["dark"], a["nosize"]]) == 2
        assert tagging.set_metadata(s, s.get(Project, pid), "camera", "cam-7", asset_ids=[a["dark"]]) == 0  # already so
        assert tagging.set_metadata(s, s.get(Project, pid), "camera", "cam-8", asset_ids=[a["dark"]]) == 1
        assert tagging.set_metadata(s, s.get(Project, pid), "exposure", tagging.parse_value("12"), query="camera:*") == 2
        assert tagging.set_metadata(s, s.get(Project, pid), "iso", tagging.parse_value("1.5e3"), asset_ids=[a["dark"]]) == 1
        assert tagging.set_metadata(s, s.get(Project, pid), "night", tagging.parse_value("true"), asset_ids=[a["dark"]]) == 1
        assert tagging.set_metadata(s, s.get(Project, pid), "lens", {"mm": 35}, asset_ids=[a["dark"]]) == 1
        assert tagging.get_metadata(s, a["dark"]) == {
            "camera": "cam-8", "exposure": 12, "flag": "true", "iso": 1500.0, "lens": {"mm": 35}, "night": "true", "score": "7",
        }
        row = s.get(AssetMetadata, (a["dark"], "exposure"))
        assert (row.value_text, row.value_num, row.value) == ("12", 12.0, {"v": 12})
        night = s.get(AssetMetadata, (a["dark"], "night"))
        assert (night.value_text, night.value_num) == ("true", None)
        assert set(run_query(s, s.get(Project, pid), "exposure>10 camera:cam-7")) == scene.images("nosize")
        assert set(run_query(s, s.get(Project, pid), "iso>=1500 night:true")) == scene.images("dark")
        # Replacing a number by text clears the number, so key>N stops matching.
        assert tagging.set_metadata(s, s.get(Project, pid), "exposure", "auto", asset_ids=[a["nosize"]]) == 1
        assert set(run_query(s, s.get(Project, pid), "exposure>10")) == scene.images("dark")
        assert tagging.unset_metadata(s, s.get(Project, pid), "exposure", query="") == 2
        assert tagging.unset_metadata(s, s.get(Project, pid), "exposure", query="") == 0
        assert count_query(s, s.get(Project, pid), "exposure:*") == 0
    with scene.registry.session() as s:
        sets = audits(s, "meta.set")
        assert sets[0].detail == {"key": "camera", "value": "cam-7", "level": "image", "changed": 2}
        assert sets[1].detail["changed"] == 0
        assert [r.detail["changed"] for r in audits(s, "meta.unset")] == [2, 0]
        assert [(c.op, c.count) for c in events(s, "asset_metadata")] == [
            ("set", 2), ("set", 1), ("set", 2), ("set", 1), ("set", 1), ("set", 1), ("set", 1), ("unset", 2),
        ]


def test_object_metadata(scene: Scene) -> None:
    pid, o = scene.project_id, scene.o
    with scene.registry.session() as s:
        assert tagging.set_metadata(s, s.get(Project, pid), "reviewed", "yes", query="category:person", level="object") == 3
        assert tagging.get_object_metadata(s, o["person1"]) == {"reviewed": "yes"}
        assert set(run_query(s, s.get(Project, pid), "reviewed:yes", level="object")) == scene.objects("person1", "person2", "person3")
        # Image level sees images whose own metadata says so: none.
        assert count_query(s, s.get(Project, pid), "reviewed:yes") == 0
        assert tagging.unset_metadata(s, s.get(Project, pid), "color", asset_ids=[o["car1"]], level="object") == 1
        # car1 lost its own colour and now inherits street1's.
        assert set(run_query(s, s.get(Project, pid), "color:red", level="object")) == scene.objects("car1", "person1")
        assert s.get(AnnotationMetadata, (o["person2"], "reviewed")).value == {"v": "yes"}
    with scene.registry.session() as s:
        assert [(c.op, c.count) for c in events(s, "annotation_metadata")] == [("set", 3), ("unset", 1)]


@pytest.mark.parametrize("bad", ["", "two words", "tab\tbed", "key:value", "new\nline", "x" * 256])
def test_bad_tags_are_refused(scene: Scene, bad: str) -> None:
    with scene.registry.session() as s, pytest.raises(DsgenError, match="tag"):
        tagging.add_tags(s, s.get(Project, scene.project_id), ["fine", bad], asset_ids=[scene.a["dark"]])
    with scene.registry.session() as s:
        assert tagging.get_tags(s, scene.a["dark"]) == [INJECTION_TAG]
        assert audits(s, "tag.add") == []


@pytest.mark.parametrize("bad", ["", "a b", "a:b", "x>y", "(k)", "-k", "width", "Category", "class", "attr.x", "meta.y"])
def test_bad_metadata_keys_are_refused(scene: Scene, bad: str) -> None:
    with scene.registry.session() as s, pytest.raises(DsgenError, match="key"):
        tagging.set_metadata(s, s.get(Project, scene.project_id), bad, "v", asset_ids=[scene.a["dark"]])


def test_targets_must_be_exactly_one_and_exist(scene: Scene) -> None:
    pid, a = scene.project_id, scene.a
    with scene.registry.session() as s:
        with pytest.raises(DsgenError, match="exactly one"):
            tagging.add_tags(s, s.get(Project, pid), ["x"])
        with pytest.raises(DsgenError, match="exactly one"):
            tagging.add_tags(s, s.get(Project, pid), ["x"], asset_ids=[a["dark"]], query="tag:car")
        with pytest.raises(NotFound, match=str(a["elsewhere"])):
            tagging.add_tags(s, s.get(Project, pid), ["x"], asset_ids=[a["dark"], a["elsewhere"]])
        with pytest.raises(NotFound, match=str(a["gone"])):
            tagging.set_metadata(s, s.get(Project, pid), "k", "v", asset_ids=[a["gone"]])
        with pytest.raises(NotFound):
            tagging.add_tags(s, s.get(Project, pid), ["x"], asset_ids=[scene.o["elsewhere_car"]], level="object")
        with pytest.raises(DsgenError, match="level"):
            tagging.add_tags(s, s.get(Project, pid), ["x"], query="", level="frame")  # type: ignore[arg-type]
        with pytest.raises(DsgenError, match="missing"):
            tagging.set_metadata(s, s.get(Project, pid), "k", None, asset_ids=[a["dark"]])
        with pytest.raises(DsgenError, match="finite"):
            tagging.set_metadata(s, s.get(Project, pid), "k", float("nan"), asset_ids=[a["dark"]])
        assert tagging.add_tags(s, s.get(Project, pid), ["x"], asset_ids=[]) == 0


def test_parse_value() -> None:
    assert tagging.parse_value("12") == 12
    assert tagging.parse_value("-3") == -3
    assert tagging.parse_value("0.5") == 0.5
    assert tagging.parse_value("1e3") == 1000.0
    assert tagging.parse_value("true") == "true"
    assert tagging.parse_value("false") == "false"
    assert tagging.parse_value("007") == "007"  # not a JSON number: an id, keep its zeros
    assert tagging.parse_value("nan") == "nan"
    assert tagging.parse_value("1e999") == "1e999"
    assert tagging.parse_value("red") == "red"
    assert tagging.encode_value("007") == ("007", 7.0, {"v": "007"})
    assert tagging.encode_value(True) == ("true", None, {"v": True})
    assert tagging.encode_value([1, "a"]) == ('[1,"a"]', None, {"v": [1, "a"]})


def test_bulk_ids_and_queries_over_many_images(registry) -> None:  # noqa: ANN001 - Registry fixture
    """More ids than one statement binds: the id list is chunked, the query is one statement."""
    n = tagging.ID_CHUNK + 1500
    with registry.session() as s:
        pid = ensure_project(s).id
        s.execute(insert(Asset), [{"project_id": pid, "source_key": f"{i}.jpg", "file_name": f"{i}.jpg", "width": 100 + i % 3}
                                  for i in range(n)])
    with registry.session() as s:
        ids = list(s.scalars(select(Asset.id).order_by(Asset.id)))
        assert tagging.add_tags(s, s.get(Project, pid), ["bulk"], asset_ids=ids) == n
        assert tagging.set_metadata(s, s.get(Project, pid), "batch", 3, query="width>100") == n - n // 3 - (1 if n % 3 else 0)
        assert tagging.remove_tags(s, s.get(Project, pid), ["bulk"], asset_ids=ids[::2]) == (n + 1) // 2
    with registry.session() as s:
        assert count_query(s, s.get(Project, pid), "tag:bulk") == n // 2
        assert s.scalar(select(AssetTag.asset_id).where(AssetTag.tag == "bulk").order_by(AssetTag.asset_id)) == ids[1]
        assert count_query(s, s.get(Project, pid), "batch:3") == count_query(s, s.get(Project, pid), "width>100")
        assert [c.count for c in events(s, "asset_tags")] == [n, (n + 1) // 2]
        assert len(audits(s, "tag.add")[0].entity_ids) == n
