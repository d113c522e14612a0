"""``tracks link`` with the synced vectors of a real embedding version (ONNX encoder, embedded Chroma)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from dsgen_core.embeddings.search import object_vectors
from dsgen_core.embeddings.store import open_store
from dsgen_core.query import run_query
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Track
from dsgen_core.storage import open_storage
from dsgen_core.tracking import link_quality
from dsgen_core.tracking.vectors import histogram_vectors, joined
from support import import_file


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return orjson.loads(result.output.strip().splitlines()[-1])


def test_link_reads_the_synced_vectors(registry: Registry, cli: Any, demo_data: Path, onnx_encoder: Path) -> None:
    import_file(registry, demo_data / "annotations" / "instances_default.json", images=demo_data / "images")
    _json(cli.invoke("embed", "create", "vis", "--project", "p", "--encoder", "onnx", "--weights", onnx_encoder,
                     "--level", "object", "--json"))
    _json(cli.invoke("embed", "sync", "--project", "p", "--json"))
    with registry.session() as s:
        project = get_project(s, "p")
        tracked = run_query(s, project, "file:seq_ has:track", level="object")
        store = open_store(registry.settings)
        vecs = object_vectors(s, project, tracked, store=store)
        assert set(vecs) == set(tracked) and {v.shape for v in vecs.values()} == {(16,)}
        storage = open_storage(registry.settings.storage_root)
        both = joined(lambda ids: object_vectors(s, project, ids, store=store),
                      lambda ids: histogram_vectors(s, project, storage, ids))(tracked)
        assert {v.shape for v in both.values()} == {(16 + 24,)}
        # The demo's true tracks, withheld and recovered: every object in its own track.
        quality = link_quality(s, project, "file:seq_", vectors=lambda ids: object_vectors(s, project, ids, store=store))
        assert quality.score.accuracy == 1.0
        humans = s.scalar(select(func.count()).select_from(Track))

    res = _json(cli.invoke("tracks", "link", "--query", "file:seq_", "--project", "p", "--json"))
    assert res["vectors"] == "vis+histogram" and res["objects_with_vectors"] == res["objects_linkable"] > 0
    # It found exactly the human tracks, which are not proposed again.
    assert (res["tracks"], res["skipped_existing"]) == (0, humans)
    with registry.session() as s:
        assert s.scalar(select(func.count()).select_from(Track).where(Track.origin == "model")) == 0
