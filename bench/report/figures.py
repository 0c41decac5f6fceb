"""The plots of one table: one function per figure (``FIGURES``), drawn with a ``Style`` they share, and
written as PNGs without metadata (so they re-render byte-identically)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report.tables import count_text


def _spread(values: list[float], gap: float) -> list[float]:
    """``values`` moved apart as little as possible so that sorted neighbours are at least ``gap`` apart
    (for text labels that would otherwise overlap); same order as given."""
    order = sorted(range(len(values)), key=lambda i: (values[i], i))
    blocks: list[list[int]] = []  # runs of labels that touch, each placed centred on its own mean
    for i in order:
        blocks.append([i])
        while len(blocks) > 1:
            low, high = blocks[-2], blocks[-1]
            top = sum(values[j] for j in low) / len(low) + gap * (len(low) - 1) / 2
            bottom = sum(values[j] for j in high) / len(high) - gap * (len(high) - 1) / 2
            if bottom - top >= gap:
                break
            blocks[-2:] = [low + high]
    placed = list(values)
    for block in blocks:
        centre = sum(values[j] for j in block) / len(block)
        for k, j in enumerate(block):
            placed[j] = centre + gap * (k - (len(block) - 1) / 2)
    return placed


def accuracy_limits(table: pd.DataFrame) -> tuple[float, float]:
    """The accuracy axis (in %) of the plots: from the lowest mean − std to the highest mean + std over the
    methods with ok runs, with a margin of 8 % of that range (at least half a point). Never forced down to
    50 % or any other fixed floor; the majority-class line is drawn only when it falls inside."""
    ok = table[table["n_ok"] > 0]
    if ok.empty:
        return 0.0, 100.0
    mean, std = 100 * ok["acc_mean"], 100 * ok["acc_std"].fillna(0)
    low, high = float((mean - std).min()), float((mean + std).max())
    margin = max(0.08 * (high - low), 0.5)
    return low - margin, high + margin


def _log_limits(values, left: float = 0.08, right: float = 0.08) -> tuple[float, float]:
    """Limits of a log axis around positive ``values``: padded by ``left`` / ``right`` of the span in decades
    (a span of at least 0.3 decades, so that one value alone is not squeezed)."""
    logs = [math.log10(v) for v in values if v == v and v > 0]
    if not logs:
        return 1.0, 10.0
    low, high = min(logs), max(logs)
    span = max(high - low, 0.3)
    middle = (low + high) / 2
    low, high = min(low, middle - span / 2), max(high, middle + span / 2)
    return 10 ** (low - left * span), 10 ** (high + right * span)


@dataclass(frozen=True)
class Style:
    """What every figure of one table shares: the measured rows, each method's colour and marker, the backbones
    by size, the accuracy axis and the majority-class line."""

    title: str
    table: pd.DataFrame  # the rows of backbones with at least one ok run
    ok: pd.DataFrame
    methods: list[str]
    colours: dict[str, Any]
    markers: dict[str, str]
    backbones: list[str]
    sizes: dict[str, float]
    low: float
    high: float
    majority: float | None
    spread_note: str
    speeds: tuple[str, str]


def style_of(table: pd.DataFrame, title: str, speeds: tuple[str, str]) -> Style | None:
    """The shared ``Style`` of one table's figures; None when no backbone has an ok run (nothing to plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "svg.hashsalt": "bench"})
    measured = set(table[table["n_ok"] > 0]["backbone"])  # a backbone where every run failed has nothing to plot
    table = table[table["backbone"].isin(measured)]
    if table.empty:
        return None
    methods = list(dict.fromkeys(table["method"]))  # the table's own order
    backbones = list(dict.fromkeys(table["backbone"]))  # smallest first (aggregate's order)
    ok = table[table["n_ok"] > 0]
    low, high = accuracy_limits(table)
    majority = table["majority_rate"].dropna()
    single = bool((ok["n_ok"] == 1).any())
    return Style(title, table, ok, methods,
                 colours={m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)},
                 markers=dict(zip(methods, "osD^vP*X" * 4, strict=False)), backbones=backbones,
                 sizes={b: table[table["backbone"] == b]["backbone_params"].min() for b in backbones},
                 low=low, high=high, majority=100 * float(majority.max()) if len(majority) else None,
                 spread_note="mean ± std over seeds" + (" (no bar: one seed)" if single else ""), speeds=speeds)


