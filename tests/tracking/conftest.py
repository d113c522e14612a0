"""Small videos and demo sequences, made by the tests that need them (nothing is downloaded)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.formats.report import ValidationReport
from dsgen_core.registry.db import Registry
from dsgen_core.registry.ingest import ClassRecord, ImageRecord, IngestBatch, ObjectRecord, ingest
from dsgen_core.registry.projects import ensure_project
from dsgen_core.registry.schema import Annotation, Asset
from dsgen_core.storage import open_storage
from videos import CODEC, make_video

__all__ = ["CODEC", "make_video"]

@pytest.fixture
def video(tmp_path: Path) -> Path:
    return make_video(tmp_path / "clips" / "street.mp4")


# --------------------------------------------------------------------------- objects in frames


def box_record(position: int, image: Any, cls: str, box: tuple[float, float, float, float],
               attributes: dict[str, Any] | None = None) -> ObjectRecord:
    return ObjectRecord(position, position, image, cls, "bbox", box, None, None, None, None, None, box[2] * box[3],
                        False, attributes, None, None)


def ingest_objects(registry: Registry, project: str, images: Sequence[str],
                   objects: Sequence[tuple[str, str, tuple[float, float, float, float]]], *,
                   asset_ids: dict[str, int] | None = None, source: str = "mem") -> list[int]:
    """Objects (image name, class, box) on images named ``images`` (or on existing assets); their ids in order."""
    storage = open_storage(registry.settings.storage_root)
    classes = sorted({c for _i, c, _b in objects})
    if asset_ids is None:
        recs = [ImageRecord(n, n, n, 640, 480) for n in images]
    else:
        recs = [ImageRecord(n, "", "", asset_id=asset_ids[n]) for n in images]
    batch = IngestBatch(operation="import", audit_action="import.test", format="test", source_uri=source,
                        content_sha256=source.ljust(64, "0")[:64], namespace="t", images=recs,
                        classes=[ClassRecord(c, c) for c in classes],
                        objects=[box_record(i, im, c, b) for i, (im, c, b) in enumerate(objects)],
                        report=ValidationReport(), file=source)
    with registry.session() as s:
        p = ensure_project(s, project)
        r = ingest(s, p, batch, storage=storage, actor="test")
        assert r.objects_new == len(objects)
        rows = s.execute(select(Annotation.id, Annotation.source_key).join(Asset).where(
            Asset.project_id == p.id, Annotation.import_batch_id == r.batch_id)).all()
    by_key = {k: i for i, k in rows}
    return [by_key[f"t:{i}"] for i in range(len(objects))]


@dataclass(frozen=True)
class Demo:
    root: Path
    annotations: Path  # with CVAT track ids
    untracked: Path  # the same objects with the track ids taken out
    images: Path
    n_tracks: int
    n_tracked: int


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """Six short sequences of eight frames (no still images): 48 images, every object in a track."""
    ds = generate_demo_dataset(tmp_path_factory.mktemp("demo"), n_images=48, n_sequences=6, seed=0)
    doc = orjson.loads(ds.annotations_path.read_bytes())
    for a in doc["annotations"]:
        for k in ("track_id", "keyframe"):
            a["attributes"].pop(k, None)
    untracked = ds.annotations_path.with_name("untracked.json")
    untracked.write_bytes(orjson.dumps(doc))
    return Demo(ds.root, ds.annotations_path, untracked, ds.images_dir, ds.n_tracks, ds.n_track_annotations)
