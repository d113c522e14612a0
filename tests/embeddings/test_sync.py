"""The outbox sync manager on both databases with the embedded Chroma: deltas, deletes, retries, reconcile."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from dsgen_core.embeddings.store import open_store
from dsgen_core.embeddings.versions import get_version
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Annotation, Asset, EmbeddingOutbox
from support import import_file


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return orjson.loads(result.output.strip().splitlines()[-1])


def _create(cli: Any, weights: Path, name: str = "vis", level: str = "both") -> list[dict[str, Any]]:
    return _json(cli.invoke("embed", "create", name, "--project", "p", "--encoder", "onnx", "--weights", weights,
                            "--level", level, "--json"))


def _status(cli: Any) -> dict[str, dict[str, Any]]:
    out = _json(cli.invoke("embed", "status", "--project", "p", "--json"))
    return {f"{v['name']}/{v['level']}": v for v in out["versions"]}


def _objects(reg: Registry) -> int:
    with reg.session() as s:
        return s.scalar(select(func.count()).select_from(Annotation).where(Annotation.bbox_w.is_not(None))) or 0


def _chroma_ids(reg: Registry, level: str = "object", name: str = "vis") -> list[int]:
    store = open_store(reg.settings)
    with reg.session() as s:
        ev = get_version(s, get_project(s, "p"), name, level=level)
    col = store.collection(ev, create=False)
    return [i for ids, _m, _v in store.scan(col) for i in ids] if col is not None else []


def test_backfill_then_delta_only(registry: Registry, cli: Any, demo_data: Path, onnx_encoder: Path,
                                  tmp_path: Path) -> None:
    ann = demo_data / "annotations" / "instances_default.json"
    import_file(registry, ann, images=demo_data / "images")
    made = _create(cli, onnx_encoder)
    n = _objects(registry)
    assert {m["level"]: m["queued"] for m in made} == {"object": n, "image": 16}
    st = _status(cli)
    assert st["vis/object"]["pending"] == n and st["vis/object"]["lag_s"] is not None

    first = {r["level"]: r for r in _json(cli.invoke("embed", "sync", "--project", "p", "--json"))}
    assert first["object"]["upserted"] == n and first["image"]["upserted"] == 16
    assert first["object"]["pending"] == 0
    ids = _chroma_ids(registry)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == n
    st = _status(cli)["vis/object"]
    assert (st["pending"], st["synced"], st["failed"], st["lag_s"]) == (0, n, 0, None)
    assert st["registry_count"] == st["chroma_count"] == n

    # A second file: only its objects are embedded by the next sync.
    data = json.loads(ann.read_text())
    extra_img = {**data["images"][0], "id": 999, "file_name": "copy/extra.jpg"}
    (demo_data / "images" / "copy").mkdir(exist_ok=True)
    shutil.copy(demo_data / "images" / data["images"][0]["file_name"], demo_data / "images" / "copy" / "extra.jpg")
    new_anns = [{**a, "id": 90_000 + i, "image_id": 999} for i, a in enumerate(
        a for a in data["annotations"] if a["image_id"] == data["images"][0]["id"])]
    second = tmp_path / "second.json"
    second.write_text(json.dumps({**data, "images": [extra_img], "annotations": new_anns}))
    import_file(registry, second, images=demo_data / "images")
    assert _status(cli)["vis/object"]["pending"] == len(new_anns)
    delta = {r["level"]: r for r in _json(cli.invoke("embed", "sync", "--project", "p", "--json"))}
    assert delta["object"]["upserted"] == len(new_anns) and delta["image"]["upserted"] == 1
    assert len(_chroma_ids(registry)) == n + len(new_anns)
    # Nothing pending: a sync does nothing.
    again = {r["level"]: r for r in _json(cli.invoke("embed", "sync", "--project", "p", "--json"))}
    assert again["object"]["upserted"] == again["image"]["upserted"] == 0


def test_changed_box_is_re_embedded_and_reconcile_repairs_drift(registry: Registry, cli: Any, demo_data: Path,
                                                                onnx_encoder: Path) -> None:
    import_file(registry, demo_data / "annotations" / "instances_default.json", images=demo_data / "images")
    _create(cli, onnx_encoder, level="object")
    _json(cli.invoke("embed", "sync", "--project", "p", "--json"))
    assert _json(cli.invoke("embed", "reconcile", "--project", "p", "--json"))[0]["in_step"] is True

    store = open_store(registry.settings)
    with registry.session() as s:
        ev = get_version(s, get_project(s, "p"), "vis", level="object")
        ids = sorted(s.scalars(select(Annotation.id).where(Annotation.bbox_w.is_not(None))))
        # Drift no outbox row announces: a writer that bypassed the ingest changed a box and a class fact.
        s.execute(update(Annotation).where(Annotation.id == ids[0]).values(bbox_w=Annotation.bbox_w + 3))
        s.execute(update(Annotation).where(Annotation.id == ids[1]).values(is_validated=True))
    col = store.collection(ev)
    store.delete(col, [ids[2]])  # missing
    vec = store.get(col, [ids[3]])[ids[3]][0]
    assert vec is not None
    store.upsert(col, [10**9], vec[None], [{"object_id": 10**9, "project_id": 1}])  # extra
    dry = _json(cli.invoke("embed", "reconcile", "--project", "p", "--dry-run", "--json"))[0]
    assert (dry["missing"], dry["extra"], dry["stale"], dry["metadata_drift"]) == (1, 1, 1, 1)
    assert dry["in_step"] is False and len(_chroma_ids(registry)) == len(ids)  # dry run changed nothing

    fixed = _json(cli.invoke("embed", "reconcile", "--project", "p", "--json"))[0]
    assert (fixed["queued"], fixed["deleted"], fixed["metadata_updated"]) == (2, 1, 1)
    assert fixed["sync"]["upserted"] == 2
    assert _json(cli.invoke("embed", "reconcile", "--project", "p", "--json"))[0]["in_step"] is True
    meta = store.get(col, [ids[1]])[ids[1]][1]
    assert meta["validated"] is True


def test_unreadable_image_retries_with_backoff_then_fails(registry: Registry, cli: Any, demo_data: Path,
                                                          onnx_encoder: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    shutil.copytree(demo_data / "images", images)
    import_file(registry, demo_data / "annotations" / "instances_default.json", images=images)
    _create(cli, onnx_encoder, level="object")
    with registry.session() as s:
        asset_id, uri = s.execute(select(Asset.id, Asset.storage_uri).order_by(Asset.id).limit(1)).one()
        broken = s.scalar(select(func.count()).select_from(Annotation).where(
            Annotation.asset_id == asset_id, Annotation.bbox_w.is_not(None)))
    assert broken
    Path(uri).write_bytes(b"not an image any more")
    res = _json(cli.invoke("embed", "sync", "--project", "p", "--max-tries", "2", "--json"))[0]
    assert res["retried"] == broken and res["failed"] == 0 and res["upserted"] == _objects(registry) - broken
    assert "not an image" in res["errors"][0] or "cannot identify" in res["errors"][0]
    # Backoff: the rows wait; a sync right away does not touch them.
    assert _json(cli.invoke("embed", "sync", "--project", "p", "--json"))[0]["retried"] == 0
    with registry.session() as s:
        s.execute(update(EmbeddingOutbox).values(next_attempt_at=None))
    res = _json(cli.invoke("embed", "sync", "--project", "p", "--max-tries", "2", "--json"))[0]
    assert res["failed"] == broken
    st = _status(cli)["vis/object"]
    assert (st["failed"], st["pending"]) == (broken, 0)
    assert st["problems"][0]["tries"] == 2 and st["problems"][0]["status"] == "failed"
    # Fixed file, failed rows back in the queue: everything syncs.
    shutil.copy(demo_data / "images" / Path(uri).relative_to(images), uri)
    res = _json(cli.invoke("embed", "sync", "--project", "p", "--retry-failed", "--json"))[0]
    assert res["upserted"] == broken
    assert _status(cli)["vis/object"]["chroma_count"] == _objects(registry)


def test_unreachable_chroma_leaves_the_registry_and_outbox_alone(registry: Registry, cli: Any, demo_data: Path,
                                                                 onnx_encoder: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    assert cli.invoke("init", "--project", "p").exit_code == 0
    _create(cli, onnx_encoder, level="object")
    monkeypatch.setenv("DSGEN_CHROMA_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    cli.env["DSGEN_CHROMA_URL"] = "http://127.0.0.1:9"
    # Imports never wait for Chroma: they succeed and the outbox grows.
    import_file(registry, demo_data / "annotations" / "instances_default.json", images=demo_data / "images")
    n = _objects(registry)
    proc = cli("embed", "sync", "--project", "p")
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach Chroma at http://127.0.0.1:9" in lines[0] and "Traceback" not in proc.stderr
    status = _json(cli.invoke("embed", "status", "--project", "p", "--json"))["versions"][0]
    assert status["pending"] == n and status["chroma_count"] is None and "cannot reach" in status["chroma_error"]
    with registry.session() as s:
        assert s.scalar(select(func.max(EmbeddingOutbox.retry_count))) == 0


def test_a_collection_of_another_encoder_is_refused(registry: Registry, cli: Any, demo_data: Path,
                                                    onnx_encoder: Path, onnx_encoder_24d: Path) -> None:
    import_file(registry, demo_data / "annotations" / "instances_default.json", images=demo_data / "images")
    _create(cli, onnx_encoder, level="object")
    _json(cli.invoke("embed", "sync", "--project", "p", "--json"))
    # The same name in another registry (another project) or after a mix-up: another encoder made it.
    with registry.session() as s:
        ev = get_version(s, get_project(s, "p"), "vis", level="object")
        s.execute(update(type(ev)).where(type(ev).id == ev.id).values(fingerprint="0" * 64))
        s.execute(update(EmbeddingOutbox).values(status="pending"))
    res = cli.invoke("embed", "sync", "--project", "p", catch_exceptions=True)
    assert res.exit_code == 2
    assert "was made by another encoder" in res.output and "objects_visual_vis" in res.output
    with registry.session() as s:  # pending rows stay pending
        assert s.scalar(select(func.count()).select_from(EmbeddingOutbox).where(
            EmbeddingOutbox.status == "pending")) == _objects(registry)


def test_changed_weights_file_is_refused(registry: Registry, cli: Any, demo_data: Path, onnx_encoder: Path,
                                         onnx_encoder_24d: Path, tmp_path: Path) -> None:
    weights = tmp_path / "enc.onnx"
    shutil.copy(onnx_encoder, weights)
    import_file(registry, demo_data / "annotations" / "instances_default.json", images=demo_data / "images")
    _create(cli, weights, level="object")
    shutil.copy(onnx_encoder_24d, weights)  # the file the version names now holds another (24-d) encoder
    res = cli.invoke("embed", "sync", "--project", "p", catch_exceptions=True)
    assert res.exit_code == 2, res.output
    assert str(weights) in res.output and "sha256" in res.output
    assert _status(cli)["vis/object"]["pending"] == _objects(registry)
    missing = cli.invoke("embed", "create", "x", "--project", "p", "--encoder", "onnx", "--weights",
                         tmp_path / "nope.onnx", catch_exceptions=True)
    assert missing.exit_code == 2 and "nope.onnx" in missing.output


def test_a_fact_that_goes_away_leaves_chroma_too(registry: Registry, cli: Any, demo_data: Path,
                                                 onnx_encoder: Path) -> None:
    """Chroma merges an upsert's metadata into the record's: a score set and then removed must not stay."""
    from dsgen_core.embeddings.versions import queue_all

    import_file(registry, demo_data / "annotations" / "instances_default.json", images=demo_data / "images")
    _create(cli, onnx_encoder, level="object")
    _json(cli.invoke("embed", "sync", "--project", "p", "--json"))
    store = open_store(registry.settings)
    with registry.session() as s:
        ev = get_version(s, get_project(s, "p"), "vis", level="object")
        oid = s.scalar(select(func.min(Annotation.id)).where(Annotation.bbox_w.is_not(None)))
    assert oid is not None
    for value in (0.75, None):
        with registry.session() as s:  # a writer that sets, then removes, the score and queues the object
            s.execute(update(Annotation).where(Annotation.id == oid).values(confidence=value))
            queue_all(s, get_project(s, "p"), ev, ids=[oid])
        _json(cli.invoke("embed", "sync", "--project", "p", "--json"))
        meta = store.get(store.collection(ev), [oid])[oid][1]
        assert meta.get("confidence") == value
    assert _json(cli.invoke("embed", "reconcile", "--project", "p", "--json"))[0]["in_step"] is True
    none = _json(cli.invoke("similar", oid, "--project", "p", "--query", "confidence>0.5", "--json"))
    assert none["hits"] == []


def test_objects_imported_before_their_image_files_are_embedded_when_the_files_come(
        registry: Registry, cli: Any, demo_data: Path, onnx_encoder: Path) -> None:
    ann = demo_data / "annotations" / "instances_default.json"
    import_file(registry, ann)  # annotations only: the images are referenced, no file yet
    made = _create(cli, onnx_encoder)
    assert {m["level"]: m["queued"] for m in made} == {"object": 0, "image": 0}  # nothing to embed yet
    import_file(registry, demo_data / "annotations" / "instances_default.json", images=demo_data / "images")
    res = {r["level"]: r for r in _json(cli.invoke("embed", "sync", "--project", "p", "--json"))}
    assert res["object"]["upserted"] == _objects(registry) and res["image"]["upserted"] == 16
    assert res["object"]["failed"] == res["object"]["retried"] == 0
    st = _status(cli)
    assert st["vis/object"]["chroma_count"] == st["vis/object"]["registry_count"] == _objects(registry)
    assert st["vis/image"]["failed"] == 0


def test_reconcile_keeps_what_a_concurrent_sync_added(registry: Registry, cli: Any, demo_data: Path,
                                                      onnx_encoder: Path, tmp_path: Path) -> None:
    """An import and a sync land while reconcile reads Chroma: their records are not taken for extras."""
    from dsgen_core.embeddings import sync as sync_mod
    from dsgen_core.embeddings.store import VectorStore

    ann = demo_data / "annotations" / "instances_default.json"
    data = json.loads(ann.read_text())
    first_img = data["images"][0]
    first = tmp_path / "first.json"
    first.write_text(json.dumps({**data, "images": [i for i in data["images"] if i["id"] != first_img["id"]],
                                 "annotations": [a for a in data["annotations"] if a["image_id"] != first_img["id"]]}))
    import_file(registry, first, images=demo_data / "images")
    _create(cli, onnx_encoder, level="object")
    _json(cli.invoke("embed", "sync", "--project", "p", "--json"))
    store = open_store(registry.settings)

    class Busy(VectorStore):
        def scan(self, col: Any, **kw: Any) -> Any:
            import_file(registry, ann, images=demo_data / "images")  # the rest arrives and is synced meanwhile
            _json(cli.invoke("embed", "sync", "--project", "p", "--json"))
            yield from super().scan(col, **kw)

    with registry.session() as s:
        vid = get_version(s, get_project(s, "p"), "vis", level="object").id
    res = sync_mod.reconcile_version(registry, "p", vid, store=Busy(store.client, store.where))
    assert res.deleted == 0
    assert sorted(_chroma_ids(registry)) == sorted(_all_boxed(registry))


def _all_boxed(reg: Registry) -> list[int]:
    with reg.session() as s:
        return list(s.scalars(select(Annotation.id).where(Annotation.bbox_w.is_not(None))))


def test_one_sync_of_a_version_at_a_time(registry: Registry, cli: Any, demo_data: Path, onnx_encoder: Path) -> None:
    """A second sync waits for the first (two at once could write older facts over newer ones)."""
    import threading

    from dsgen_core.embeddings import sync as sync_mod

    import_file(registry, demo_data / "annotations" / "instances_default.json", images=demo_data / "images")
    _create(cli, onnx_encoder, level="object")
    with registry.session() as s:
        vid = get_version(s, get_project(s, "p"), "vis", level="object").id
    store = open_store(registry.settings)
    storage_root = registry.settings.storage_root
    from dsgen_core.storage import open_storage

    results: list[Any] = []

    def run() -> None:
        results.append(sync_mod.sync_version(registry, "p", vid, store=store, embedder=sync_mod.encoder_factory(
            registry, vid, open_storage(storage_root))))

    with sync_mod._version_lock(registry, vid):  # another sync holds the version
        worker = threading.Thread(target=run)
        worker.start()
        worker.join(timeout=3)
        assert worker.is_alive() and not results  # waiting, nothing written
        assert _status(cli)["vis/object"]["synced"] == 0
    worker.join(timeout=120)
    assert results and results[0].upserted == _objects(registry)
