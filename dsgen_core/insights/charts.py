"""PNG charts of the insights that ``compute_insights`` returns.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display,
safe in threads and Dagster runs) in the bundled DejaVu Sans, so nothing is fetched at runtime.
Each insight has a panel function that draws its main view on one Axes; the per-insight PNG
may add panels around it and the overview PNG puts the main panels of all insights in a grid.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import CSS4_COLORS, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from dsgen_core.insights.compute import COCO_MEDIUM_BINS, COCO_SMALL_BINS

if TYPE_CHECKING:
    # matplotlib.typing is provisional (may change without deprecation): keep it out of runtime imports
    from matplotlib.typing import RcKeyType

TOP = 30
DPI = 110
OTHERS = "others"
PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD")
BAR = PALETTE[0]
OTHERS_COLOR = "#b0b0b0"
RANGE_COLOR = "#8fa9d6"
COCO_COLORS = {"small": "#C44E52", "medium": "#DD8452", "large": "#55A868"}
SOURCE_COLORS = {"human": "#4C72B0", "model": "#DD8452"}
RC: dict[RcKeyType, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e6e6e6",
    "grid.linewidth": 0.8,
}


# --------------------------------------------------------------------------- drawing helpers


def _fmt_count(n: float) -> str:
    n = float(n)
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e4:
        return f"{n / 1e3:.0f}k"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return f"{n:.0f}"


def _truncate(label: str, width: int = 28) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _top_items(items: Sequence[tuple[str, float]], top: int) -> list[tuple[str, float]]:
    """The ``top`` largest items, the rest summed into one "others" bar."""
    items = sorted(items, key=lambda kv: -kv[1])
    if len(items) <= top:
        return list(items)
    rest = sum(v for _, v in items[top - 1 :])
    return [*list(items[:top - 1]), (f"{OTHERS} ({len(items) - top + 1})", rest)]


def _empty(ax: Axes, title: str, message: str = "no data") -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#888888", fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _hbar(
    ax: Axes,
    items: Sequence[tuple[str, float]],
    title: str,
    xlabel: str,
    *,
    colors: Sequence[str] | None = None,
    notes: Sequence[str] | None = None,
) -> None:
    """Horizontal bars, largest on top, each with its count written at its end."""
    if not items or not any(v for _, v in items):
        _empty(ax, title)
        return
    labels = [_truncate(k) for k, _ in items]
    values = [v for _, v in items]
    ys = range(len(items))
    colors = list(colors) if colors else [OTHERS_COLOR if k.startswith(f"{OTHERS} (") else BAR for k, _ in items]
    ax.barh(ys, values, color=colors, height=0.72)
    ax.set_yticks(list(ys), labels)
    ax.set_ylim(len(items) - 0.5, -0.5)  # largest on top
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", visible=False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5 ticks on small data
    top = max(values)
    ax.set_xlim(0, top * 1.22)
    size = 8 if len(items) <= 20 else 7
    for y, v, note in zip(ys, values, notes or [""] * len(items), strict=False):
        ax.text(v + top * 0.01, y, _fmt_count(v) + (f" {note}" if note else ""), va="center", fontsize=size, color="#333333")
    ax.tick_params(axis="y", labelsize=size + (1 if len(items) <= 12 else 0), length=0)


def _vbar(ax: Axes, labels: Sequence[str], values: Sequence[float], title: str, xlabel: str, ylabel: str, *, colors: Sequence[str] | None = None) -> None:
    """Vertical bars for histograms; counts on bars while they stay readable."""
    if not values or not any(values):
        _empty(ax, title)
        return
    xs = range(len(values))
    ax.bar(xs, values, color=list(colors) if colors else BAR, width=0.8)
    ax.set_xticks(list(xs), list(labels), rotation=45 if max(len(s) for s in labels) > 4 else 0, ha="right" if max(len(s) for s in labels) > 4 else "center")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(axis="x", visible=False)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    top = max(values)
    ax.set_ylim(0, top * 1.15)
    if len(values) <= 16:
        for x, v in zip(xs, values, strict=False):
            if v:
                ax.text(x, v + top * 0.01, _fmt_count(v), ha="center", va="bottom", fontsize=7, color="#333333")


def _hist_bars(ax: Axes, hist: Mapping[str, Any], title: str, xlabel: str, ylabel: str, *, colors: Sequence[str] | None = None) -> None:
    """A computed histogram; empty bins at either end are trimmed so the data fills the axes."""
    counts = list(hist["counts"])
    labels = list(hist["labels"])
    nonzero = [i for i, c in enumerate(counts) if c]
    if not nonzero:
        _empty(ax, title)
        return
    lo, hi = nonzero[0], nonzero[-1] + 1
    _vbar(ax, labels[lo:hi], counts[lo:hi], title, xlabel, ylabel, colors=list(colors)[lo:hi] if colors else None)


def _class_color(color: Any) -> str:
    """The ontology's colour for a class when it is one matplotlib understands, else the bar colour."""
    if isinstance(color, str):
        try:
            to_rgba(color)
            return color
        except ValueError:
            pass
    return BAR


