"""Track ids are numbered per source: two CVAT exports that both start at track 0 make two tracks.

Before tracks were scoped by their source (migration 0005), the second file's track 0 joined the
first file's, mixing two physical objects into one track.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from dsgen_core.registry.db import Registry
from dsgen_core.registry.schema import Annotation, Track
from support import import_file


def _export(path: Path, prefix: str) -> Path:
    """Three frames of one object, CVAT track 0, like every CVAT task's first track."""
    doc: dict[str, Any] = {
        "categories": [{"id": 1, "name": "car", "supercategory": ""}],
        "images": [{"id": i + 1, "file_name": f"{prefix}/frame_{i:06d}.jpg", "width": 64, "height": 48}
                   for i in range(3)],
        "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [4.0 + i, 4.0, 10.0, 10.0],
                         "area": 100.0, "iscrowd": 0, "segmentation": [],
                         "attributes": {"occluded": False, "track_id": 0, "keyframe": i == 0}}
                        for i in range(3)],
    }
    path.write_bytes(orjson.dumps(doc))
    return path


def _tracks(registry: Registry) -> list[tuple[str, int, int | None, int | None]]:
    with registry.session() as s:
        return [(t.external_id, t.object_count, t.start_frame, t.end_frame)
                for t in s.scalars(select(Track).order_by(Track.id))]


def test_two_files_numbering_tracks_from_zero_make_two_tracks(registry: Registry, tmp_path: Path) -> None:
    a = _export(tmp_path / "task_a.json", "task_a")
    b = _export(tmp_path / "task_b.json", "task_b")
    assert import_file(registry, a).summary()["tracks"] == 1
    assert import_file(registry, b).summary()["tracks"] == 1
    tracks = _tracks(registry)
    assert tracks == [("0", 3, 0, 2), ("0", 3, 0, 2)]
    with registry.session() as s:
        assert s.scalars(select(Track.scope).order_by(Track.id)).all() == [str(a.resolve()), str(b.resolve())]
        by_track: dict[int | None, set[str]] = {}
        for track_id, key in s.execute(select(Annotation.track_id, Annotation.source_key)):
            by_track.setdefault(track_id, set()).add(key)
        assert len(by_track) == 2 and None not in by_track

    # The same file again changes nothing: no new track, no member counted twice.
    again = import_file(registry, a).summary()
    assert (again["tracks"], again["annotations"]) == (0, 0)
    assert _tracks(registry) == tracks
