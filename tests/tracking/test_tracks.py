"""Tracks made by hand: order, class, frames, what is refused, moving objects between tracks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import select

from dsgen_core.errors import DsgenError
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import Annotation, AuditLog, ChangeEvent, Track, TrackMember
from dsgen_core.tracking import create_track, list_tracks

from .conftest import ingest_objects

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
FRAMES = [f"cam/frame_{i:06d}.jpg" for i in range(1, 5)]
BOX = (10.0, 10.0, 20.0, 20.0)


def _scene(registry: Registry) -> list[int]:
    """Four frames with a car each, a person in frame 2, and a car in another project."""
    ids = ingest_objects(registry, "p", FRAMES, [(FRAMES[3], "car", BOX), (FRAMES[0], "car", BOX),
                                                 (FRAMES[2], "car", BOX), (FRAMES[1], "car", BOX),
                                                 (FRAMES[1], "person", BOX)])
    return ids + ingest_objects(registry, "other", ["x.jpg"], [("x.jpg", "car", BOX)], source="other")


def test_create_track_orders_members_and_points_objects_at_it(registry: Registry) -> None:
    ids = _scene(registry)
    cars = ids[:4]
    with registry.session() as s:
        info = create_track(s, get_project(s, "p"), cars, actor="cli:ana")
    assert info.members == (ids[1], ids[3], ids[2], ids[0])  # frames 1, 2, 3, 4
    assert (info.scope, info.external_id, info.origin, info.status) == ("manual", "0", "human", "accepted")
    assert (info.label_class, info.start_frame, info.end_frame, info.object_count) == ("car", 1, 4, 4)
    with registry.session() as s:
        assert set(s.scalars(select(Annotation.track_id).where(Annotation.id.in_(cars)))) == {info.id}
        members = s.execute(select(TrackMember.annotation_id).where(TrackMember.track_id == info.id)
                            .order_by(TrackMember.sequence_idx)).scalars().all()
        assert tuple(members) == info.members
        audit = s.scalar(select(AuditLog).where(AuditLog.action == "tracks.create"))
        assert audit is not None and audit.actor == "cli:ana" and audit.entity_ids == [info.id]
        assert s.scalar(select(ChangeEvent.op).where(ChangeEvent.entity == "tracks")) == "create"
        listed = list_tracks(s, get_project(s, "p"), with_members=True)
        assert [t.members for t in listed] == [info.members]

    # Refused: already in an accepted track, unless moved; the old track then shrinks.
    with pytest.raises(DsgenError, match=rf"already in an accepted track: {ids[2]} \(track {info.id}\)"), \
            registry.session() as s:
        create_track(s, get_project(s, "p"), [ids[2], ids[0]])
    with registry.session() as s:
        moved = create_track(s, get_project(s, "p"), [ids[2], ids[0]], move=True)
        old = s.get(Track, info.id)
        assert old is not None and (old.object_count, old.start_frame, old.end_frame) == (2, 1, 2)
        assert moved.external_id == "1" and (moved.start_frame, moved.end_frame) == (3, 4)
        assert s.scalar(select(Annotation.track_id).where(Annotation.id == ids[0])) == moved.id


@SQLITE_ONLY
@pytest.mark.parametrize(("pick", "message"), [
    (lambda ids: [ids[1], ids[5]], "are not objects of project 'p'"),
    (lambda ids: [ids[1], 999_999], "no object with id 999999"),
    (lambda ids: [ids[3], ids[4]], "objects of different classes cannot be one track"),
    (lambda ids: [], "a track needs at least one object"),
])
def test_create_track_refuses(registry: Registry, pick: Any, message: str) -> None:
    ids = _scene(registry)
    with pytest.raises(DsgenError, match=message), registry.session() as s:
        create_track(s, get_project(s, "p"), pick(ids))
    with registry.session() as s:
        assert s.scalar(select(Track.id)) is None


@SQLITE_ONLY
def test_two_objects_of_one_image_are_refused(registry: Registry) -> None:
    ids = ingest_objects(registry, "p", FRAMES[:1], [(FRAMES[0], "car", BOX), (FRAMES[0], "car", (50, 50, 5, 5))])
    with pytest.raises(DsgenError, match="in the same image"), registry.session() as s:
        create_track(s, get_project(s, "p"), ids)


@SQLITE_ONLY
def test_cli_create_and_list(cli: Any, registry: Registry) -> None:
    ids = _scene(registry)
    out = cli.invoke("tracks", "create", f"{ids[0]},{ids[1]}", "--project", "p", "--external-id", "7", "--json")
    assert out.exit_code == 0, out.output
    assert orjson.loads(out.stdout)["external_id"] == "7"
    listed = cli.invoke("tracks", "list", "--project", "p")
    assert "manual/7\thuman\taccepted\t-\tcar\tframes 1-4\t2 objects" in listed.stdout
    bad = cli.invoke("tracks", "create", "1,x", "--project", "p", catch_exceptions=True)
    assert bad.exit_code == 2 and bad.stderr.strip() == "error: OBJECT_IDS must be comma-separated integers like 1,2,3, not '1,x'"
    again = cli.invoke("tracks", "create", f"{ids[2]},{ids[3]}", "--project", "p", "--external-id", "7",
                       catch_exceptions=True)
    assert again.exit_code == 2 and "track '7' already exists in scope 'manual'" in again.stderr
