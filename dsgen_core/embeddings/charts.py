"""A 2-D map of a collection's embeddings (PCA), coloured by class: what a table of vectors cannot show.

PCA rather than UMAP: deterministic, dependency-free and fast at 10^5 points; classes that the
encoder separates already show as separate clouds in the first two components.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MAX_POINTS = 5_000
MAX_CLASSES = 12


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The first two principal components of ``vectors`` (n, d) -> (n, 2)."""
    x = vectors.astype(np.float64) - vectors.mean(axis=0, keepdims=True)
    if len(x) < 2:
        return np.zeros((len(x), 2))
    _u, _s, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T if vt.shape[0] >= 2 else np.pad(x @ vt[:1].T, ((0, 0), (0, 1)))


def embedding_map_png(vectors: np.ndarray, labels: Sequence[str], *, title: str = "", seed: int = 0) -> bytes:
    """A PCA scatter of at most ``MAX_POINTS`` vectors (a seeded sample), the 12 largest classes coloured."""
    n = len(vectors)
    idx = np.arange(n)
    if n > MAX_POINTS:
        idx = np.sort(np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))
    pts = pca_2d(vectors[idx]) if n else np.zeros((0, 2))
    labs = [labels[int(i)] for i in idx]
    common = [c for c, _ in Counter(labs).most_common(MAX_CLASSES)]
    fig = Figure(figsize=(7, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for c in sorted(common):
        sel = np.array([lab == c for lab in labs])
        ax.scatter(pts[sel, 0], pts[sel, 1], s=6, alpha=0.7, label=f"{c} ({int(sel.sum())})")
    rest = np.array([lab not in common for lab in labs]) if labs else np.zeros(0, bool)
    if rest.any():
        ax.scatter(pts[rest, 0], pts[rest, 1], s=4, alpha=0.4, color="grey", label=f"other ({int(rest.sum())})")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.grid(alpha=0.3)
    if common:
        ax.legend(fontsize=8, markerscale=2)
    ax.set_title(title or f"{n} embeddings" + (f" ({MAX_POINTS} shown)" if n > MAX_POINTS else ""), fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()
