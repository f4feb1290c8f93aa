"""PNG plots of the HTML report, drawn with matplotlib's Agg canvas.

Static PNGs keep the report a folder of files that opens offline with no JavaScript (see
docs/reports.md). Figures are built with `matplotlib.figure.Figure` + `FigureCanvasAgg`
rather than pyplot: no global backend switch, no figure registry to leak in a long pytest
session. Each function returns the written path, or None when there is nothing to draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import VllmProfileError
from ..history import Series, SeriesChange, metric_label
from ..summary import ProfileSummary, StepKind

BASELINE_COLOR = "#9e9e9e"
CURRENT_COLOR = "#1f6feb"
KIND_MARKERS = {"prefill": "^", "decode": "o", "mixed": "s"}
KIND_COLORS = {"prefill": "#d97706", "decode": "#1f6feb", "mixed": "#7c3aed"}


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise VllmProfileError(
            "the HTML report draws its plots with matplotlib, which is not installed: "
            "pip install 'pytest-vllm-profile[report]'"
        ) from None
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _clock(summary: ProfileSummary) -> str:
    return "CPU op" if summary.timing_domain == "cpu" else "GPU kernel"


def step_time_plot(
    current: ProfileSummary | None, baseline: ProfileSummary | None, path: Path, title: str = ""
) -> Path | None:
    """Time of every step, baseline vs current; markers say which steps are prefill/decode/mixed."""
    sides = [
        (s, label, color)
        for s, label, color in ((baseline, "baseline", BASELINE_COLOR), (current, "current", CURRENT_COLOR))
        if s and s.steps
    ]
    if not sides:
        return None
    fig = _figure(9.0, 3.4)
    ax = fig.add_subplot()
    for summary, label, color in sides:
        xs = [s.index for s in summary.steps]
        ys = [s.op_time_us / 1000 for s in summary.steps]
        ax.plot(
            xs, ys, color=color, linewidth=1.4, label=label, linestyle="--" if label == "baseline" else "-", zorder=2
        )
        for kind, marker in KIND_MARKERS.items():
            pts = [(s.index, s.op_time_us / 1000) for s in summary.steps if s.kind == kind]
            if pts:
                ax.scatter(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    marker=marker,
                    s=36,
                    zorder=3,
                    color=KIND_COLORS[kind] if label == "current" else BASELINE_COLOR,
                    label=f"{kind} ({label})",
                )
    ref = current or baseline
    assert ref is not None
    ax.set_xlabel("engine step (token peak)")
    ax.set_ylabel(f"{_clock(ref)} time per step (ms)")
    ys = [s.op_time_us / 1000 for summary, _, _ in sides for s in summary.steps]
    lo, hi = min(ys), max(ys)
    pad = max((hi - lo) * 0.15, hi * 0.005)
    ax.set_ylim(lo - pad, hi + pad)  # zoomed, not from 0: a 1 % slower step must be visible
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def layer_bar_chart(
    current: ProfileSummary | None, baseline: ProfileSummary | None, kind: StepKind, path: Path, title: str = ""
) -> Path | None:
    """Median time of each decoder layer in `kind` steps, baseline vs current side by side."""
    series = []
    for summary, label, color in ((baseline, "baseline", BASELINE_COLOR), (current, "current", CURRENT_COLOR)):
        stats = summary.step_kinds.get(kind) if summary else None
        if stats is not None and stats.median_layer_time_us:
            series.append((label, color, stats.median_layer_time_us))
    if not series:
        return None
    n = max(len(s[2]) for s in series)
    width = 0.8 / len(series)
    both = len(series) == 2
    fig = _figure(9.0, 4.4 if both else 3.2)
    if both:  # second panel: the change per layer, which bars starting at 0 cannot show
        ax, dax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3])
    else:
        ax, dax = fig.add_subplot(), None
    for i, (label, color, values) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar([x + offset for x in range(len(values))], values, width=width, color=color, label=label)
    ref = current or baseline
    assert ref is not None
    ax.set_ylabel(f"median {_clock(ref)} µs\nper {kind} step", fontsize=9)
    ax.set_xlim(-0.6, n - 0.4)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if dax is not None:
        base_v, cur_v = series[0][2], series[1][2]
        # the two sides' layer counts may differ: compare the layers both have
        deltas = [100 * (c - b) / b if b else 0.0 for b, c in zip(base_v, cur_v, strict=False)]
        dax.bar(range(len(deltas)), deltas, width=0.7, color=["#cf222e" if d > 0 else "#1a7f37" for d in deltas])
        dax.axhline(0, color="#57606a", linewidth=0.8)
        dax.set_ylabel("Δ %", fontsize=9)
        dax.grid(True, axis="y", alpha=0.3)
    (dax or ax).set_xlabel("decoder layer")
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def history_plot(series: Sequence[Series], changes: Sequence[SeriesChange], path: Path) -> Path | None:
    """One panel per series (their scales differ): the value of every run, dashed lines at the
    change points, and each level's mean drawn flat across its runs."""
    series = [s for s in series if s.values]
    if not series:
        return None
    fig = _figure(9.0, 1.0 + 2.0 * len(series))
    axes = fig.subplots(len(series), 1, squeeze=False)[:, 0]
    for ax, s in zip(axes, series, strict=True):
        scale, unit = (1000.0, "ms") if s.unit == "us" else (1.0, s.unit)
        xs = list(range(len(s.values)))
        ys = [v / scale for v in s.values]
        ax.plot(xs, ys, marker="o", markersize=3, color=CURRENT_COLOR, linewidth=1.2)
        cuts = sorted(c.point.index for c in changes if c.series is s)
        for start, end in zip([0, *cuts], [*cuts, len(ys)], strict=True):
            level = sum(ys[start:end]) / (end - start)
            ax.hlines(level, start - 0.4, end - 0.6, color="#57606a", linewidth=1.0)
        for c in changes:
            if c.series is s:
                ax.axvline(
                    c.point.index - 0.5, color="#cf222e" if c.is_slowdown else "#1a7f37", linestyle="--", linewidth=1.2
                )
                ax.annotate(
                    c.describe(),
                    (c.point.index - 0.5, 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, -10),
                    textcoords="offset points",
                    fontsize=7,
                )
        step = max(1, len(xs) // 12)
        ax.set_xticks(xs[::step], [str(s.runs[i].id) for i in xs[::step]], fontsize=7)
        ax.set_xlabel("run", fontsize=8)
        ax.set_ylabel(f"{metric_label(s.metric)} ({unit})", fontsize=8)
        lo, hi = min(ys), max(ys)
        pad = max((hi - lo) * 0.5, abs(hi) * 0.01, 1e-3)
        ax.set_ylim(lo - pad, hi + pad)  # zoomed: the point is to see small level changes
        ax.grid(True, alpha=0.3)
        ax.set_title(s.nodeid, fontsize=9, loc="left")
    return _save(fig, path)
