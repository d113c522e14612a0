"""PNG charts of an evaluation: precision-recall curves and the confusion matrix.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display, safe in
threads and Dagster runs) in the bundled DejaVu Sans, so nothing is fetched at runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dsgen_core.errors import DsgenError
from dsgen_core.evaluation.coco_metrics import DetectionMetrics

if TYPE_CHECKING:
    # matplotlib.typing is provisional (may change without deprecation): keep it out of runtime imports
    from matplotlib.typing import RcKeyType

DPI = 110
BACKGROUND = "background"
# Past this many classes, per-class legend entries and cell counts would be unreadable.
MAX_LABELLED_CLASSES = 20
MAX_ANNOTATED_CELLS = 30
RC: dict[RcKeyType, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def draw_pr_curve(metrics: DetectionMetrics, path: Path) -> Path:
    """Precision-recall at IoU 0.5: one line per class with ground truth and their mean.

    The legend gives each curve's AP50, the mean of the curve over its 101 recall points.
    """
    with rc_context(RC):
        fig = _figure(9.0, 6.0)
        ax = fig.add_subplot()
        curves = metrics.pr_curves
        labelled = len(curves) <= MAX_LABELLED_CLASSES
        for name, (recall, precision) in curves.items():
            ap50 = metrics.per_class[name].map50
            ax.plot(recall, precision, linewidth=1.0, label=f"{name} {ap50:.3f}" if labelled else None,
                    color=None if labelled else "#9a9a9a", alpha=1.0 if labelled else 0.5)
        if curves:
            recall = next(iter(curves.values()))[0]
            mean = np.mean([precision for _, precision in curves.values()], axis=0)
            ax.plot(recall, mean, color="#1f3a93", linewidth=3.0, label=f"all classes {metrics.map50:.3f} mAP@0.5")
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8)
        else:
            ax.text(0.5, 0.5, "no class has ground truth", ha="center", va="center", transform=ax.transAxes,
                    color="#888888", fontsize=11)
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="Recall", ylabel="Precision",
               title=f"Precision-recall at IoU 0.5 ({metrics.backend})")
        ax.grid(True, color="#e6e6e6")
        return _save(fig, path)


def draw_confusion_matrix(matrix: np.ndarray, names: list[str], path: Path) -> Path:
    """Heatmap of :func:`~dsgen_core.evaluation.confusion.confusion_matrix` with the counts.

    Cells are coloured by their share of the column (of the true class), so a rare class
    reads as clearly as a frequent one; the numbers written in them are the counts.
    """
    matrix = np.asarray(matrix)
    n = len(names) + 1
    if matrix.shape != (n, n):
        raise DsgenError(f"confusion matrix of shape {matrix.shape} does not fit {len(names)} classes "
                         f"(expected {n}x{n}, background last)")
    labels = [*names, BACKGROUND]
    totals = matrix.sum(axis=0, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    with rc_context(RC):
        side = min(16.0, max(6.0, 2.5 + 0.45 * n))
        fig = _figure(side + 1.2, side)
        ax = fig.add_subplot()
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
        if n <= MAX_ANNOTATED_CELLS:
            size = max(5, 10 - n // 4)
            for (i, j), count in np.ndenumerate(matrix):
                if count:
                    ax.text(j, i, f"{count:,}", ha="center", va="center", fontsize=size,
                            color="white" if share[i, j] > 0.6 else "#222222")
        ax.set_xticks(range(n), labels, rotation=90)
        ax.set_yticks(range(n), labels)
        ax.set(xlabel="True", ylabel="Predicted", title="Confusion matrix")
        ax.spines[:].set_visible(False)
        return _save(fig, path)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path
