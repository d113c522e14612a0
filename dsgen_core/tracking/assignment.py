"""Maximum-weight matching of two small sets (objects of consecutive frames, true and proposed tracks).

The Hungarian method (shortest augmenting paths with potentials, O(n²m)), vectorised over the
columns with numpy: a frame rarely holds more than a few hundred objects, so this stays in the
milliseconds without adding scipy to the dependencies. Pairs that may not match (another class,
a score below the threshold) carry NaN; leaving an object unmatched always beats a forbidden pair.
"""

from __future__ import annotations

import numpy as np


def max_weight_matching(scores: np.ndarray) -> list[tuple[int, int]]:
    """(row, column) pairs, each row and column at most once, with the largest total score.

    ``scores`` is rows x columns; NaN marks a pair that may not match. Only pairs with a positive
    score are ever returned (a pair worth nothing is no better than no pair).
    """
    n, m = scores.shape
    if n == 0 or m == 0:
        return []
    allowed = ~np.isnan(scores) & (scores > 0)
    if not allowed.any():
        return []
    transposed = n > m
    s = scores.T if transposed else scores
    ok = allowed.T if transposed else allowed
    rows, cols = s.shape
    # Minimum cost over rows x (cols + one "unmatched" column per row, cost 0); forbidden pairs cost
    # more than every allowed assignment together, so they are never chosen over leaving a row alone.
    big = float(np.nansum(np.where(ok, s, 0.0))) + 1.0
    cost = np.full((rows, cols + rows), big)
    cost[:, :cols] = np.where(ok, -s, big)
    cost[np.arange(rows), cols + np.arange(rows)] = 0.0
    assigned = _min_cost_assignment(cost)
    out = [(r, c) for r, c in enumerate(assigned) if c < cols and ok[r, c]]
    return [(c, r) for r, c in out] if transposed else out


def greedy_matching(scores: np.ndarray) -> list[tuple[int, int]]:
    """Pairs taken best first while both are free: what most trackers do, and what Hungarian is checked against."""
    allowed = ~np.isnan(scores) & (scores > 0)
    rows, cols = np.nonzero(allowed)
    order = np.argsort(-scores[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    out = []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            out.append((r, c))
    return sorted(out)


def _min_cost_assignment(cost: np.ndarray) -> list[int]:
    """The column of each row in a minimum-cost assignment of a rows <= columns matrix."""
    n, m = cost.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=np.int64)  # p[j]: the row (1-based) holding column j; 0 = free
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            masked = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(masked)) + 1
            delta = masked[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = int(way[j0])
            p[j0] = p[j1]
            j0 = j1
    out = [0] * n
    for j in range(1, m + 1):
        if p[j]:
            out[p[j] - 1] = j - 1
    return out