# --------------------------------------------------------------------------- panels (one Axes each)


def _panel_class_distribution(ax: Axes, data: Mapping[str, Any], top: int) -> None:
    classes = {c["key"]: c for c in data["classes"]}
    items = _top_items([(k, c["objects"]) for k, c in classes.items()], top)
    colors = [_class_color(classes[k]["color"]) if k in classes else OTHERS_COLOR for k, _ in items]
    notes = [f"· {_fmt_count(classes[k]['images'])} img" if k in classes else "" for k, _ in items]
    _hbar(ax, items, f"Objects per class ({data['num_classes']} classes)", "objects", colors=colors, notes=notes)


def _panel_tag_counts(ax: Axes, data: Mapping[str, Any], top: int) -> None:
    tags = list(data["tags"].items())
    shown = sum(v for _, v in tags)
    items = _top_items(tags, top)
    if data["distinct"] > len(tags):
        items.append((f"{OTHERS} ({data['distinct'] - len(tags)})", data["assignments"] - shown))
        items = _top_items(items, top)
    title = f"Images per tag ({data['distinct']} tags, {_fmt_count(data['untagged_images'])} untagged images)"
    _hbar(ax, items, title, "images")


def _panel_metadata_values(ax: Axes, data: Mapping[str, Any], top: int) -> None:
    keys = data["keys"]
    if not keys:
        _empty(ax, "Metadata keys")
        return
    items = [(k, v["images"]) for k, v in keys.items()]
    notes = [f"· {v['distinct']} values" for v in keys.values()]
    _hbar(ax, items[:top], "Images per metadata key", "images", notes=notes[:top])


def _metadata_key_panel(ax: Axes, key: str, entry: Mapping[str, Any], top: int) -> None:
    values = list(entry["values"].items())
    items = _top_items(values, top)
    shown = sum(v for _, v in values)
    if entry["distinct"] > len(values):
        items.append((f"{OTHERS} ({entry['distinct'] - len(values)})", entry["images"] - shown))
    title = f"{key} ({entry['distinct']} value{'s' if entry['distinct'] != 1 else ''})"
    if entry.get("min") is not None and entry["distinct"] > len(values):
        title += f", range {entry['min']:g}…{entry['max']:g}"
    _hbar(ax, items, title, "images")


def _panel_resolution(ax: Axes, data: Mapping[str, Any], top: int) -> None:
    known = data["images"] - data["unknown_size"]
    sizes = data["top_sizes"][:top]
    # Sizes that hold under 0.5 % of the images go into "others" (at least five bars stay),
    # so a long tail of one-off crops does not crowd out the sizes that matter.
    sizes = [s for i, s in enumerate(sizes) if i < 5 or s["images"] >= 0.005 * known]
    items = [(f"{s['width']}×{s['height']}", s["images"]) for s in sizes]
    shown = sum(v for _, v in items)
    if known > shown:
        items.append((f"{OTHERS} ({data['distinct_sizes'] - len(items)} sizes)", known - shown))
    _hbar(ax, items, f"Image sizes ({data['distinct_sizes']} distinct)", "images")


def _panel_bbox_size(ax: Axes, data: Mapping[str, Any], top: int) -> None:
    hist = data["sqrt_area"]
    edges = hist["edges"]
    colors = [
        COCO_COLORS["small"] if i < COCO_SMALL_BINS else COCO_COLORS["medium"] if i < COCO_MEDIUM_BINS else COCO_COLORS["large"]
        for i in range(len(edges) + 1)
    ]
    coco = data["coco"]
    title = f"Box size √(w·h) px — COCO S/M/L {_fmt_count(coco['small'])}/{_fmt_count(coco['medium'])}/{_fmt_count(coco['large'])}"
    _hist_bars(ax, hist, title, "√area (px)", "objects", colors=colors)
    if any(hist["counts"]):
        handles = [Patch(color=c, label=f"COCO {k}") for k, c in COCO_COLORS.items()]
        ax.legend(handles=handles, loc="upper left", frameon=False, fontsize=8)


