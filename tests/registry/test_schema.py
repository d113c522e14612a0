"""Schema integrity on both backends: every test here runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, delete, func, inspect, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from dsgen_core.registry import db
from dsgen_core.registry.changes import changes_since, current_seq, record_change
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import ensure_project
from dsgen_core.registry.schema import (
    Annotation,
    AnnotationTag,
    Asset,
    AssetMetadata,
    AssetTag,
    Base,
    ChangeEvent,
    Dataset,
    DatasetVersion,
    LabelClass,
    Model,
    ModelVersion,
    Project,
    Track,
)


def _head(registry: Registry) -> str:
    return ScriptDirectory.from_config(db.alembic_config(registry.settings.database_url)).get_current_head()


def _revision(registry: Registry) -> str | None:
    with registry.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _project(registry: Registry, name: str = "p") -> int:
    with registry.session() as s:
        return ensure_project(s, name).id


def _asset(s, project_id: int, sha: str | None = None, name: str = "a.jpg") -> Asset:  # noqa: ANN001
    a = Asset(project_id=project_id, source_key=name, file_name=name, sha256=sha, width=640, height=480)
    s.add(a)
    s.flush()
    return a


def _count(registry: Registry, model) -> int:  # noqa: ANN001
    with registry.session() as s:
        return s.scalar(select(func.count()).select_from(model))


# --------------------------------------------------------------------------- migrations


# Exact agreement of the migrated schema with the models: tests/registry/test_migrations.py.


def test_migrations_create_every_model_table(registry: Registry) -> None:
    tables = set(inspect(registry.engine).get_table_names())
    assert tables - {"alembic_version"} == set(Base.metadata.tables)
    assert _revision(registry) == _head(registry)


def test_migrations_are_idempotent(registry: Registry) -> None:
    pid = _project(registry)
    # Forget that this URL was migrated in this process, so the second Registry really checks.
    db._migrated.discard(registry.engine.url.render_as_string(hide_password=False))
    again = Registry(registry.settings)
    try:
        assert _revision(again) == _head(again)
        assert set(again.table_names()) == set(registry.table_names())
        with again.session() as s:
            assert s.get(Project, pid).name == "p"
    finally:
        again.dispose()
    # Running the upgrade itself once more is a no-op, not an error.
    from alembic import command

    cfg = db.alembic_config(registry.settings.database_url)
    with registry.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    assert _revision(registry) == _head(registry)
    assert _count(registry, Project) == 1


# --------------------------------------------------------------------------- foreign keys


def test_dangling_foreign_key_is_rejected(registry: Registry) -> None:
    with pytest.raises(IntegrityError), registry.session() as s:
        s.add(Annotation(asset_id=987654, geometry_type="bbox"))
        s.flush()
    assert _count(registry, Annotation) == 0


def test_cyclic_foreign_keys_are_enforced(registry: Registry) -> None:
    """The two use_alter FKs, which CREATE TABLE leaves out on PostgreSQL, exist there too."""
    pid = _project(registry)
    with pytest.raises(IntegrityError), registry.session() as s:
        s.get(Project, pid).default_ontology_version_id = 987654
        s.flush()
    with registry.session() as s:
        model = Model(project_id=pid, name="det")
        s.add(model)
        s.flush()
        model_id = model.id
    with pytest.raises(IntegrityError), registry.session() as s:
        s.add(ModelVersion(project_id=pid, model_id=model_id, human_id="m1", init_from_artifact_id=987654))
        s.flush()


def test_restrict_blocks_deleting_a_label_class_in_use(registry: Registry) -> None:
    pid = _project(registry)
    with registry.session() as s:
        lc = LabelClass(project_id=pid, key="car", display_name="car")
        s.add(lc)
        s.flush()
        s.add(Annotation(asset_id=_asset(s, pid).id, label_class_id=lc.id, geometry_type="bbox"))
        lc_id = lc.id
    with pytest.raises(IntegrityError), registry.session() as s:
        s.execute(delete(LabelClass).where(LabelClass.id == lc_id))
    assert _count(registry, LabelClass) == 1


def test_set_null_on_deleting_a_track(registry: Registry) -> None:
    pid = _project(registry)
    with registry.session() as s:
        track = Track(project_id=pid, external_id="7")
        s.add(track)
        s.flush()
        ann = Annotation(asset_id=_asset(s, pid).id, geometry_type="bbox", track_id=track.id)
        s.add(ann)
        s.flush()
        ann_id, track_id = ann.id, track.id
    with registry.session() as s:
        s.execute(delete(Track).where(Track.id == track_id))
    with registry.session() as s:
        assert s.get(Annotation, ann_id).track_id is None


# --------------------------------------------------------------------------- uniqueness


def test_asset_source_key_unique_per_project_and_bytes_may_repeat(registry: Registry) -> None:
    p1, p2 = _project(registry, "p1"), _project(registry, "p2")
    with registry.session() as s:
        _asset(s, p1, "ab" * 32)
        _asset(s, p2, "ab" * 32)  # the same path in another project is another sample
        _asset(s, p1, "ab" * 32, "x.jpg")  # equal bytes, another path: another sample
        _asset(s, p1, None, "y.jpg")
    with pytest.raises(IntegrityError), registry.session() as s:
        _asset(s, p1, "cd" * 32, "x.jpg")
    assert _count(registry, Asset) == 4


def test_label_class_key_unique_per_project(registry: Registry) -> None:
    p1, p2 = _project(registry, "p1"), _project(registry, "p2")
    with registry.session() as s:
        s.add_all([LabelClass(project_id=p, key="car", display_name="Car") for p in (p1, p2)])
    with pytest.raises(IntegrityError), registry.session() as s:
        s.add(LabelClass(project_id=p1, key="car", display_name="another car"))
        s.flush()
    assert _count(registry, LabelClass) == 2


def test_annotation_source_key_unique_per_image(registry: Registry) -> None:
    pid = _project(registry)
    with registry.session() as s:
        a, b = _asset(s, pid, None, "a.jpg"), _asset(s, pid, None, "b.jpg")
        s.add_all([Annotation(asset_id=a.id, geometry_type="bbox", source_key="coco:1"),
                   Annotation(asset_id=b.id, geometry_type="bbox", source_key="coco:1"),  # another image
                   Annotation(asset_id=a.id, geometry_type="bbox"), Annotation(asset_id=a.id, geometry_type="bbox")])
        a_id = a.id
    with pytest.raises(IntegrityError), registry.session() as s:
        s.add(Annotation(asset_id=a_id, geometry_type="bbox", source_key="coco:1"))
        s.flush()
    assert _count(registry, Annotation) == 4


def test_dataset_version_tag_unique_per_project(registry: Registry) -> None:
    p1, p2 = _project(registry, "p1"), _project(registry, "p2")
    with registry.session() as s:
        ds = {p: s.scalar(select(Dataset.id).where(Dataset.project_id == p)) for p in (p1, p2)}
        s.add_all([DatasetVersion(dataset_id=ds[p], project_id=p, version_tag="v1") for p in (p1, p2)])
    with pytest.raises(IntegrityError), registry.session() as s:
        s.add(DatasetVersion(dataset_id=ds[p1], project_id=p1, version_tag="v1"))
        s.flush()
    assert _count(registry, DatasetVersion) == 2


def test_model_version_human_id_unique(registry: Registry) -> None:
    p1, p2 = _project(registry, "p1"), _project(registry, "p2")
    with registry.session() as s:
        m1, m2 = Model(project_id=p1, name="det"), Model(project_id=p2, name="det")
        s.add_all([m1, m2])
        s.flush()
        s.add(ModelVersion(project_id=p1, model_id=m1.id, human_id="m1"))
        s.add(ModelVersion(project_id=p2, model_id=m2.id, human_id="m1"))  # human ids are per project
        m1_id = m1.id
    # unique within the project, not only per model
    with pytest.raises(IntegrityError), registry.session() as s:
        m = Model(project_id=p1, name="other")
        s.add(m)
        s.flush()
        s.add(ModelVersion(project_id=p1, model_id=m.id, human_id="m1"))
        s.flush()
    assert m1_id and _count(registry, ModelVersion) == 2


# --------------------------------------------------------------------------- check constraints


@pytest.mark.parametrize(
    ("field", "bad"),
    [("source", "robot"), ("geometry_type", "circle")],
)
def test_annotation_check_constraints(registry: Registry, field: str, bad: str) -> None:
    pid = _project(registry)
    with registry.session() as s:
        asset_id = _asset(s, pid).id
        s.add(Annotation(asset_id=asset_id, geometry_type="polygon", source="model", confidence=0.5))
        s.add(Annotation(asset_id=asset_id, geometry_type="keypoints", source="human"))
    with pytest.raises(IntegrityError), registry.session() as s:
        s.add(Annotation(asset_id=asset_id, **{"geometry_type": "bbox", "source": "human", field: bad}))
        s.flush()
    assert _count(registry, Annotation) == 2


# --------------------------------------------------------------------------- cascades


def test_deleting_an_asset_cascades_to_its_annotations_and_tags(registry: Registry) -> None:
    pid = _project(registry)
    with registry.session() as s:
        doomed, kept = _asset(s, pid, "1" * 64, "doomed.jpg"), _asset(s, pid, "2" * 64, "kept.jpg")
        for a in (doomed, kept):
            ann = Annotation(asset_id=a.id, geometry_type="bbox")
            s.add(ann)
            s.flush()
            s.add_all(
                [
                    AssetTag(asset_id=a.id, tag="night"),
                    AnnotationTag(annotation_id=ann.id, tag="occluded"),
                    AssetMetadata(asset_id=a.id, key="camera", value_text="c1"),
                ]
            )
        doomed_id, kept_id = doomed.id, kept.id
    with registry.session() as s:
        s.execute(delete(Asset).where(Asset.id == doomed_id))
    with registry.session() as s:
        for model, col in ((Annotation, Annotation.asset_id), (AssetTag, AssetTag.asset_id), (AssetMetadata, AssetMetadata.asset_id)):
            assert s.scalars(select(col).select_from(model)).all() == [kept_id], model.__name__
        tagged = s.scalars(select(Annotation.asset_id).join(AnnotationTag, AnnotationTag.annotation_id == Annotation.id)).all()
        assert tagged == [kept_id]
        assert s.scalar(select(func.count()).select_from(AnnotationTag)) == 1


# --------------------------------------------------------------------------- change sequence


def test_change_sequence_is_strictly_increasing(registry: Registry) -> None:
    pid = _project(registry)
    seqs: list[int] = []
    with registry.session() as s:
        start = current_seq(s)
        seqs += [record_change(s, project_id=pid, entity="assets", op="insert", entity_id=i) for i in range(3)]
    with registry.session() as s:
        seqs.append(record_change(s, project_id=pid, entity="annotations", op="insert", count=10))
    assert seqs[0] > start
    assert all(b > a for a, b in zip(seqs, seqs[1:], strict=False))
    with registry.session() as s:
        assert current_seq(s) == seqs[-1]
        assert [e.seq for e in changes_since(s, seqs[0])] == seqs[1:]
        assert [e.seq for e in changes_since(s, start, entity="assets")] == seqs[:3]


def test_change_sequence_never_reuses_a_deleted_seq(registry: Registry) -> None:
    """A sensor's cursor stays valid: even after the newest event is deleted, seq keeps growing."""
    with registry.session() as s:
        first = record_change(s, project_id=None, entity="assets", op="insert")
        last = record_change(s, project_id=None, entity="assets", op="insert")
    with registry.session() as s:
        s.execute(delete(ChangeEvent).where(ChangeEvent.seq == last))
    with registry.session() as s:
        assert record_change(s, project_id=None, entity="assets", op="insert") > last > first


