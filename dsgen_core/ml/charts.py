"""Training curves as a PNG: losses on the left, validation metrics on the right, one point per epoch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_LOSSES = (("train_loss", "train loss"), ("val_loss", "val loss"))
_METRICS = (("precision", "precision"), ("recall", "recall"), ("map50", "mAP50"), ("map50_95", "mAP50-95"))


def draw_training_curves(epochs: Sequence[dict[str, Any]], path: Path, *, title: str = "") -> Path:
    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, metric_ax = fig.subplots(1, 2)
    x = [e["epoch"] for e in epochs]
    for ax, series, ylabel in ((loss_ax, _LOSSES, "loss"), (metric_ax, _METRICS, "metric")):
        for key, label in series:
            ys = [e.get(key) for e in epochs]
            if any(y is not None for y in ys):
                ax.plot(x, [float("nan") if y is None else y for y in ys], marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    metric_ax.set_ylim(0, 1.02)
    if title:
        fig.suptitle(title, fontsize=11, fontweight="bold")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, facecolor="white")
    return path
