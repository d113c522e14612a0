"""The ingest itself: one transaction with audit (and its actor), change events and the embedding outbox."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from dsgen_core.errors import DsgenError
from dsgen_core.formats.report import ValidationReport
from dsgen_core.registry.db import Registry
from dsgen_core.registry.ingest import ClassRecord, ImageRecord, IngestBatch, ObjectRecord, ingest
from dsgen_core.registry.projects import ensure_project
from dsgen_core.registry.schema import (
    Annotation,
    Asset,
    AuditLog,
    ChangeEvent,
    EmbeddingOutbox,
    EmbeddingVersion,
    ImportBatch,
)
from dsgen_core.storage import open_storage


def _box(position: int, source_id: int | None, image: str, box: tuple[float, float, float, float] = (1.0, 1.0, 2.0, 2.0),
         **kw: Any) -> ObjectRecord:
    fields: dict[str, Any] = {"position": position, "source_id": source_id, "image_ref": image, "class_ref": "car",
                              "geometry_type": "bbox", "bbox": box, "polygon": None, "rle": None, "keypoints": None,
                              "num_keypoints": None, "caption": None, "area": box[2] * box[3], "iscrowd": False,
                              "attributes": None, "extra": None, "score": None}
    return ObjectRecord(**{**fields, **kw})


def _batch(objects: list[ObjectRecord], images: tuple[str, ...] = ("a.jpg", "b.jpg"), sha: str = "f" * 64) -> IngestBatch:
    return IngestBatch(
        operation="import", audit_action="import.test", format="test", source_uri="memory", content_sha256=sha,
        namespace="t", images=[ImageRecord(n, n, n, 10, 10) for n in images], classes=[ClassRecord("car", "car")],
        objects=objects, report=ValidationReport(), file="test.json")


def _count(reg: Registry, table: Any, *where: Any) -> int:
    with reg.session() as s:
        return s.scalar(select(func.count()).select_from(table).where(*where)) or 0


def test_one_transaction_writes_rows_audit_changes_and_outbox(registry: Registry) -> None:
    storage = open_storage(registry.settings.storage_root)
    with registry.session() as s:
        p = ensure_project(s, "p")
        s.add_all([EmbeddingVersion(project_id=p.id, name="objects_v1", model_name="m", dimension=8, level="object"),
                   EmbeddingVersion(project_id=p.id, name="images_v1", model_name="m", dimension=8, level="image"),
                   EmbeddingVersion(project_id=p.id, name="old", model_name="m", dimension=8, is_active=False)])
    with registry.session() as s:
        r = ingest(s, ensure_project(s, "p"), _batch([_box(0, 1, "a.jpg"), _box(1, 2, "a.jpg"), _box(2, 3, "b.jpg")]),
                   storage=storage, actor="cli:ana")
    assert (r.images_new, r.objects_new, r.classes_new) == (2, 3, 1) and r.change_seq is not None
    with registry.session() as s:
        outbox = s.execute(select(EmbeddingOutbox.annotation_id, EmbeddingOutbox.asset_id, EmbeddingOutbox.operation,
                                  EmbeddingVersion.name).join(EmbeddingVersion)).all()
        # The images have no file (nothing to embed until they get one, when they are queued): objects only.
        assert sorted(o.name for o in outbox) == ["objects_v1"] * 3
        assert {o.operation for o in outbox} == {"upsert"}
        audit = s.scalar(select(AuditLog).where(AuditLog.action == "import.test"))
        assert audit.actor == "cli:ana" and audit.detail["objects_new"] == 3
        assert s.scalar(select(ImportBatch.actor)) == "cli:ana"
        events = s.execute(select(ChangeEvent.entity, ChangeEvent.count, ChangeEvent.detail)
                           .where(ChangeEvent.entity.in_(["assets", "annotations"])).order_by(ChangeEvent.seq)).all()
        assert [(e.entity, e.count) for e in events] == [("assets", 2), ("annotations", 3)]
        assert all(e.detail["batch"] == r.batch_id for e in events)

    # The same records again: nothing changes, so no change event and no outbox row.
    seq = _count(registry, ChangeEvent)
    with registry.session() as s:
        again = ingest(s, ensure_project(s, "p"), _batch([_box(0, 1, "a.jpg"), _box(1, 2, "a.jpg"), _box(2, 3, "b.jpg")]),
                       storage=storage, actor="cli:ana")
    assert (again.objects_new, again.objects_unchanged, again.change_seq) == (0, 3, None)
    assert _count(registry, ChangeEvent) == seq and _count(registry, EmbeddingOutbox) == 3


def test_keep_and_replace_resolve_a_conflict_and_report_it(registry: Registry) -> None:
    storage = open_storage(registry.settings.storage_root)
    with registry.session() as s:
        ingest(s, ensure_project(s, "p"), _batch([_box(0, 7, "a.jpg")]), storage=storage)
    for policy, expected in (("keep", 1.0), ("replace", 3.0)):
        other = _batch([_box(0, 7, "a.jpg", box=(3.0, 3.0, 2.0, 2.0))], sha="e" * 64)
        with registry.session() as s:
            r = ingest(s, ensure_project(s, "p"), other, storage=storage, on_conflict=policy)
        assert r.conflicts == 1 and not other.report.errors
        assert any("conflict" in w.reason and policy in ("keep", "replace") for w in other.report.warnings)
        with registry.session() as s:
            assert s.scalar(select(Annotation.bbox_x)) == expected
    assert _count(registry, Annotation) == 1


def test_a_batch_cannot_write_onto_another_projects_images(registry: Registry) -> None:
    storage = open_storage(registry.settings.storage_root)
    with registry.session() as s:
        ingest(s, ensure_project(s, "other"), _batch([_box(0, 1, "a.jpg")], images=("a.jpg",)), storage=storage)
        foreign = s.scalar(select(Asset.id))
    batch = _batch([_box(0, None, foreign)], images=())
    batch.images = [ImageRecord(foreign, "", "", asset_id=foreign)]
    with pytest.raises(DsgenError, match="not images of project 'p'"), registry.session() as s:
        ingest(s, ensure_project(s, "p"), batch, storage=storage)
    assert _count(registry, Annotation) == 1


def test_model_objects_are_replaced_with_delete_rows_in_the_outbox(registry: Registry) -> None:
    """Auto-annotation's shape: no source ids, the model's earlier objects on those images go first."""
    from dsgen_core.registry.schema import Model, ModelVersion

    storage = open_storage(registry.settings.storage_root)
    with registry.session() as s:
        p = ensure_project(s, "p")
        ingest(s, p, _batch([_box(0, 1, "a.jpg")], images=("a.jpg",)), storage=storage)
        model = Model(project_id=p.id, name="det")
        s.add(model)
        s.flush()
        mv = ModelVersion(project_id=p.id, model_id=model.id, human_id="m1", status="succeeded")
        s.add_all([mv, EmbeddingVersion(project_id=p.id, name="objects_v1", model_name="m", dimension=8)])
        s.flush()
        asset, mv_id = s.scalar(select(Asset.id)), mv.id

    def detections(n: int) -> IngestBatch:
        b = IngestBatch(operation="auto_annotate", audit_action="annotate.model", format="model", source_uri="m1",
                        content_sha256="", namespace="model:m1", images=[ImageRecord(asset, "", "", asset_id=asset)],
                        classes=[ClassRecord("car", "car")],
                        objects=[_box(i, None, asset, score=0.5) for i in range(n)], report=ValidationReport(),
                        source="model", model_version_id=mv_id, detection_model="m1", positional_ids=False,
                        replace_model_objects=True)
        return b

    for n in (3, 2):
        with registry.session() as s:
            r = ingest(s, ensure_project(s, "p"), detections(n), storage=storage)
    assert (r.objects_new, r.objects_deleted) == (2, 3)
    assert _count(registry, Annotation, Annotation.source == "model") == 2
    assert _count(registry, Annotation, Annotation.source == "human") == 1
    assert _count(registry, EmbeddingOutbox, EmbeddingOutbox.operation == "delete") == 3
    assert _count(registry, EmbeddingOutbox, EmbeddingOutbox.operation == "upsert") == 5
