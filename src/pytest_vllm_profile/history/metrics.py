"""The numbers of one test that the history keeps: metric name -> (value, unit).

Names are dotted and stable, so a series is the same metric of the same test over runs:

    step.<kind>.median_us            median step time of that step kind (GPU kernel or CPU op time)
    step.<kind>.count                steps of that kind
    layer.<kind>.median_us           median over layers of each layer's median time in that kind
    class.<kind>.<class>.us_per_step kernel time of one kernel class (gemm, attention, ...) per step
    kernels.<kind>.per_step          kernels launched per step
    count.token_steps, count.layer_count
    latency.request.median_s         median latency of the profiled requests
    latency.<ttft|tpot|itl|e2e>.<median|p90>_ms   the timed pass's latencies, pooled over its repeats
    throughput.<output_tokens|requests|total_tokens>.median_per_s   median over the timed repeats
"""

from __future__ import annotations

import statistics

from ..latency import LATENCY_METRICS, THROUGHPUT_METRICS, TimedPassResult
from ..results import TestResult
from ..summary import STEP_KINDS, ProfileSummary

Metrics = dict[str, tuple[float, str]]
# The TestResult field of the timed (unprofiled) pass (issue 12); read with getattr so results
# without it (0.1.0 files, runs without a timed pass) simply have no timed-pass metrics.
TIMED_PASS_FIELD = "timed_pass"


def _median_step_us(summary: ProfileSummary, kind: str) -> float | None:
    # the summary's own median when it has per-kind stats, else the median over its steps
    # (report.tables.median_step_us reads it the same way; the history does not import reports)
    stats = summary.step_kinds.get(kind)  # type: ignore[call-overload]
    if stats is not None and stats.count:
        return float(stats.median_op_time_us)
    times = [s.op_time_us for s in summary.steps_of(kind)]
    return statistics.median(times) if times else None


def _class_times(summary: ProfileSummary, kind: str, steps: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in summary.kernels:
        stats = k.per_step_kind.get(kind)  # type: ignore[call-overload]
        if stats is not None:
            out[k.kernel_class] = out.get(k.kernel_class, 0.0) + stats.total_us / steps
    return out


def _summary_metrics(summary: ProfileSummary) -> Metrics:
    out: Metrics = {
        "count.token_steps": (float(summary.token_steps), "count"),
        "count.layer_count": (float(summary.layer_count), "count"),
    }
    for kind in STEP_KINDS:
        median = _median_step_us(summary, kind)
        if median is None:
            continue
        out[f"step.{kind}.median_us"] = (median, "us")
        stats = summary.step_kinds.get(kind)
        steps = stats.count if stats is not None else len(summary.steps_of(kind))
        out[f"step.{kind}.count"] = (float(steps), "count")
        if stats is not None and stats.median_layer_time_us:
            out[f"layer.{kind}.median_us"] = (statistics.median(stats.median_layer_time_us), "us")
        if stats is not None and stats.kernels_per_step:
            out[f"kernels.{kind}.per_step"] = (float(sum(stats.kernels_per_step.values())), "count")
        if steps:
            for cls, us in sorted(_class_times(summary, kind, steps).items()):
                out[f"class.{kind}.{cls}.us_per_step"] = (us, "us")
    return out


def timed_pass_metrics(timed: TimedPassResult) -> Metrics:
    """Median and p90 of each latency metric pooled over the timed repeats, and the median over
    repeats of each throughput."""
    out: Metrics = {}
    for metric in LATENCY_METRICS:
        dist = timed.distribution(metric)
        if dist is not None:
            name = metric.removesuffix("_ms")
            out[f"latency.{name}.median_ms"] = (dist.median, "ms")
            if "p90" in dist.percentiles:
                out[f"latency.{name}.p90_ms"] = (dist.percentiles["p90"], "ms")
    for rate in THROUGHPUT_METRICS:
        dist = timed.throughput(rate)
        if dist is not None:
            out[f"throughput.{rate.removesuffix('_per_s')}.median_per_s"] = (dist.median, "per_s")
    return out


def latency_metrics(test: TestResult) -> Metrics:
    """The latency numbers of a test: its profiled requests, and its timed pass when it has one."""
    out: Metrics = {}
    latencies = [r.latency_s for r in test.requests]
    if latencies:
        out["latency.request.median_s"] = (statistics.median(latencies), "s")
    timed = getattr(test, TIMED_PASS_FIELD, None)  # UNSET / missing: no timed pass ran
    if isinstance(timed, TimedPassResult):
        out.update(timed_pass_metrics(timed))
    return out


def metrics_of_test(test: TestResult) -> Metrics:
    """Every metric of one test result (none for a test without a summary or requests)."""
    out = _summary_metrics(test.summary) if test.summary is not None else {}
    out.update(latency_metrics(test))
    return {name: (v, unit) for name, (v, unit) in out.items() if v == v and abs(v) != float("inf")}