def test_rolled_back_change_is_not_visible(registry: Registry) -> None:
    with registry.session() as s:
        kept = record_change(s, project_id=None, entity="assets", op="insert")
    with pytest.raises(RuntimeError), registry.session() as s:
        record_change(s, project_id=None, entity="assets", op="insert")
        raise RuntimeError("abort the transaction")
    with registry.session() as s:
        assert [e.seq for e in changes_since(s, 0)] == [kept]


# --------------------------------------------------------------------------- JSON columns

NESTED = {
    "occluded": True,
    "rotation": 12.5,
    "track": {"id": 3, "keyframe": False, "path": [[1, 2], [3.25, None]]},
    "names": ["자동차", "voiture", "🚗"],
    "empty": {},
    "none": None,
    "big": 2**53,
}


def test_json_columns_round_trip_nested_data(registry: Registry) -> None:
    pid = _project(registry)
    with registry.session() as s:
        asset = _asset(s, pid)
        asset.extra = {"exif": NESTED}
        ann = Annotation(
            asset_id=asset.id,
            geometry_type="polygon",
            polygon=[[0, 0, 10, 0, 10, 10.5]],
            keypoints=[1.0, 2.0, 2, 0, 0, 0],
            attributes=NESTED,
        )
        s.add(ann)
        s.flush()
        ids = asset.id, ann.id
    with registry.session() as s:
        asset, ann = s.get(Asset, ids[0]), s.get(Annotation, ids[1])
        assert asset.extra == {"exif": NESTED}
        assert ann.attributes == NESTED
        assert ann.polygon == [[0, 0, 10, 0, 10, 10.5]]
        assert ann.keypoints == [1.0, 2.0, 2, 0, 0, 0]


def test_json_columns_are_jsonb_on_postgresql(registry: Registry) -> None:
    json_columns = [
        (t.name, c.name) for t in Base.metadata.tables.values() for c in t.columns if isinstance(c.type, JSON)
    ]
    assert ("annotations", "attributes") in json_columns
    insp = inspect(registry.engine)
    expected = JSONB if registry.dialect == "postgresql" else JSON
    for table, column in json_columns:
        reflected = {c["name"]: c["type"] for c in insp.get_columns(table)}[column]
        assert isinstance(reflected, expected), (table, column, reflected)
