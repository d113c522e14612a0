"""The quality measure and the matchings, on hand-made cases (no database)."""

from __future__ import annotations

import numpy as np
import pytest

from dsgen_core.tracking import score_tracks
from dsgen_core.tracking.assignment import greedy_matching, max_weight_matching

TRUTH = {1: "a", 2: "a", 3: "a", 4: "a", 5: "b", 6: "b", 7: "c"}  # two tracks of 4 and 2, one object alone


def test_perfect_proposals() -> None:
    s = score_tracks(TRUTH, [[1, 2, 3, 4], [5, 6]])
    assert (s.accuracy, s.purity, s.completeness, s.exact, s.split, s.merged) == (1.0, 6 / 7, 1.0, 3, 0, 0)


def test_a_split_track_loses_its_smaller_part_and_purity_does_not_see_it() -> None:
    s = score_tracks(TRUTH, [[1, 2, 3], [4, 5, 6]])  # track a cut, its last object glued to b
    assert s.accuracy == pytest.approx(6 / 7)  # 1,2,3 in a; 5,6 in b; 7 alone; 4 lost
    assert s.split == 1 and s.merged == 1 and s.exact == 1
    pieces = score_tracks(TRUTH, [[1, 2], [3, 4], [5, 6]])
    assert pieces.accuracy == pytest.approx(5 / 7) and pieces.purity == pytest.approx(6 / 7)


def test_merged_tracks_and_nothing_linked() -> None:
    merged = score_tracks(TRUTH, [[1, 2, 3, 4, 5, 6]])
    assert merged.accuracy == pytest.approx(5 / 7) and merged.completeness == 1.0 and merged.merged == 1
    nothing = score_tracks(TRUTH, [])
    assert nothing.accuracy == pytest.approx(3 / 7) and nothing.purity == 0.0 and nothing.proposed_tracks == 0
    assert score_tracks({}, [[1, 2]]).objects == 0


def _best(scores: np.ndarray) -> float:
    """Brute force over every partial matching."""
    n, m = scores.shape

    def rec(i: int, used: frozenset[int]) -> float:
        if i == n:
            return 0.0
        best = rec(i + 1, used)
        for j in range(m):
            if j not in used and not np.isnan(scores[i, j]) and scores[i, j] > 0:
                best = max(best, scores[i, j] + rec(i + 1, used | {j}))
        return best

    return rec(0, frozenset())


def test_hungarian_finds_the_best_matching_and_greedy_a_valid_one() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = (int(v) for v in rng.integers(0, 6, 2))
        scores = rng.random((n, m))
        scores[rng.random((n, m)) < 0.3] = np.nan
        for match in (max_weight_matching, greedy_matching):
            pairs = match(scores)
            assert len({r for r, _ in pairs}) == len(pairs) == len({c for _, c in pairs})
            assert all(not np.isnan(scores[r, c]) for r, c in pairs)
        total = sum(scores[r, c] for r, c in max_weight_matching(scores))
        assert total == pytest.approx(_best(scores))
    # Greedy takes the best pair first, Hungarian the best total.
    trap = np.array([[0.9, 0.8], [0.7, np.nan]])
    assert greedy_matching(trap) == [(0, 0)] and max_weight_matching(trap) == [(0, 1), (1, 0)]
