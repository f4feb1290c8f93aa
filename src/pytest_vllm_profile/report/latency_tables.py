"""Latency of a test's timed pass, baseline vs candidate, for every report (issue 12).

Rows are built from the results file alone (`TestResult.timed_pass`, `.baseline_timed_pass`), so
the terminal section, the GitHub job summary and the HTML report show the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from msgspec import UnsetType

from ..latency import LATENCY_METRICS, PERCENTILES, LatencyMetric, TimedPassResult
from ..results import TestResult

LABELS: dict[str, str] = {"ttft_ms": "TTFT", "tpot_ms": "TPOT", "itl_ms": "ITL", "e2e_ms": "e2e"}


@dataclass
class LatencyRow:
    """One latency metric (ms): p50/p90/p99 of the candidate and of the baseline (None: absent)."""

    metric: LatencyMetric
    label: str
    candidate: tuple[float, ...] | None  # one value per PERCENTILES
    baseline: tuple[float, ...] | None

    def delta_pct(self, i: int) -> float | None:
        if self.candidate is None or self.baseline is None or self.baseline[i] <= 0:
            return None
        return 100 * (self.candidate[i] - self.baseline[i]) / self.baseline[i]


def timed_of(value: TimedPassResult | UnsetType | None) -> TimedPassResult | None:
    return None if value is None or isinstance(value, UnsetType) else value


def _percentiles(timed: TimedPassResult | None, metric: LatencyMetric) -> tuple[float, ...] | None:
    dist = timed.distribution(metric) if timed is not None else None
    return tuple(dist.percentile(p) for p in PERCENTILES) if dist is not None else None


def latency_rows(test: TestResult) -> list[LatencyRow]:
    """TTFT, TPOT, ITL, e2e rows of a test; [] when it had no timed pass."""
    cand, base = timed_of(test.timed_pass), timed_of(test.baseline_timed_pass)
    if cand is None:
        return []
    rows = [LatencyRow(m, LABELS[m], _percentiles(cand, m), _percentiles(base, m)) for m in LATENCY_METRICS]
    return [r for r in rows if r.candidate is not None]


def throughput_line(test: TestResult) -> str:
    """ "output 123.4 tok/s, 12.3 req/s (baseline 130.0 tok/s, 13.0 req/s)", medians over the timed repeats."""
    cand, base = timed_of(test.timed_pass), timed_of(test.baseline_timed_pass)
    if cand is None:
        return ""

    def of(t: TimedPassResult) -> str:
        tok, req = t.throughput("output_tokens_per_s"), t.throughput("requests_per_s")
        return f"{tok.median:.1f} tok/s, {req.median:.2f} req/s" if tok is not None and req is not None else "n/a"

    return f"output {of(cand)}" + (f" (baseline {of(base)})" if base is not None else "")


def fmt_ms(values: tuple[float, ...] | None) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values is not None else "–"


def percentile_header() -> str:
    return "/".join(f"p{p:g}" for p in PERCENTILES)


def latency_plot(test: TestResult, path: Path, metric: LatencyMetric = "tpot_ms") -> Path | None:
    """Histogram of `metric`'s samples, baseline vs candidate (None without a timed pass)."""
    from .plots import _figure, _save

    cand, base = timed_of(test.timed_pass), timed_of(test.baseline_timed_pass)
    if cand is None or not cand.samples(metric):
        return None
    fig = _figure(7, 3)
    ax = fig.add_subplot(1, 1, 1)
    series = [("candidate", cand.samples(metric))] + ([("baseline", base.samples(metric))] if base else [])
    everything = [v for _, s in series for v in s]
    bins = 30 if max(everything) > min(everything) else 1
    for label, samples in series:
        ax.hist(
            samples, bins=bins, range=(min(everything), max(everything)), alpha=0.5, label=f"{label} ({len(samples)})"
        )
    ax.set_xlabel(f"{LABELS[metric]} (ms)")
    ax.set_ylabel("samples")
    ax.set_title(f"{LABELS[metric]} distribution, every timed repeat")
    ax.legend()
    return _save(fig, path)
