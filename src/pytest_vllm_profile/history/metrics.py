"""The numbers of one test that the history keeps: metric name -> (value, unit).

Names are dotted and stable, so a series is the same metric of the same test over runs:

    step.<kind>.median_us            median step time of that step kind (GPU kernel or CPU op time)
    step.<kind>.count                steps of that kind
    layer.<kind>.median_us           median over layers of each layer's median time in that kind
    class.<kind>.<class>.us_per_step kernel time of one kernel class (gemm, attention, ...) per step
    kernels.<kind>.per_step          kernels launched per step
    count.token_steps, count.layer_count
    latency.request.median_s         median latency of the profiled requests
    latency.<field>...               numeric fields of a timed-pass latency result, when the results carry one
"""

from __future__ import annotations

import statistics
from typing import Any

import msgspec

from ..results import TestResult
from ..summary import STEP_KINDS, ProfileSummary

Metrics = dict[str, tuple[float, str]]
# TestResult fields that may hold a timed-pass latency result (the timed pass adds one); read
# as plain data so the history needs no change when that result grows a field.
LATENCY_FIELDS = ("latency", "timed_pass")
_MAX_DEPTH = 3


def _median_step_us(summary: ProfileSummary, kind: str) -> float | None:
    # the summary's own median when it has per-kind stats, else the median over its steps
    # (report.tables.median_step_us reads it the same way; the history does not import reports)
    stats = summary.step_kinds.get(kind)  # type: ignore[call-overload]
    if stats is not None and stats.count:
        return float(stats.median_gpu_time_us)
    times = [s.gpu_time_us for s in summary.steps_of(kind)]
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


def _unit_of(name: str) -> str:
    for suffix, unit in (("_us", "us"), ("_ms", "ms"), ("_s", "s")):
        if name.endswith(suffix):
            return unit
    return "value"


def _flatten(prefix: str, value: Any, out: Metrics, depth: int = 0) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        out[prefix] = (float(value), _unit_of(prefix))
    elif isinstance(value, dict) and depth < _MAX_DEPTH:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, out, depth + 1)
    # lists (per-request samples) are not series of runs: left out


def latency_metrics(test: TestResult) -> Metrics:
    """The latency numbers of a test, from its requests and any timed-pass result it carries."""
    out: Metrics = {}
    latencies = [r.latency_s for r in test.requests]
    if latencies:
        out["latency.request.median_s"] = (statistics.median(latencies), "s")
    for field in LATENCY_FIELDS:
        value = getattr(test, field, None)
        if value is not None:
            _flatten("latency", msgspec.to_builtins(value), out)
    return out


def metrics_of_test(test: TestResult) -> Metrics:
    """Every metric of one test result (none for a test without a summary or requests)."""
    out = _summary_metrics(test.summary) if test.summary is not None else {}
    out.update(latency_metrics(test))
    return {name: (v, unit) for name, (v, unit) in out.items() if v == v and abs(v) != float("inf")}
