"""Tracks made by hand, listed, and the review of proposed ones (accept or reject, one by one or in bulk).

A track is one physical object followed across frames. Human tracks (CVAT imports, ``create_track``)
are the truth: an object belongs to at most one accepted track, which ``Annotation.track_id``
names. Model-made tracks (``tracks link``) are proposals kept apart from them: their members are
listed (``track_members``) but no object points at a proposal until it is accepted, and an
accepted proposal never takes an object from a track it is already in. A rejected proposal stays,
with its members, as the record of what was said no to (``link`` does not propose it again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, delete, exists, func, select, update
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError
from dsgen_core.query import compile_query, statement_timeout
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.schema import Annotation, LabelClass, Project, Track, TrackMember
from dsgen_core.tracking.objects import ID_CHUNK, TrackedObject, load_objects

Origin = Literal["human", "model"]
Decision = Literal["accept", "reject"]
MANUAL_SCOPE = "manual"


@dataclass(frozen=True)
class TrackInfo:
    id: int
    scope: str
    external_id: str
    origin: str
    status: str
    score: float | None
    label_class: str | None
    start_frame: int | None
    end_frame: int | None
    object_count: int
    source_asset_id: int | None
    members: tuple[int, ...] = ()  # annotation ids in track order, when asked for

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReviewResult:
    decision: Decision
    tracks: list[int]  # the tracks accepted or rejected
    objects_assigned: int = 0  # accept: objects that now point at an accepted proposal
    objects_kept: int = 0  # accept: members left in the track they were already in

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Members:
    """Members of a new track, in order, and what the track says about them."""

    ordered: list[TrackedObject] = field(default_factory=list)
    class_id: int | None = None
    start: int | None = None
    end: int | None = None
    source_asset_id: int | None = None


# --------------------------------------------------------------------------- create


def create_track(session: Session, project: Project, object_ids: Sequence[int], *, scope: str = MANUAL_SCOPE,
                 external_id: str | None = None, origin: Origin = "human", score: float | None = None,
                 move: bool = False, actor: str | None = None) -> TrackInfo:
    """One track of ``object_ids``: the same object seen in several frames (or images).

    Members are ordered by frame number (video frame index, or the number ending the file name),
    then file name; the track's class is theirs (all must share it), its start and end frame the
    first and last member's. A human track is accepted at once and its objects point at it; a
    model track is a proposal. Refused: objects of another project, missing ones, two objects of
    one image, and objects already in an accepted track unless ``move`` (they leave that track).
    """
    if origin not in ("human", "model"):
        raise DsgenError(f"origin must be human or model, not {origin!r}")
    # A proposal takes no object from its track, so only a human track must ask before moving one.
    members = _members(session, project, object_ids, refuse_tracked=origin == "human" and not move)
    ext = external_id if external_id is not None else _next_external_id(session, project, scope)
    if session.scalar(select(Track.id).where(Track.project_id == project.id, Track.scope == scope,
                                             Track.external_id == ext)) is not None:
        raise DsgenError(f"track {ext!r} already exists in scope {scope!r} of project {project.name!r}")
    status = "accepted" if origin == "human" else "proposed"
    if move and status == "accepted":
        _leave_tracks(session, [o.id for o in members.ordered if o.track_id is not None])
    track = Track(project_id=project.id, scope=scope, external_id=ext, source_asset_id=members.source_asset_id,
                  label_class_id=members.class_id, start_frame=members.start, end_frame=members.end,
                  object_count=len(members.ordered), origin=origin, status=status, score=score)
    session.add(track)
    session.flush()
    session.add_all(TrackMember(track_id=track.id, annotation_id=o.id, sequence_idx=i)
                    for i, o in enumerate(members.ordered))
    ids = [o.id for o in members.ordered]
    if status == "accepted":
        for i in range(0, len(ids), ID_CHUNK):
            session.execute(update(Annotation).where(Annotation.id.in_(ids[i:i + ID_CHUNK])).values(track_id=track.id))
    session.flush()
    audit(session, "tracks.create", project_id=project.id, entity_type="track", entity_ids=[track.id],
          detail={"scope": scope, "external_id": ext, "origin": origin, "objects": ids, "moved": move}, actor=actor)
    record_change(session, project_id=project.id, entity="tracks", op="create", entity_id=track.id, count=1,
                  detail={"objects": len(ids)})
    return _info(session, track, members=tuple(ids))


def order_key(o: TrackedObject) -> tuple[int, str, int]:
    """How a track orders its members: frame number, then file name (objects of no sequence come first)."""
    return (o.frame if o.frame is not None else -1, o.file_name, o.id)


def _members(session: Session, project: Project, object_ids: Sequence[int], *, refuse_tracked: bool) -> _Members:
    ids = list(dict.fromkeys(object_ids))
    if len(ids) < 1:
        raise DsgenError("a track needs at least one object")
    found = load_objects(session, ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise DsgenError(f"no object with id {_ids(missing)}")
    foreign = [i for i in ids if found[i].project_id != project.id]
    if foreign:
        raise DsgenError(f"objects {_ids(foreign)} are not objects of project {project.name!r}")
    objs = sorted(found.values(), key=order_key)
    classes = {o.class_id for o in objs}
    if len(classes) > 1:
        names = dict(session.execute(select(LabelClass.id, LabelClass.key).where(
            LabelClass.id.in_([c for c in classes if c is not None]))).all())
        listed = ", ".join(f"{o.id} ({names.get(o.class_id, 'no class') if o.class_id is not None else 'no class'})"
                           for o in objs[:6])
        raise DsgenError(f"objects of different classes cannot be one track (a track follows one object): {listed}")
    by_image: dict[int, int] = {}
    for o in objs:
        if o.asset_id in by_image:
            raise DsgenError(f"objects {by_image[o.asset_id]} and {o.id} are in the same image (asset {o.asset_id}): "
                             "a track holds one object per frame")
        by_image[o.asset_id] = o.id
    if refuse_tracked:
        tracked = [o for o in objs if o.track_id is not None]
        if tracked:
            listed = ", ".join(f"{o.id} (track {o.track_id})" for o in tracked[:6])
            raise DsgenError(f"objects already in an accepted track: {listed}; pass move to take them out of it")
    frames = [o.frame for o in objs if o.frame is not None]
    videos = {o.video_asset_id for o in objs}
    video = next(iter(videos)) if len(videos) == 1 else None
    return _Members(objs, objs[0].class_id, min(frames) if frames else None, max(frames) if frames else None, video)


def _leave_tracks(session: Session, ids: list[int]) -> None:
    """Take objects out of the accepted tracks they are in; those tracks' counts and frames follow."""
    if not ids:
        return
    old = set(session.scalars(select(Annotation.track_id).where(Annotation.id.in_(ids), Annotation.track_id.is_not(None))))
    session.execute(delete(TrackMember).where(TrackMember.track_id.in_(old), TrackMember.annotation_id.in_(ids)))
    session.execute(update(Annotation).where(Annotation.id.in_(ids)).values(track_id=None))
    for track in session.scalars(select(Track).where(Track.id.in_(old))):
        rest = [m for (m,) in session.execute(select(TrackMember.annotation_id).where(TrackMember.track_id == track.id))]
        objs = load_objects(session, rest)
        frames = [o.frame for o in objs.values() if o.frame is not None]
        track.object_count = len(rest)
        track.start_frame, track.end_frame = (min(frames), max(frames)) if frames else (None, None)
    session.flush()