def _panel_bbox_relative(ax: Axes, data: Mapping[str, Any], top: int) -> None:
    _hist_bars(ax, data["relative"], "Box size relative to image √(box/image area)", "relative size", "objects")


def _panel_bbox_aspect(ax: Axes, data: Mapping[str, Any], top: int) -> None:
    _hist_bars(ax, data["ratio"], "Box aspect ratio w/h (log bins)", "← tall      w/h      wide →", "objects")


def _panel_objects_per_image(ax: Axes, data: Mapping[str, Any], top: int) -> None:
    hist = {int(k): int(c) for k, c in data["histogram"]}
    if not hist:
        _empty(ax, "Objects per image")
        return
    labels, values = _count_bins(hist, max_bars=max(12, min(top, 24)))
    grouped = [not label.isdigit() for label in labels]
    title = f"Objects per image (mean {data['mean']:.1f}, median {data['median']:g}, max {data['max']})"
    xlabel = "objects in image" + (" (lighter bars: ranges)" if any(grouped) else "")
    _vbar(ax, labels, values, title, xlabel, "images", colors=[RANGE_COLOR if g else BAR for g in grouped])


NICE_COUNTS = (10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000)


def _count_bins(hist: Mapping[int, int], max_bars: int) -> tuple[list[str], list[int]]:
    """Exact counts while they fit, then widening ranges (10–14, 15–19, 20–29, …), so a long
    tail of crowded images neither hides the common counts nor piles into one bar."""
    top = max(hist)
    if top < max_bars:
        return [str(k) for k in range(top + 1)], [hist.get(k, 0) for k in range(top + 1)]
    edges = [*range(10), *(e for e in NICE_COUNTS if e <= top)]
    edges = edges[:max_bars]
    labels: list[str] = []
    values: list[int] = []
    for lo, hi in zip(edges, [*edges[1:], None], strict=False):
        if hi is None:
            labels.append(f"≥{lo}")
            values.append(sum(c for k, c in hist.items() if k >= lo))
        else:
            labels.append(str(lo) if hi == lo + 1 else f"{lo}–{hi - 1}")
            values.append(sum(c for k, c in hist.items() if lo <= k < hi))
    return labels, values


def _panel_attributes(ax: Axes, data: Mapping[str, Any], top: int) -> None:
    """Value shares of every categorical attribute, one stacked bar per attribute."""
    keys = [(k, e) for k, e in data["keys"].items() if e.get("categorical") and e.get("values")]
    if not keys:
        _empty(ax, "Object attributes", "no categorical attributes")
        return
    keys = keys[:top]
    for y, (_key, e) in enumerate(keys):
        left = 0.0
        total = sum(e["values"].values())
        for i, (v, n) in enumerate(e["values"].items()):
            share = n / total
            bar, ink = _value_color(v, i)
            ax.barh(y, share, left=left, color=bar, height=0.7, edgecolor="#999999", linewidth=0.6)
            if share >= 0.07:
                ax.text(left + share / 2, y, f"{_truncate(v, 12)}\n{share:.0%}", ha="center", va="center", fontsize=7, color=ink)
            left += share
    ax.set_yticks(range(len(keys)), [f"{_truncate(k, 20)}\n({_fmt_count(e['objects'])} obj)" for k, e in keys])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:.0%}")
    ax.set_title("Object attributes (share of objects)")
    ax.set_xlabel("share of objects with the attribute")
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0)


def _value_color(value: str, i: int) -> tuple[str, str]:
    """(bar, text) colours of an attribute value: true/false fixed, colour names as themselves."""
    fixed = {"true": "#C44E52", "false": "#4C72B0"}
    if value in fixed:
        return fixed[value], "white"
    name = value.lower()
    if name not in CSS4_COLORS:  # not to_rgba: it reads "0" and "1" as grey levels
        return PALETTE[(i + 2) % len(PALETTE)], "white"
    r, g, b, _ = to_rgba(name)
    # Perceived brightness decides between dark and light text on a named colour.
    return name, "#222222" if 0.299 * r + 0.587 * g + 0.114 * b > 0.6 else "white"


