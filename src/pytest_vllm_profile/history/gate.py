"""The nightly gate over the history: change points of every series, said in words.

A change point is where a series moves to a new level (history/changepoints.py finds them).
For times a rise is a slowdown, for throughputs a fall; for counts any change is news. The gate fails on a slowdown
that still holds: the last change point of a series, a rise of at least `min_change`, within
the newest `window` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .changepoints import DEFAULT_MIN_SIZE, DEFAULT_PERMUTATIONS, DEFAULT_PVALUE, ChangePoint, e_divisive
from .store import RunRecord, Series

# Smallest level change reported (fraction of the level before): the comparison's own default
# tolerance is 2 %, and the history is for what passes it run to run.
DEFAULT_MIN_CHANGE = 0.01
# A slowdown fails the gate while its change point is among the newest runs (by then the
# history has min_size runs on the new level, so it is found at the earliest min_size runs late).
DEFAULT_GATE_WINDOW = 10
TIME_UNITS = ("us", "ms", "s")  # a rise is slower
RATE_UNITS = ("per_s",)  # a fall is slower


@dataclass(frozen=True)
class SeriesChange:
    series: Series
    point: ChangePoint

    @property
    def run(self) -> RunRecord:
        """The first run on the new level."""
        return self.series.runs[self.point.index]

    @property
    def is_slowdown(self) -> bool:
        rel = self.point.relative_change
        if rel is None:
            return False
        return (self.series.unit in TIME_UNITS and rel > 0) or (self.series.unit in RATE_UNITS and rel < 0)

    def describe(self) -> str:
        """e.g. "decode step +4.0 % since run 12 (commit abc1234, vLLM 0.11.0)"."""
        rel = self.point.relative_change
        size = f"{100 * rel:+.1f} %" if rel is not None else f"{self.point.mean_before:g} -> {self.point.mean_after:g}"
        return f"{metric_label(self.series.metric)} {size} since {self.run.label()}"


def metric_label(metric: str) -> str:
    """Words for a metric name: step.decode.median_us -> "decode step"."""
    parts = metric.split(".")
    if parts[0] == "step" and len(parts) == 3:
        return f"{parts[1]} step" + (" count" if parts[2] == "count" else "")
    if parts[0] == "layer" and len(parts) == 3:
        return f"{parts[1]} layer"
    if parts[0] == "class" and len(parts) == 4:
        return f"{parts[1]} {parts[2]} time per step"
    if parts[0] == "kernels" and len(parts) == 3:
        return f"{parts[1]} kernels per step"
    if parts[0] == "count" and len(parts) == 2:
        return parts[1].replace("_", " ")
    return metric


def significant(point: ChangePoint, min_change: float) -> bool:
    rel = point.relative_change
    return rel is None or abs(rel) >= min_change


def detect(
    series: Sequence[Series],
    *,
    min_change: float = DEFAULT_MIN_CHANGE,
    pvalue: float = DEFAULT_PVALUE,
    permutations: int = DEFAULT_PERMUTATIONS,
    min_size: int = DEFAULT_MIN_SIZE,
    seed: int = 0,
) -> list[SeriesChange]:
    """Every change point of every series at least `min_change` large, series by series in order."""
    out = []
    for s in series:
        for point in e_divisive(s.values, pvalue=pvalue, permutations=permutations, min_size=min_size, seed=seed):
            if significant(point, min_change):
                out.append(SeriesChange(s, point))
    return out


def current_slowdowns(changes: Sequence[SeriesChange], window: int = DEFAULT_GATE_WINDOW) -> list[SeriesChange]:
    """The slowdowns that fail the gate: per series its last change point, when that is a rise
    that starts within the newest `window` runs of the series."""
    last: dict[int, SeriesChange] = {}
    for c in changes:
        key = id(c.series)
        if key not in last or c.point.index > last[key].point.index:
            last[key] = c
    return [c for c in last.values() if c.is_slowdown and c.point.index >= len(c.series.values) - window]