def _next_external_id(session: Session, project: Project, scope: str) -> str:
    taken = session.scalars(select(Track.external_id).where(Track.project_id == project.id, Track.scope == scope))
    numbers = [int(e) for e in taken if e.isdigit()]
    return str(max(numbers) + 1 if numbers else 0)


# --------------------------------------------------------------------------- list


def list_tracks(session: Session, project: Project, *, origin: str | None = None, status: str | None = None,
                scope: str | None = None, min_score: float | None = None, limit: int | None = None,
                with_members: bool = False) -> list[TrackInfo]:
    """The project's tracks, newest scope last (by id)."""
    stmt = select(Track).where(Track.project_id == project.id).order_by(Track.id).limit(limit)
    if origin is not None:
        stmt = stmt.where(Track.origin == origin)
    if status is not None:
        stmt = stmt.where(Track.status == status)
    if scope is not None:
        stmt = stmt.where(Track.scope == scope)
    if min_score is not None:
        stmt = stmt.where(Track.score >= min_score)
    tracks = list(session.scalars(stmt))
    classes = dict(session.execute(select(LabelClass.id, LabelClass.key).where(
        LabelClass.project_id == project.id)).all())
    members: dict[int, list[int]] = {}
    if with_members and tracks:
        ids = [t.id for t in tracks]
        for i in range(0, len(ids), ID_CHUNK):
            for tid, aid in session.execute(select(TrackMember.track_id, TrackMember.annotation_id).where(
                    TrackMember.track_id.in_(ids[i:i + ID_CHUNK])).order_by(TrackMember.track_id,
                                                                            TrackMember.sequence_idx)):
                members.setdefault(tid, []).append(aid)
    return [_info(session, t, classes, tuple(members.get(t.id, ()))) for t in tracks]


