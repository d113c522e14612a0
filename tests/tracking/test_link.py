"""``tracks link``: proposals from overlap (and vectors) on demo sequences and video frames; review in bulk; quality."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from sqlalchemy import func, select

from dsgen_core.formats.coco.importer import local_sources_dir
from dsgen_core.formats.video import import_video
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import ensure_project, get_project
from dsgen_core.registry.schema import Annotation, Asset, AuditLog, EmbeddingVersion, Frame, Track, TrackMember
from dsgen_core.storage import open_storage
from dsgen_core.tracking import (
    LinkParams,
    create_track,
    histogram_vectors,
    link_quality,
    list_tracks,
    propose_tracks,
    review_tracks,
)
from dsgen_core.tracking.vectors import crop_histogram
from support import import_file

from .conftest import Demo, ingest_objects, make_video

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _json(out: Any) -> Any:
    assert out.exit_code == 0, out.output
    return orjson.loads(out.stdout)


def _count(registry: Registry, table: Any, *where: Any) -> int:
    with registry.session() as s:
        return s.scalar(select(func.count()).select_from(table).where(*where)) or 0


def test_link_proposes_the_demo_tracks_and_review_applies_them_in_bulk(cli: Any, registry: Registry,
                                                                        demo: Demo) -> None:
    import_file(registry, demo.untracked, images=demo.images, project="p")
    assert _count(registry, Annotation, Annotation.track_id.is_not(None)) == 0
    link = _json(cli.invoke("tracks", "link", "--query", "file:seq_", "--project", "p", "--embedding", "none",
                            "--run-id", "r1", "--json"))
    assert (link["scope"], link["vectors"], link["objects"]) == ("link:r1", "none", demo.n_tracked)
    assert link["sequences"] == 6 and link["tracks"] == demo.n_tracks and link["objects_in_tracks"] == demo.n_tracked
    listed = _json(cli.invoke("tracks", "list", "--project", "p", "--status", "proposed", "--json"))
    assert len(listed) == demo.n_tracks and {t["origin"] for t in listed} == {"model"}
    assert all(0.3 <= t["score"] <= 1 for t in listed)
    # Proposals are apart from the truth: no object points at one yet.
    assert _count(registry, Annotation, Annotation.track_id.is_not(None)) == 0

    # Reject the proposals of one sequence (every member must match the query) and the weakest other one.
    seq0 = _json(cli.invoke("tracks", "reject", "--proposed", "--project", "p", "--query", "file:seq_00", "--json"))
    assert seq0["tracks"] and len(seq0["tracks"]) < demo.n_tracks
    rest = [t for t in listed if t["id"] not in seq0["tracks"]]
    weakest = min(rest, key=lambda t: t["score"])
    _json(cli.invoke("tracks", "reject", "--ids", weakest["id"], "--project", "p", "--json"))
    rejected = _json(cli.invoke("tracks", "list", "--status", "rejected", "--members", "--project", "p", "--json"))
    assert len(rejected) == len(seq0["tracks"]) + 1
    with registry.session() as s:
        files = s.scalars(select(Asset.file_name).join(Annotation).where(
            Annotation.id.in_([m for t in rejected if t["id"] in seq0["tracks"] for m in t["members"]]))).all()
        assert {f.split("/")[0] for f in files} == {"seq_00"}

    # A fresh run replaces what awaits review and proposes nothing it was told no to.
    again = _json(cli.invoke("tracks", "link", "--query", "file:seq_", "--project", "p", "--embedding", "none",
                             "--run-id", "r2", "--json"))
    pending = demo.n_tracks - len(rejected)
    assert (again["tracks"], again["replaced"], again["skipped_rejected"]) == (pending, pending, len(rejected))

    accepted = _json(cli.invoke("tracks", "accept", "--proposed", "--project", "p", "--min-score", "0.3", "--json"))
    in_rejected = sum(t["object_count"] for t in rejected)
    assert len(accepted["tracks"]) == pending
    assert (accepted["objects_assigned"], accepted["objects_kept"]) == (demo.n_tracked - in_rejected, 0)
    has_track = _json(cli.invoke("query", "has:track", "--objects", "--count", "--project", "p", "--json"))
    assert has_track["count"] == demo.n_tracked - in_rejected
    with registry.session() as s:
        statuses = dict(s.execute(select(Track.status, func.count()).group_by(Track.status)).all())
        assert statuses == {"accepted": pending, "rejected": len(rejected)}
        actions = set(s.scalars(select(AuditLog.action).where(AuditLog.action.like("tracks.%"))))
        assert actions == {"tracks.link", "tracks.accept", "tracks.reject"}

    # Nothing left to review; accepting again changes nothing, and reviewing a decided track is refused.
    assert _json(cli.invoke("tracks", "accept", "--proposed", "--project", "p", "--json"))["tracks"] == []
    decided = cli.invoke("tracks", "accept", "--ids", rejected[0]["id"], "--project", "p", catch_exceptions=True)
    assert decided.exit_code == 2 and "not proposals awaiting review" in decided.stderr
    both = cli.invoke("tracks", "accept", "--project", "p", catch_exceptions=True)
    assert both.exit_code == 2 and "give --proposed" in both.stderr


@SQLITE_ONLY
def test_accept_leaves_human_tracks_alone_and_relinking_replaces_pending_proposals(registry: Registry,
                                                                                   demo: Demo) -> None:
    import_file(registry, demo.untracked, images=demo.images, project="p")
    with registry.session() as s:
        p = get_project(s, "p")
        first = propose_tracks(s, p, "file:seq_00", run_id="a")
        second = propose_tracks(s, p, "file:seq_", run_id="b")
        assert second.replaced == first.tracks and second.tracks == demo.n_tracks
        longest = max(list_tracks(s, p, with_members=True), key=lambda t: t.object_count)
        human = create_track(s, p, longest.members[:2], actor="test")  # someone tracked its first two frames
    with registry.session() as s:
        review = review_tracks(s, get_project(s, "p"), "accept", min_score=0.0)
    assert len(review.tracks) == demo.n_tracks
    assert (review.objects_assigned, review.objects_kept) == (demo.n_tracked - 2, 2)
    with registry.session() as s:
        pointing = dict(s.execute(select(Annotation.id, Annotation.track_id).where(
            Annotation.id.in_(longest.members))).all())
        assert [pointing[m] for m in longest.members] == [human.id] * 2 + [longest.id] * (len(longest.members) - 2)
        # What is accepted is not proposed again.
        third = propose_tracks(s, get_project(s, "p"), "file:seq_", run_id="c")
    assert (third.tracks, third.skipped_existing, third.replaced) == (0, demo.n_tracks, 0)


@SQLITE_ONLY
def test_quality_on_demo_sequences(registry: Registry, demo: Demo) -> None:
    """Overlap alone recovers every track of consecutive frames; with every 5th frame only, the
    objects move too far for overlap and the colour histograms carry the links."""
    import_file(registry, demo.annotations, images=demo.images, project="p")
    storage = open_storage(registry.settings.storage_root)
    with registry.session() as s:
        p = get_project(s, "p")
        dense = link_quality(s, p)
        assert dense.score.objects == demo.n_tracked and dense.score.true_tracks == demo.n_tracks
        assert (dense.score.accuracy, dense.score.exact, dense.score.proposed_tracks) == (1.0, demo.n_tracks,
                                                                                          demo.n_tracks)
        sparse = link_quality(s, p, stride=5)
        hist = link_quality(s, p, stride=5, vectors=lambda ids: histogram_vectors(s, p, storage, ids))
        greedy = link_quality(s, p, stride=5, vectors=lambda ids: histogram_vectors(s, p, storage, ids),
                              params=LinkParams(matching="greedy"))
    assert sparse.score.accuracy < 0.95 and sparse.score.split > 0
    assert hist.score.accuracy >= 0.95 and hist.score.accuracy > sparse.score.accuracy
    assert greedy.score.accuracy >= 0.95


@SQLITE_ONLY
def test_link_on_video_frames(registry: Registry, tmp_path: Path) -> None:
    """Boxes following the video's two squares, on its frame images: two tracks, numbered by frame index."""
    storage = open_storage(registry.settings.storage_root)
    video = make_video(tmp_path / "street.mp4", 30)
    with registry.session(bulk=True) as s:
        r = import_video(s, ensure_project(s, "p"), video, storage=storage,
                         sources_dir=local_sources_dir(storage, registry.settings.home), every=3)
    with registry.session() as s:
        frames = s.execute(select(Frame.frame_idx, Frame.image_asset_id, Asset.file_name)
                           .join(Asset, Asset.id == Frame.image_asset_id).order_by(Frame.frame_idx)).all()
    assert len(frames) == 10
    objects = []
    for i, _image, name in frames:
        x = i % 54
        objects.append((name, "car", (float(x), 8.0, 10.0, 10.0)))
        objects.append((name, "car", (float(52 - x // 2), float(min(38, 20 + i // 4)), 10.0, 10.0)))
    ingest_objects(registry, "p", [f.file_name for f in frames], objects,
                   asset_ids={f.file_name: f.image_asset_id for f in frames})
    with registry.session() as s:
        p = get_project(s, "p")
        result = propose_tracks(s, p, "", vectors=lambda ids: histogram_vectors(s, p, storage, ids),
                                vectors_name="histogram")
        tracks = s.scalars(select(Track).where(Track.id.in_(result.track_ids)).order_by(Track.id)).all()
        assert [(t.source_asset_id, t.start_frame, t.end_frame, t.object_count) for t in tracks] == \
            [(r.video_asset_id, 0, 27, 10)] * 2
        assert result.sequences == 1 and result.vectors == "histogram"
        red = s.scalars(select(TrackMember.annotation_id).where(TrackMember.track_id == tracks[0].id)
                        .order_by(TrackMember.sequence_idx)).all()
        xs = [s.scalar(select(Annotation.bbox_x).where(Annotation.id == a)) for a in red]
    assert xs == sorted(xs) or xs == sorted(xs, reverse=True)  # one square, followed frame to frame


@SQLITE_ONLY
def test_embedding_option(cli: Any, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"b/f_{i:04d}.jpg" for i in range(3)]
    ingest_objects(registry, "p", names, [(n, "car", (10.0 + i, 10.0, 20.0, 20.0)) for i, n in enumerate(names)])

    def link(*args: Any) -> Any:
        return cli.invoke("tracks", "link", "--query", "", "--project", "p", "--json", *args, catch_exceptions=True)

    assert _json(link())["vectors"] == "none"  # no embedding version: overlap and class
    hist = _json(link("--embedding", "histogram"))  # the images are not on disk: no vector, overlap alone
    assert (hist["vectors"], hist["objects_with_vectors"], hist["tracks"]) == ("histogram", 0, 1)
    unknown = link("--embedding", "clip_v9")
    assert unknown.exit_code == 2 and unknown.stderr.strip().startswith(
        "error: no object-level embedding version 'clip_v9' for project 'p'")
    with registry.session() as s:
        s.add(EmbeddingVersion(project_id=ensure_project(s, "p").id, name="obj_v1", model_name="m", dimension=4))

    # An object-level version is the default; nothing synced yet (and no image on disk): no vector, overlap alone.
    # The real vectors at work: tests/embeddings/test_link_embeddings.py.
    pending = _json(link())
    assert (pending["vectors"], pending["objects_with_vectors"], pending["tracks"]) == ("obj_v1+histogram", 0, 1)
    assert _json(link("--no-colour"))["vectors"] == "obj_v1"


def test_histogram_of_a_crop() -> None:
    pixels = np.zeros((20, 20, 3), np.uint8)
    pixels[5:15, 5:15] = (250, 10, 130)
    vec = crop_histogram(pixels, (5.0, 5.0, 10.0, 10.0))
    assert vec is not None and vec.shape == (24,)
    assert vec[7] == 1.0 and vec[8] == 1.0 and vec[16 + 4] == 1.0  # R in the top bin, G the bottom, B the middle
    assert crop_histogram(pixels, (30.0, 30.0, 5.0, 5.0)) is None