def _attribute_heatmap(ax: Axes, key: str, matrix: Mapping[str, Any], top: int, fig: Figure) -> None:
    """Rows are classes, columns values; colour is the share of the class's objects, text the count."""
    classes = matrix["classes"][:top]
    values = matrix["values"][:12]
    counts = [row[: len(values)] for row in matrix["counts"][: len(classes)]]
    if not classes or not values:
        _empty(ax, f"{key} by class")
        return
    shares = [[c / max(1, sum(row)) for c in row] for row in counts]
    im = ax.imshow(shares, aspect="auto", cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(values)), [_truncate(v, 14) for v in values], rotation=30 if len(values) > 4 else 0, ha="right" if len(values) > 4 else "center")
    ax.set_yticks(range(len(classes)), [_truncate(c, 24) for c in classes])
    ax.grid(False)
    ax.set_title(f"{key} by class (share of class objects)")
    ax.set_xlabel(key)
    size = 7 if len(classes) * len(values) > 120 else 8
    for i, row in enumerate(counts):
        for j, n in enumerate(row):
            ax.text(j, i, f"{shares[i][j]:.0%}\n{_fmt_count(n)}", ha="center", va="center", fontsize=size - 1, color="white" if shares[i][j] > 0.6 else "#222222")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, format=lambda x, _pos: f"{x:.0%}")


def _panel_sources(ax: Axes, data: Mapping[str, Any], top: int) -> None:
    by_class = list(data["by_class"].items())[:top]
    if not by_class:
        _empty(ax, "Human vs model objects")
        return
    names = [_truncate(k) for k, _ in by_class]
    human = [v["human"] for _, v in by_class]
    model = [v["model"] for _, v in by_class]
    ys = range(len(by_class))
    ax.barh(ys, human, color=SOURCE_COLORS["human"], height=0.72, label=f"human ({_fmt_count(data['human'])})")
    ax.barh(ys, model, left=human, color=SOURCE_COLORS["model"], height=0.72, label=f"model ({_fmt_count(data['model'])})")
    total = [a + b for a, b in zip(human, model, strict=False)]
    peak = max(total) or 1
    ax.set_xlim(0, peak * 1.18)
    for y, n, m in zip(ys, total, model, strict=False):
        ax.text(n + peak * 0.01, y, f"{_fmt_count(n)}" + (f" ({m / n:.0%} model)" if m and n else ""), va="center", fontsize=7, color="#333333")
    ax.set_yticks(list(ys), names)
    ax.invert_yaxis()
    ax.set_title("Human vs model objects per class")
    ax.set_xlabel("objects")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0, labelsize=8 if len(by_class) <= 20 else 7)
    ax.legend(loc="lower right", frameon=False)


def _panel_duplicates(ax: Axes, data: Mapping[str, Any], top: int) -> None:
    title = (f"Images with identical bytes ({data['groups']} groups, {_fmt_count(data['images_with_duplicates'])} "
             "images)")
    if not data["largest"]:
        _empty(ax, title, "no two images have the same bytes")
        return
    items = [(f"{g['examples'][0]}" + (f" +{g['images'] - 1}" if g["images"] > 1 else ""), g["images"])
             for g in data["largest"][:top]]
    _hbar(ax, items, title, "images")


def _panel_confidence(ax: Axes, data: Mapping[str, Any], top: int) -> None:
    hist = data["histogram"]
    labels = [f"{a:.1f}–{b:.1f}" for a, b in zip([0.0, *hist["edges"]], [*hist["edges"], 1.0], strict=False)]
    mean = data["mean"]
    title = "Model confidence" + (f" (mean {mean:.2f}, {_fmt_count(data['model_objects'])} objects)" if mean is not None else "")
    if not any(hist["counts"]):
        _empty(ax, "Model confidence", "no model annotations")
        return
    _vbar(ax, labels, hist["counts"], title, "confidence", "objects")


PANELS: dict[str, Callable[[Axes, Mapping[str, Any], int], None]] = {
    "class_distribution": _panel_class_distribution,
    "tag_counts": _panel_tag_counts,
    "metadata_values": _panel_metadata_values,
    "resolution": _panel_resolution,
    "bbox_size": _panel_bbox_size,
    "bbox_aspect": _panel_bbox_aspect,
    "objects_per_image": _panel_objects_per_image,
    "attributes": _panel_attributes,
    "sources": _panel_sources,
    "confidence": _panel_confidence,
    "duplicates": _panel_duplicates,
}
TITLES = {
    "class_distribution": "Classes",
    "tag_counts": "Tags",
    "metadata_values": "Metadata values",
    "resolution": "Image resolution",
    "bbox_size": "Box sizes",
    "bbox_aspect": "Box aspect ratios",
    "objects_per_image": "Objects per image",
    "attributes": "Object attributes",
    "sources": "Annotation sources",
    "confidence": "Model confidence",
    "duplicates": "Identical images",
}
# The overview shows these, in this order; metadata only in its own PNG.
OVERVIEW = ("class_distribution", "objects_per_image", "resolution", "bbox_size", "bbox_aspect", "tag_counts", "attributes", "sources", "confidence")


