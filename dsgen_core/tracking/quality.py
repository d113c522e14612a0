"""How well ``tracks link`` recovers known tracks: the share of objects it puts in their true track.

Objects whose true track is known (human tracks, e.g. a CVAT export's ``track_id``) are linked
again with that knowledge withheld, by exactly the linker ``tracks link`` runs; then:

- every proposed track is a group, and every object the linker left alone a group of its own;
- each true track is paired with at most one group and each group with at most one true track,
  the pairing that maximises the objects they share (Hungarian);
- **accuracy** = objects in the group paired with their true track / all objects.

A true track split in two loses its smaller part; two true tracks merged into one proposal lose
the smaller one; an object left alone counts only when its true track is that object alone.
This is IDF1 over a fixed set of detections (identity precision and recall coincide when the
proposals cover the same objects as the truth). Two one-sided measures come with it:
**purity** (each proposed track counts its members of the true track holding most of them, objects
left alone count for nothing; it rewards cutting tracks into short pieces) and **completeness**
(each true track counts its largest part in one group; it rewards merging everything).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from dsgen_core.errors import DsgenError
from dsgen_core.query import compile_query, statement_timeout
from dsgen_core.registry.schema import Project
from dsgen_core.tracking.assignment import max_weight_matching
from dsgen_core.tracking.link import DEFAULT_PARAMS, LinkParams, VectorProvider, link_objects
from dsgen_core.tracking.objects import load_objects


@dataclass(frozen=True)
class TrackScore:
    objects: int  # objects with a true track that were linked
    true_tracks: int
    proposed_tracks: int  # chains of two or more objects
    accuracy: float
    purity: float
    completeness: float
    exact: int  # true tracks recovered whole and alone
    split: int  # true tracks spread over more than one group
    merged: int  # proposed tracks holding objects of more than one true track

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LinkQuality:
    score: TrackScore
    params: LinkParams
    stride: int
    links: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**self.score.to_dict(), "params": asdict(self.params), "stride": self.stride, "links": self.links,
                "seconds": self.seconds}


def score_tracks(truth: Mapping[int, Hashable], proposed: Sequence[Sequence[int]]) -> TrackScore:
    """Score proposed tracks (lists of object ids) against ``truth`` (object id -> true track); see the module docstring.

    Only objects in ``truth`` count; a proposed object not in it is ignored.
    """
    n = len(truth)
    if n == 0:
        return TrackScore(0, 0, 0, 0.0, 0.0, 0.0, 0, 0, 0)
    groups: list[list[int]] = []
    placed: set[int] = set()
    for p in proposed:
        members = [o for o in p if o in truth]
        if len(p) >= 2 and members:
            groups.append(members)
            placed.update(members)
    n_proposed = len(groups)
    groups += [[o] for o in truth if o not in placed]
    true_ids = list(dict.fromkeys(truth.values()))
    true_index = {t: i for i, t in enumerate(true_ids)}
    overlap: dict[tuple[int, int], int] = Counter()
    for g, members in enumerate(groups):
        for o in members:
            overlap[(true_index[truth[o]], g)] += 1

    best_of_track: dict[int, int] = defaultdict(int)  # its largest part in one group
    best_of_group: dict[int, int] = defaultdict(int)  # its largest true track's share
    parts: dict[int, int] = Counter()
    kinds: dict[int, int] = Counter()
    for (t, g), c in overlap.items():
        best_of_track[t] = max(best_of_track[t], c)
        best_of_group[g] = max(best_of_group[g], c)
        parts[t] += 1
        kinds[g] += 1
    purity = sum(c for g, c in best_of_group.items() if g < n_proposed) / n
    completeness = sum(best_of_track.values()) / n
    sizes = Counter(true_index[t] for t in truth.values())
    exact = sum(1 for (t, g), c in overlap.items() if c == sizes[t] == len(groups[g]))
    return TrackScore(
        objects=n, true_tracks=len(true_ids), proposed_tracks=n_proposed,
        accuracy=_paired(overlap, len(true_ids), len(groups)) / n, purity=purity, completeness=completeness,
        exact=exact, split=sum(1 for c in parts.values() if c > 1),
        merged=sum(1 for g, c in kinds.items() if c > 1 and g < n_proposed),
    )


def _paired(overlap: Mapping[tuple[int, int], int], n_true: int, n_groups: int) -> int:
    """Objects shared by the best one-to-one pairing of true tracks and groups, component by component
    (tracks of different sequences never share objects, so each matrix stays small)."""
    parent = list(range(n_true + n_groups))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for t, g in overlap:
        parent[find(t)] = find(n_true + g)
    components: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for (t, g), c in overlap.items():
        components[find(t)].append((t, g, c))
    total = 0
    for edges in components.values():
        ts = sorted({t for t, _g, _c in edges})
        gs = sorted({g for _t, g, _c in edges})
        if len(edges) == 1:
            total += edges[0][2]
            continue
        ti, gi = {t: i for i, t in enumerate(ts)}, {g: i for i, g in enumerate(gs)}
        m = np.full((len(ts), len(gs)), np.nan)
        for t, g, c in edges:
            m[ti[t], gi[g]] = c
        total += int(sum(m[i, j] for i, j in max_weight_matching(m)))
    return total


def link_quality(session: Session, project: Project, query: str = "has:track", *,
                 vectors: VectorProvider | None = None, params: LinkParams = DEFAULT_PARAMS,
                 stride: int = 1) -> LinkQuality:
    """Link the objects of ``query`` that are in a track, their tracks withheld, and score the result.

    ``stride`` keeps only frames whose number is a multiple of it: objects then move further
    between the frames linked, as in a video sampled with ``--every``.
    """
    if stride < 1:
        raise DsgenError(f"stride must be at least 1, not {stride}")
    t0 = time.perf_counter()
    with statement_timeout(session):
        ids = list(session.scalars(compile_query(query, project_id=project.id, level="object", session=session)))
    objs = [o for o in load_objects(session, ids).values()
            if o.track_id is not None and o.box is not None and o.frame is not None and o.frame % stride == 0]
    truth = {o.id: o.track_id for o in objs}
    withheld = [dataclasses.replace(o, track_id=None) for o in objs]
    vecs = vectors([o.id for o in objs]) if vectors is not None and objs else None
    chains = link_objects(withheld, vecs, params)
    score = score_tracks(truth, [c.members for c in chains])
    return LinkQuality(score, params, stride, sum(len(c.link_scores) for c in chains),
                       round(time.perf_counter() - t0, 3))