def _finish_accuracy(ax: Any, style: Style, what: str) -> None:
    """The accuracy axis, title, grid and legend (methods, and the majority-class line) of an accuracy plot."""
    from matplotlib.lines import Line2D

    low, high, majority = style.low, style.high, style.majority
    ax.set_ylim(low, high)
    ax.set_ylabel(f"eval accuracy (%)\n{style.spread_note}")
    ax.set_title(f"{style.title}: eval accuracy vs {what}")
    ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=style.colours[m], marker=style.markers[m], linestyle="none", label=m)
               for m in style.methods if m in set(style.ok["method"])]
    if majority is not None:
        inside = low <= majority <= high
        if inside:
            ax.axhline(majority, color="grey", linestyle=":", zorder=0)
        where = "" if inside else " (below the axis)" if majority < low else " (above the axis)"
        handles.append(Line2D([], [], color="grey", linestyle=":", label=f"majority class\n{majority:.1f} %{where}"))
    ax.legend(handles=handles, title="method", loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0.0, fontsize=8, title_fontsize=8, frameon=False)


def accuracy_vs_size(style: Style) -> Any:
    """Accuracy against backbone size: x ticks name the backbones, methods side by side at each size."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ok, methods, sizes, backbones = style.ok, style.methods, style.sizes, style.backbones
    fig, ax = plt.subplots(figsize=(7.4, 4.4))
    ax.set_xscale("log")
    xmin, xmax = _log_limits([sizes[b] / 1e6 for b in backbones])
    span = math.log10(xmax / xmin)
    for i, method in enumerate(methods):
        part = ok[ok["method"] == method]
        if part.empty:
            continue
        shift = 10 ** (0.025 * span * (i - (len(methods) - 1) / 2))  # a small dodge so error bars do not overlap
        ax.errorbar(part["backbone_params"] / 1e6 * shift, 100 * part["acc_mean"],
                    yerr=100 * part["acc_std"].fillna(0), color=style.colours[method], marker=style.markers[method],
                    capsize=3, linestyle="-", linewidth=1.2, markersize=6)
    ax.set_xlim(xmin, xmax)
    ticks: dict[str, list[str]] = {}  # backbones of the same size (to 0.1M) share one tick that names them all
    for backbone in backbones:
        ticks.setdefault(f"{sizes[backbone] / 1e6:.1f}", []).append(backbone)
    ax.xaxis.set_major_locator(FixedLocator([float(size) for size in ticks]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, pos: " / ".join(ticks.get(f"{v:.1f}", [])) + f" ({v:.1f}M)"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.tick_params(axis="x", labelsize=8, labelrotation=25)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
        label.set_rotation_mode("anchor")
    ax.set_xlabel("backbone (total parameters, millions, log scale)")
    _finish_accuracy(ax, style, "backbone size")
    return fig


def accuracy_vs_trainable(style: Style) -> Any:
    """Accuracy against trainable parameters: each point labelled with its backbone, labels kept apart."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    ok, colours, low, high = style.ok, style.colours, style.low, style.high
    fig, ax = plt.subplots(figsize=(7.4, 4.4))
    ax.set_xscale("log")
    xmin, xmax = _log_limits(ok["trainable_params"], left=0.06, right=0.28)  # room for the labels on the right
    span = math.log10(xmax / xmin)
    for method in style.methods:
        part = ok[ok["method"] == method]
        if not part.empty:
            ax.errorbar(part["trainable_params"], 100 * part["acc_mean"], yerr=100 * part["acc_std"].fillna(0),
                        color=colours[method], marker=style.markers[method], capsize=3, linestyle="none",
                        markersize=6)
    points = [(math.log10(r.trainable_params), 100 * r.acc_mean, r.backbone, r.method) for r in ok.itertuples()
              if r.trainable_params == r.trainable_params and r.trainable_params > 0]
    points.sort(key=lambda p: (p[0], p[1]))
    groups: list[list[tuple]] = []  # labels whose x ranges overlap (within 0.2 of the axis span) share a column
    for point in points:
        if groups and point[0] - groups[-1][-1][0] < 0.2 * span:
            groups[-1].append(point)
        else:
            groups.append([point])
    for group in groups:
        placed = _spread([p[1] for p in group], 0.055 * (high - low))
        for (logx, y, backbone, method), y_text in zip(group, placed, strict=True):
            ax.annotate(backbone, xy=(10 ** logx, y), xytext=(10 ** (logx + 0.025 * span), y_text),
                        fontsize=7.5, va="center", ha="left", color=colours[method],
                        arrowprops=None if abs(y_text - y) < 1e-9 else
                        {"arrowstyle": "-", "color": colours[method], "linewidth": 0.6, "shrinkA": 0, "shrinkB": 3})
    ax.set_xlim(xmin, xmax)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: count_text(v)))  # 10K, 1M rather than 10^4, 10^6
    # under ~1.5 decades there are too few powers of ten: label 2x, 3x, 5x too, and under 0.6 every minor tick
    minor = "" if span >= 1.5 else "235" if span >= 0.6 else "123456789"
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: count_text(v) if f"{v:.0e}"[0] in minor else ""))
    ax.tick_params(axis="x", which="both", labelsize=8)
    ax.set_xlabel("trainable parameters incl. classification head (log scale)")
    _finish_accuracy(ax, style, "trainable parameters")
    return fig