# --------------------------------------------------------------------------- figures


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _bars_height(n: int) -> float:
    return min(14.0, max(3.2, 0.9 + 0.27 * n))


def _suptitle(fig: Figure, insights: Mapping[str, Any], title: str) -> None:
    scope = f"query: {insights['query']}" if insights.get("query") else "whole project"
    fig.suptitle(f"{title} — {scope} — {_fmt_count(insights.get('images', 0))} images, {_fmt_count(insights.get('objects', 0))} objects", fontsize=12, fontweight="bold")


def _fig_class_distribution(insights: Mapping[str, Any], top: int) -> Figure:
    data = insights["class_distribution"]
    fig = _figure(9, _bars_height(min(len(data["classes"]), top)))
    _panel_class_distribution(fig.add_subplot(), data, top)
    return fig


def _fig_tag_counts(insights: Mapping[str, Any], top: int) -> Figure:
    data = insights["tag_counts"]
    has_object_tags = bool(data["object_tags"])
    n = min(max(len(data["tags"]), len(data["object_tags"])) + 1, top)
    fig = _figure(16 if has_object_tags else 9, _bars_height(n))
    axes = fig.subplots(1, 2 if has_object_tags else 1, squeeze=False)[0]
    _panel_tag_counts(axes[0], data, top)
    if has_object_tags:
        items = list(data["object_tags"].items())
        shown = sum(v for _, v in items)
        if data["object_tags_distinct"] > len(items):
            items.append((f"{OTHERS} ({data['object_tags_distinct'] - len(items)})", data["object_tag_assignments"] - shown))
        _hbar(axes[1], _top_items(items, top), f"Objects per tag ({data['object_tags_distinct']} tags)", "objects")
    return fig


def _fig_metadata_values(insights: Mapping[str, Any], top: int) -> Figure:
    keys = list(insights["metadata_values"]["keys"].items())[:6]
    if not keys:
        fig = _figure(8, 3)
        _empty(fig.add_subplot(), "Metadata values", "no metadata")
        return fig
    per_key = min(top, 15)
    cols = 1 if len(keys) == 1 else 2
    rows = (len(keys) + cols - 1) // cols
    n = max(min(len(e["values"]) + 1, per_key) for _, e in keys)
    fig = _figure(8 * cols, _bars_height(n) * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (key, entry) in zip(axes, keys, strict=False):
        _metadata_key_panel(ax, key, entry, per_key)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    return fig


def _fig_resolution(insights: Mapping[str, Any], top: int) -> Figure:
    data = insights["resolution"]
    fig = _figure(16, 5.5)
    grid = fig.add_gridspec(1, 3, width_ratios=[1.1, 1, 1])
    _panel_resolution(fig.add_subplot(grid[0]), data, min(top, 15))
    _hist_bars(fig.add_subplot(grid[1]), data["width"], "Image width", "width (px)", "images")
    _hist_bars(fig.add_subplot(grid[2]), data["height"], "Image height", "height (px)", "images", colors=[PALETTE[1]] * len(data["height"]["counts"]))
    return fig


def _fig_bbox_size(insights: Mapping[str, Any], top: int) -> Figure:
    data = insights["bbox_size"]
    fig = _figure(16, 9)
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 1.1])
    _panel_bbox_size(fig.add_subplot(grid[0, 0]), data, top)
    _panel_bbox_relative(fig.add_subplot(grid[1, 0]), data, top)
    ax = fig.add_subplot(grid[:, 1])
    by_class = list(data["coco_by_class"].items())[: min(top, 25)]
    if not by_class:
        _empty(ax, "COCO size by class")
        return fig
    ys = range(len(by_class))
    left = [0.0] * len(by_class)
    for bucket, color in COCO_COLORS.items():
        totals = [max(1, sum(v.values())) for _, v in by_class]
        shares = [v[bucket] / t for (_, v), t in zip(by_class, totals, strict=False)]
        ax.barh(ys, shares, left=left, color=color, height=0.72, label=bucket)
        left = [a + b for a, b in zip(left, shares, strict=False)]
    ax.set_yticks(list(ys), [f"{_truncate(k, 22)} ({_fmt_count(sum(v.values()))})" for k, v in by_class])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:.0%}")
    ax.set_title("COCO small / medium / large share per class")
    ax.set_xlabel("share of the class's boxes (<32², <96², ≥96² px)")
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0, labelsize=8)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncols=3, frameon=False)
    return fig


