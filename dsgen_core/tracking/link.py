"""Proposing tracks: the objects of consecutive frames linked into chains, one chain per physical object.

Within each sequence (a video's frames, or a burst of images, see :mod:`.objects`), the objects of
each frame are matched to those of the next frame that has any: a pair scores its boxes' overlap
(IoU) and, when a vector provider gives both objects a vector, the cosine similarity of their
vectors (``iou_weight`` weighs the two); pairs of different classes, pairs whose centres lie too
far apart for their size (``max_shift``) and pairs below ``min_score`` never link. The matching
is optimal per frame pair (Hungarian) or greedy. Links chain up into tracks; a chain of one object
is no track.

Proposals are written as model-made tracks (origin ``model``, status ``proposed``, ``score`` the
mean of their links) in a scope of their own (``link:<run>``), apart from human tracks: no object
points at a proposal until it is accepted (:func:`~dsgen_core.tracking.tracks.review_tracks`).
Running link again replaces the proposals still awaiting review on the same objects, never
proposes again a track that was rejected, and never proposes a track that exists already (the same
objects in an accepted track, human or not).

The linker itself (:func:`link_objects`) reads and writes nothing, so the quality measure
(:mod:`.quality`) runs exactly what ``tracks link`` runs.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any, Literal

import numpy as np
from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError
from dsgen_core.query import compile_query, statement_timeout
from dsgen_core.registry.changes import audit, record_change
from dsgen_core.registry.schema import Project, Track, TrackMember
from dsgen_core.tracking.assignment import greedy_matching, max_weight_matching
from dsgen_core.tracking.objects import ID_CHUNK, TrackedObject, load_objects
from dsgen_core.tracking.tracks import order_key

# Given the ids of objects, a vector for each one it can embed (missing ids: no vector).
VectorProvider = Callable[[Sequence[int]], Mapping[int, np.ndarray]]
Matching = Literal["hungarian", "greedy"]
MATCHINGS: tuple[Matching, ...] = ("hungarian", "greedy")


@dataclass(frozen=True)
class LinkParams:
    """How objects of consecutive frames are scored and matched."""

    iou_weight: float = 0.5  # score = w * IoU + (1 - w) * cosine, when both objects have vectors; IoU otherwise
    min_score: float = 0.3  # pairs below this never link
    # A link's centres may lie at most this many object sizes apart (size: the square root of the
    # two boxes' mean area); None: no limit. Keeps an appearance match from jumping across the frame
    # (on the demo's sequences sampled every 5th or 7th frame, 2 did better than 1 or no limit).
    max_shift: float | None = 2.0
    matching: Matching = "hungarian"

    def check(self) -> None:
        if not 0.0 <= self.iou_weight <= 1.0:
            raise DsgenError(f"iou_weight must be between 0 and 1, not {self.iou_weight}")
        if not 0.0 < self.min_score <= 1.0:
            raise DsgenError(f"min_score must be above 0 and at most 1, not {self.min_score}")
        if self.max_shift is not None and not self.max_shift > 0:
            raise DsgenError(f"max_shift must be positive, not {self.max_shift}")
        if self.matching not in MATCHINGS:
            raise DsgenError(f"matching must be one of {', '.join(MATCHINGS)}, not {self.matching!r}")


@dataclass(frozen=True)
class Chain:
    """Objects linked frame to frame, in frame order, and the score of each link."""

    sequence: str
    members: tuple[int, ...]
    link_scores: tuple[float, ...]

    @property
    def score(self) -> float:
        return sum(self.link_scores) / len(self.link_scores)


@dataclass(frozen=True)
class LinkResult:
    scope: str  # the proposals' Track.scope
    objects: int  # matched by the query
    objects_linkable: int  # of those, with a box in a frame of a sequence
    sequences: int
    links: int
    tracks: int  # proposals written
    objects_in_tracks: int
    mean_score: float | None
    replaced: int  # proposals still awaiting review on these objects, replaced by this run's
    skipped_rejected: int  # proposals equal to a track rejected before: not made again
    skipped_existing: int  # proposals equal to an accepted track: nothing to propose
    vectors: str  # what gave the vectors: "none", "histogram", an embedding version's name
    objects_with_vectors: int  # linkable objects the provider gave a vector (the rest link by overlap)
    track_ids: list[int]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_PARAMS = LinkParams()


# --------------------------------------------------------------------------- the linker


def link_objects(objects: Iterable[TrackedObject], vectors: Mapping[int, np.ndarray] | None,
                 params: LinkParams = DEFAULT_PARAMS) -> list[Chain]:
    """Chains of two or more objects, per sequence; objects without a box or a sequence are left out."""
    params.check()
    by_sequence: dict[str, dict[int, list[TrackedObject]]] = defaultdict(lambda: defaultdict(list))
    for o in objects:
        if o.box is not None and o.sequence is not None and o.frame is not None:
            by_sequence[o.sequence][o.frame].append(o)
    unit = _unit_vectors(vectors) if vectors else {}
    chains: list[Chain] = []
    for seq in sorted(by_sequence):
        frames = by_sequence[seq]
        nxt: dict[int, tuple[int, float]] = {}
        has_prev: set[int] = set()
        for fa, fb in pairwise(sorted(frames)):
            a, b = sorted(frames[fa], key=order_key), sorted(frames[fb], key=order_key)
            scores = pair_scores(a, b, unit, params)
            match = max_weight_matching if params.matching == "hungarian" else greedy_matching
            for i, j in match(scores):
                nxt[a[i].id] = (b[j].id, float(scores[i, j]))
                has_prev.add(b[j].id)
        for f in sorted(frames):
            for o in sorted(frames[f], key=order_key):
                if o.id in has_prev or o.id not in nxt:
                    continue
                members, links = [o.id], []
                while members[-1] in nxt:
                    m, s = nxt[members[-1]]
                    members.append(m)
                    links.append(s)
                chains.append(Chain(seq, tuple(members), tuple(links)))
    return chains


def pair_scores(a: Sequence[TrackedObject], b: Sequence[TrackedObject], unit: Mapping[int, np.ndarray],
                params: LinkParams) -> np.ndarray:
    """Link scores of every object of ``a`` with every object of ``b``; NaN where they may not link."""
    ba = np.array([o.box for o in a], dtype=np.float64).reshape(-1, 4)
    bb = np.array([o.box for o in b], dtype=np.float64).reshape(-1, 4)
    scores = box_iou(ba, bb)
    if unit:
        va, ha = _stack(a, unit)
        vb, hb = _stack(b, unit)
        if va is not None and vb is not None:
            cos = np.clip(va @ vb.T, 0.0, 1.0)
            both = ha[:, None] & hb[None, :]
            w = params.iou_weight
            scores = np.where(both, w * scores + (1.0 - w) * cos, scores)
    ca = np.array([-1 if o.class_id is None else o.class_id for o in a])
    cb = np.array([-1 if o.class_id is None else o.class_id for o in b])
    forbidden = (ca[:, None] != cb[None, :]) | (scores < params.min_score)
    if params.max_shift is not None:
        centre_a = ba[:, :2] + ba[:, 2:] / 2
        centre_b = bb[:, :2] + bb[:, 2:] / 2
        dist = np.linalg.norm(centre_a[:, None, :] - centre_b[None, :, :], axis=2)
        size = np.sqrt(np.maximum((ba[:, 2] * ba[:, 3])[:, None] + (bb[:, 2] * bb[:, 3])[None, :], 1e-9) / 2)
        forbidden |= dist > params.max_shift * size
    return np.where(forbidden, np.nan, scores)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (n x 4, x y w h) with every box of ``b`` (m x 4)."""
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None, :]) - np.maximum(a[:, 0][:, None], b[:, 0][None, :]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None, :]) - np.maximum(a[:, 1][:, None], b[:, 1][None, :]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _unit_vectors(vectors: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Unit vectors after subtracting the mean of all of them.

    Embeddings share a large common component (a detector's features of one domain lie within a
    few degrees of each other), so raw cosines of any two objects are all near 1 and tell
    instances apart no better than a constant; centred, the cosine compares what differs.
    """
    keys, rows = [], []
    for k, v in vectors.items():
        arr = np.asarray(v, dtype=np.float64).ravel()
        if arr.size and np.isfinite(arr).all():
            keys.append(k)
            rows.append(arr)
    if not rows or len({r.size for r in rows}) != 1:
        return {}
    mat = np.stack(rows)
    if len(mat) > 1:
        mat = mat - mat.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(mat, axis=1)
    return {k: row / n for k, row, n in zip(keys, mat, norms, strict=True) if n > 0 and math.isfinite(n)}


def _stack(objs: Sequence[TrackedObject], unit: Mapping[int, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray]:
    has = np.array([o.id in unit for o in objs], dtype=bool)
    if not has.any():
        return None, has
    dim = len(next(unit[o.id] for o in objs if o.id in unit))
    out = np.zeros((len(objs), dim))
    for i, o in enumerate(objs):
        v = unit.get(o.id)
        if v is not None:
            if len(v) != dim:
                raise DsgenError(f"object {o.id} has a vector of {len(v)} dimensions, others {dim}: vectors of "
                                 "one embedding version only")
            out[i] = v
    return out, has


# --------------------------------------------------------------------------- proposals in the registry


def propose_tracks(session: Session, project: Project, query: str, *, vectors: VectorProvider | None = None,
                   vectors_name: str | None = None, iou_weight: float = LinkParams.iou_weight,
                   min_score: float = LinkParams.min_score, max_shift: float | None = LinkParams.max_shift,
                   matching: Matching = LinkParams.matching, run_id: str | None = None,
                   actor: str | None = None) -> LinkResult:
    """Link the objects matching ``query`` (object level) and write the chains as proposed tracks.

    ``vectors`` gives the objects' vectors (an embedding version, the colour-histogram baseline);
    None links by overlap and class alone. ``run_id`` names the run (the scope ``link:<run_id>``;
    default a fresh id).
    """
    t0 = time.perf_counter()
    params = LinkParams(iou_weight, min_score, max_shift, matching)
    params.check()
    selected = compile_query(query, project_id=project.id, level="object", session=session)
    with statement_timeout(session):
        ids = list(session.scalars(selected))
    objs = load_objects(session, ids)
    linkable = [o for o in objs.values() if o.box is not None and o.sequence is not None]
    vecs = vectors([o.id for o in linkable]) if vectors is not None and linkable else None
    chains = link_objects(linkable, vecs, params)

    scope = f"link:{run_id or uuid.uuid4().hex[:12]}"
    if session.scalar(select(Track.id).where(Track.project_id == project.id, Track.scope == scope).limit(1)):
        raise DsgenError(f"tracks of scope {scope!r} exist already in project {project.name!r}: name another run")
    replaced = _replace_pending(session, project, selected)
    rejected = _member_sets(session, project, selected, "rejected")
    existing = _member_sets(session, project, selected, "accepted")
    kept = [c for c in chains if frozenset(c.members) not in rejected and frozenset(c.members) not in existing]
    tracks = [Track(project_id=project.id, scope=scope, external_id=str(k),
                    source_asset_id=objs[c.members[0]].video_asset_id, label_class_id=objs[c.members[0]].class_id,
                    start_frame=objs[c.members[0]].frame, end_frame=objs[c.members[-1]].frame,
                    object_count=len(c.members), origin="model", status="proposed", score=round(c.score, 6))
              for k, c in enumerate(kept)]
    session.add_all(tracks)
    session.flush()
    session.add_all(TrackMember(track_id=t.id, annotation_id=m, sequence_idx=i)
                    for t, c in zip(tracks, kept, strict=True) for i, m in enumerate(c.members))
    session.flush()
    result = LinkResult(
        scope=scope, objects=len(ids), objects_linkable=len(linkable),
        sequences=len({o.sequence for o in linkable}), links=sum(len(c.link_scores) for c in kept),
        tracks=len(tracks), objects_in_tracks=sum(len(c.members) for c in kept),
        mean_score=round(sum(c.score for c in kept) / len(kept), 6) if kept else None, replaced=replaced,
        skipped_rejected=sum(1 for c in chains if frozenset(c.members) in rejected),
        skipped_existing=sum(1 for c in chains if frozenset(c.members) in existing and frozenset(c.members) not in rejected),
        vectors=vectors_name or ("none" if vectors is None else "given"),
        objects_with_vectors=sum(1 for o in linkable if o.id in vecs) if vecs else 0,
        track_ids=[t.id for t in tracks], seconds=round(time.perf_counter() - t0, 3),
    )
    detail = {k: v for k, v in result.to_dict().items() if k not in ("track_ids", "seconds")}
    detail.update(query=query, iou_weight=iou_weight, min_score=min_score, max_shift=max_shift, matching=matching)
    audit(session, "tracks.link", project_id=project.id, entity_type="track", entity_ids=result.track_ids,
          detail=detail, actor=actor)
    if tracks or replaced:
        record_change(session, project_id=project.id, entity="tracks", op="link", count=len(tracks),
                      detail={"scope": scope, "tracks": len(tracks), "replaced": replaced})
    return result


def _replace_pending(session: Session, project: Project, selected: Any) -> int:
    """Delete the model's proposals still awaiting review that hold any of the selected objects."""
    touching = exists().where(TrackMember.track_id == Track.id, TrackMember.annotation_id.in_(selected))
    with statement_timeout(session):
        old = list(session.scalars(select(Track.id).where(
            Track.project_id == project.id, Track.origin == "model", Track.status == "proposed", touching)))
    for i in range(0, len(old), ID_CHUNK):
        chunk = old[i:i + ID_CHUNK]
        session.execute(delete(TrackMember).where(TrackMember.track_id.in_(chunk)))
        session.execute(delete(Track).where(Track.id.in_(chunk)))
    return len(old)


def _member_sets(session: Session, project: Project, selected: Any, status: str) -> set[frozenset[int]]:
    """The member sets of the project's tracks in ``status`` that hold any of the selected objects."""
    touching = exists().where(TrackMember.track_id == Track.id, TrackMember.annotation_id.in_(selected))
    tracks = select(Track.id).where(Track.project_id == project.id, Track.status == status, touching)
    members: dict[int, set[int]] = defaultdict(set)
    with statement_timeout(session):
        for tid, aid in session.execute(select(TrackMember.track_id, TrackMember.annotation_id).where(
                TrackMember.track_id.in_(tracks))):
            members[tid].add(aid)
    return {frozenset(m) for m in members.values()}