def throughput(style: Style) -> Any:
    """Training throughput: one panel per backbone, each with its own linear axis from zero, the value on every
    bar ("not timed" where no run was measured on a quiet machine)."""
    import matplotlib.pyplot as plt

    table, backbones, colours = style.table, style.backbones, style.colours
    cpu, left_out = style.speeds
    fig, axes = plt.subplots(1, max(len(backbones), 1), figsize=(max(4.4, 2.5 * len(backbones) + 0.9), 4.2),
                             squeeze=False)
    fewer = False
    for ax, backbone in zip(axes[0], backbones, strict=False):
        part = table[table["backbone"] == backbone]
        names = list(part["method"])
        values = [float(v) for v in part["samples_per_s"]]
        heights = [0.0 if v != v else v for v in values]
        bars = ax.bar(range(len(names)), heights, width=0.7, color=[colours[m] for m in names])
        labels = []
        top = max([h for h in heights if h > 0], default=1.0)
        for i, (row, value) in enumerate(zip(part.itertuples(), values, strict=True)):
            if value != value:  # upright, so that neighbouring untimed bars do not overprint each other
                labels.append("")
                ax.text(i, top * 0.03, "not timed", rotation=90, ha="center", va="bottom", fontsize=8, color="dimgrey")
            else:
                fewer = fewer or row.n_timed < row.n_ok
                labels.append(f"{value:.1f}" + (f"\n(n={row.n_timed})" if row.n_timed < row.n_ok else ""))
        ax.bar_label(bars, labels=labels, padding=2, fontsize=8)
        ax.set_ylim(0, top * 1.22)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(f"{backbone} ({style.sizes[backbone] / 1e6:.1f}M params)", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("training throughput (samples/s)\nmedian over seeds")
    heading = (f"{style.title}: training throughput on {cpu}" if cpu
               else f"{style.title}: training throughput (no speed measured on a quiet machine)")
    notes = ["each panel has its own scale"] if len(backbones) > 1 else []
    if fewer:
        notes.append("(n=…): the median is over fewer runs than seeds")
    if left_out:
        notes.append(left_out)
    fig.suptitle("\n".join([heading] + notes), fontsize=9)
    return fig


# Every figure of a table, by the suffix of its PNG, in page order: a new plot is one function and one entry here.
FIGURES: dict[str, Callable[[Style], Any]] = {"acc-vs-size": accuracy_vs_size,
                                               "acc-vs-trainable": accuracy_vs_trainable, "throughput": throughput}
PLOTS = list(FIGURES)  # the suffixes of the PNGs made by ``write_plots`` (the installer's to replace)


def figures(table: pd.DataFrame, title: str, speeds: tuple[str, str] = ("", "")) -> dict[str, object]:
    """The plots of one table (``aggregate``'s), as matplotlib figures keyed by their suffix in ``PLOTS``;
    ``speeds`` is ``speed_source`` of the table's rows (the CPU the throughput comes from)."""
    style = style_of(table, title, speeds)
    return {} if style is None else {suffix: draw(style) for suffix, draw in FIGURES.items()}


def write_plots(table: pd.DataFrame, stem: Path, title: str, speeds: tuple[str, str] = ("", "")) -> list[str]:
    """The ``figures`` as PNGs next to the page (no metadata, so they re-render byte-identically);
    returns their file names."""
    import matplotlib.pyplot as plt

    names = []
    for suffix, fig in figures(table, title, speeds).items():
        name = f"{stem.name}-{suffix}.png"
        fig.tight_layout()
        fig.savefig(stem.parent / name, dpi=110, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.1)
        plt.close(fig)
        names.append(name)
    return names