def _info(session: Session, t: Track, classes: dict[int, str] | None = None,
          members: tuple[int, ...] = ()) -> TrackInfo:
    if classes is None:
        key = None if t.label_class_id is None else session.scalar(
            select(LabelClass.key).where(LabelClass.id == t.label_class_id))
    else:
        key = classes.get(t.label_class_id) if t.label_class_id is not None else None
    return TrackInfo(t.id, t.scope, t.external_id, t.origin, t.status, t.score, key, t.start_frame, t.end_frame,
                     t.object_count, t.source_asset_id, members)


# --------------------------------------------------------------------------- review


def review_tracks(session: Session, project: Project, decision: Decision, *, track_ids: Sequence[int] | None = None,
                  min_score: float | None = None, query: str | None = None, actor: str | None = None) -> ReviewResult:
    """Accept or reject proposed tracks: those of ``track_ids``, or every proposal of the project with
    ``score >= min_score`` whose members all match ``query`` (object level).

    Accepting points each member at its track unless the member is in a track already (a human one,
    or a proposal accepted before): better-scored proposals go first. Rejecting keeps the track and
    its members with status ``rejected``.
    """
    if decision not in ("accept", "reject"):
        raise DsgenError(f"decision must be accept or reject, not {decision!r}")
    stmt = select(Track.id).where(Track.project_id == project.id, Track.status == "proposed")
    if track_ids is not None:
        wanted = list(dict.fromkeys(track_ids))
        found = set(session.scalars(select(Track.id).where(Track.project_id == project.id, Track.id.in_(wanted))))
        if set(wanted) - found:
            raise DsgenError(f"no track with id {_ids(sorted(set(wanted) - found))} in project {project.name!r}")
        stmt = stmt.where(Track.id.in_(wanted))
        done = sorted(found - set(session.scalars(stmt)))
        if done:
            raise DsgenError(f"tracks {_ids(done)} are not proposals awaiting review (accepted or rejected already)")
    if min_score is not None:
        stmt = stmt.where(Track.score >= min_score)
    if query is not None:
        selected = compile_query(query, project_id=project.id, level="object", session=session)
        outside = exists().where(TrackMember.track_id == Track.id, TrackMember.annotation_id.not_in(selected))
        stmt = stmt.where(~outside)
    with statement_timeout(session):
        ids = list(session.scalars(stmt.order_by(Track.score.desc(), Track.id)))
    assigned = kept = 0
    if decision == "accept":
        for tid in ids:
            members = select(TrackMember.annotation_id).where(TrackMember.track_id == tid)
            res = cast(CursorResult[Any], session.execute(update(Annotation).where(
                Annotation.id.in_(members), Annotation.track_id.is_(None)).values(track_id=tid)))
            n = session.scalar(select(func.count()).select_from(TrackMember).where(TrackMember.track_id == tid)) or 0
            assigned += res.rowcount
            kept += n - res.rowcount
    status = "accepted" if decision == "accept" else "rejected"
    for i in range(0, len(ids), ID_CHUNK):
        session.execute(update(Track).where(Track.id.in_(ids[i:i + ID_CHUNK])).values(status=status))
    detail: dict[str, Any] = {"tracks": len(ids), "min_score": min_score, "query": query}
    if decision == "accept":
        detail.update(objects_assigned=assigned, objects_kept=kept)
    audit(session, f"tracks.{decision}", project_id=project.id, entity_type="track", entity_ids=ids, detail=detail,
          actor=actor)
    if ids:
        record_change(session, project_id=project.id, entity="tracks", op=decision, count=len(ids), detail=detail)
    return ReviewResult(decision, ids, assigned, kept)


def _ids(ids: Sequence[int]) -> str:
    shown = ", ".join(map(str, ids[:10]))
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