def _fig_single(name: str, width: float = 9, height: float = 4.8) -> Callable[[Mapping[str, Any], int], Figure]:
    def draw(insights: Mapping[str, Any], top: int) -> Figure:
        fig = _figure(width, height)
        PANELS[name](fig.add_subplot(), insights[name], top)
        return fig

    return draw


def _fig_attributes(insights: Mapping[str, Any], top: int) -> Figure:
    data = insights["attributes"]
    matrices = [(k, m) for k, m in data["by_class"].items() if m["classes"] and m["values"]][:4]
    n_keys = sum(1 for e in data["keys"].values() if e.get("categorical"))
    rows_summary = max(2.6, 0.9 + 0.55 * max(1, n_keys))
    heat_rows = max((min(len(m["classes"]), min(top, 20)) for _, m in matrices), default=0)
    heat_h = max(3.0, 1.2 + 0.34 * heat_rows)
    cols = min(2, len(matrices)) or 1
    rows = (len(matrices) + cols - 1) // cols
    fig = _figure(16 if cols == 2 else 10, rows_summary + heat_h * rows)
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[rows_summary] + [heat_h] * rows)
    _panel_attributes(fig.add_subplot(grid[0, :]), data, top)
    for i, (key, matrix) in enumerate(matrices):
        ax = fig.add_subplot(grid[1 + i // cols, i % cols])
        _attribute_heatmap(ax, key, matrix, min(top, 20), fig)
    return fig


def _fig_sources(insights: Mapping[str, Any], top: int) -> Figure:
    data = insights["sources"]
    fig = _figure(9, _bars_height(min(len(data["by_class"]), top)))
    _panel_sources(fig.add_subplot(), data, top)
    return fig


FIGURES: dict[str, Callable[[Mapping[str, Any], int], Figure]] = {
    "class_distribution": _fig_class_distribution,
    "tag_counts": _fig_tag_counts,
    "metadata_values": _fig_metadata_values,
    "resolution": _fig_resolution,
    "bbox_size": _fig_bbox_size,
    "bbox_aspect": _fig_single("bbox_aspect"),
    "objects_per_image": _fig_single("objects_per_image", 10),
    "attributes": _fig_attributes,
    "sources": _fig_sources,
    "confidence": _fig_single("confidence"),
    "duplicates": _fig_single("duplicates"),
}


def overview_figure(insights: Mapping[str, Any], *, top: int = 15, title: str = "Dataset overview") -> Figure:
    """The main panels of the insights present, three to a row (metadata only when alone)."""
    names = [n for n in OVERVIEW if n in insights] or [n for n in PANELS if n in insights]
    cols = min(3, max(1, len(names)))
    rows = max(1, (len(names) + cols - 1) // cols)
    fig = _figure(6.4 * cols, 5.2 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        PANELS[name](ax, insights[name], top)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    _suptitle(fig, insights, title)
    return fig


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "chart"


def render_charts(
    insights: Mapping[str, Any],
    out_dir: Path,
    *,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write one PNG per insight present in ``insights`` plus ``overview.png``; returns name → path.

    ``config`` is a saved view's visualization config: ``top`` (bars per chart, default 30),
    ``overview_top`` (bars per overview panel, default 15), ``dpi`` and ``title``.
    """
    config = dict(config or {})
    top = int(config.get("top", TOP))
    dpi = int(config.get("dpi", DPI))
    title = str(config.get("title", "Dataset overview"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    with rc_context(RC):
        for name, draw in FIGURES.items():
            if name not in insights:
                continue
            fig = draw(insights, top)
            _suptitle(fig, insights, TITLES[name])
            paths[name] = _save(fig, out_dir / f"{_safe(name)}.png", dpi)
        if paths:
            paths["overview"] = _save(overview_figure(insights, top=int(config.get("overview_top", 15)), title=title), out_dir / "overview.png", dpi)
    return paths


def _save(fig: Figure, path: Path, dpi: int) -> Path:
    # zlib level 1: a quarter of the encoding time of the default 6 for files about 20 % larger.
    fig.savefig(path, dpi=dpi, facecolor="white", pil_kwargs={"compress_level": 1})
    return path
