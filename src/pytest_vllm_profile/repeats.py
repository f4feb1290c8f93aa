"""Combine the summaries of repeated profiles of one workload into one, plus its noise.

A baseline is the per-metric median of N repeats; the relative spread (max - min) / median
of each timing tells the comparison how noisy that metric is, so noise does not fail a run.
Counts (steps, layers, kernel launches) must be identical across repeats: when they are not,
the workload is not deterministic and no baseline made from it could be trusted.
"""
from __future__ import annotations

import copy
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import AnalysisError
from .summary import ProfileSummary


@dataclass
class RepeatSpread:
    """Relative spread (max - min) / median of each timing across the repeats (0 for one repeat)."""

    repeats: int
    total_kernel_us: float = 0.0
    step_gpu_time_us: dict[str, float] = field(default_factory=dict)  # step kind -> spread of median step time
    kernel_us_per_step: dict[str, dict[str, float]] = field(default_factory=dict)  # step kind -> kernel name -> spread
    layer_time_us: dict[str, list[float]] = field(default_factory=dict)  # step kind -> spread per layer index

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RepeatSpread":
        return cls(
            repeats=int(data["repeats"]),
            total_kernel_us=float(data.get("total_kernel_us", 0.0)),
            step_gpu_time_us={k: float(v) for k, v in data.get("step_gpu_time_us", {}).items()},
            kernel_us_per_step={k: {n: float(x) for n, x in v.items()} for k, v in data.get("kernel_us_per_step", {}).items()},
            layer_time_us={k: [float(x) for x in v] for k, v in data.get("layer_time_us", {}).items()},
        )

    def max_spread(self) -> float:
        """The largest spread of any step-level timing (a one-number noise level for messages)."""
        values = [self.total_kernel_us, *self.step_gpu_time_us.values()]
        return max(values) if values else 0.0


def kernel_us_per_step(summary: ProfileSummary, kind: str) -> dict[str, float]:
    """Kernel name -> microseconds that kernel takes per step of `kind` (its total / step count)."""
    stats = summary.step_kinds.get(kind)
    if stats is None or stats.count == 0:
        return {}
    return {
        k.name: k.per_step_kind[kind].total_us / stats.count
        for k in summary.kernels
        if kind in k.per_step_kind
    }


def relative_spread(values: list[float]) -> float:
    """(max - min) / median; 0 when there is a single value or the median is 0."""
    if len(values) < 2:
        return 0.0
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid > 0 else 0.0


def _count_signature(summary: ProfileSummary) -> dict[str, Any]:
    """Everything that must not change between repeats of a deterministic workload."""
    return {
        "timing_domain": summary.timing_domain,
        "token_steps": summary.token_steps,
        "layer_count": summary.layer_count,
        "step kinds": [s.kind for s in summary.steps],
        "step kind counts": {k: v.count for k, v in summary.step_kinds.items()},
        "kernel names": sorted(k.name for k in summary.kernels),
        "kernel launches": {k.name: k.count for k in summary.kernels},
        # Which step an async copy lands in depends on timing (measured: the real H100 pair
        # base-rep0/rep1 puts 12 vs 8 of the same 20 DtoH copies inside decode steps), so
        # memory ops are held to their total and per-step median counts only.
        "kernel launches per step kind": {
            k.name: {kind: s.count for kind, s in k.per_step_kind.items()}
            for k in summary.kernels if k.kernel_class != "memory"
        },
        "launches per step (median)": {k: dict(v.kernels_per_step) for k, v in summary.step_kinds.items()},
        "layers per step kind": {k: len(v.median_layer_time_us) for k, v in summary.step_kinds.items()},
        "layers per step": [len(s.layers) for s in summary.steps],
    }


def _describe_difference(a: Any, b: Any, label: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                return f"{label} of {key}: {a.get(key)!r} vs {b.get(key)!r}"
    if isinstance(a, list) and isinstance(b, list) and label == "kernel names":
        only_a = sorted(set(a) - set(b))[:3]
        only_b = sorted(set(b) - set(a))[:3]
        return f"kernel names differ (only in the first: {only_a}; only in the other: {only_b})"
    return f"{label}: {a!r} vs {b!r}"


def check_identical_counts(summaries: list[ProfileSummary]) -> None:
    """Raise `AnalysisError` naming the first count that differs between repeats."""
    first = _count_signature(summaries[0])
    for i, other in enumerate(summaries[1:], start=1):
        sig = _count_signature(other)
        for label, value in first.items():
            if sig[label] != value:
                raise AnalysisError(
                    f"repeat 0 ({', '.join(summaries[0].source) or '?'}) and repeat {i} "
                    f"({', '.join(other.source) or '?'}) differ in "
                    f"{_describe_difference(value, sig[label], label)}: the workload is not deterministic "
                    "(use temperature=0, ignore_eos=True and a fixed max_tokens), so its repeats cannot be combined"
                )


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def combine_repeats(summaries: list[ProfileSummary]) -> tuple[ProfileSummary, RepeatSpread]:
    """Per-metric medians across repeats, and the relative spread of each timing.

    The combined summary keeps the first repeat's structure (steps, kernels, layers: identical
    in every repeat, checked) with every time replaced by the median over the repeats.
    """
    if not summaries:
        raise AnalysisError("combine_repeats needs at least one summary, got none")
    check_identical_counts(summaries)
    n = len(summaries)
    out = copy.deepcopy(summaries[0])
    out.source = [src for s in summaries for src in s.source]
    spread = RepeatSpread(repeats=n)

    totals = [s.total_kernel_us for s in summaries]
    out.total_kernel_us = _median(totals)
    spread.total_kernel_us = relative_spread(totals)

    # Steps: same index, same kind in every repeat (checked), so the i-th steps line up.
    for i, step in enumerate(out.steps):
        step.wall_time_us = _median([s.steps[i].wall_time_us for s in summaries])
        step.gpu_time_us = _median([s.steps[i].gpu_time_us for s in summaries])
        for j, layer in enumerate(step.layers):
            layer.time_us = _median([s.steps[i].layers[j].time_us for s in summaries])

    for kind, stats in out.step_kinds.items():
        per = [s.step_kinds[kind] for s in summaries]
        medians = [p.median_gpu_time_us for p in per]
        stats.median_gpu_time_us = _median(medians)
        stats.mean_gpu_time_us = _median([p.mean_gpu_time_us for p in per])
        stats.min_gpu_time_us = _median([p.min_gpu_time_us for p in per])
        stats.max_gpu_time_us = _median([p.max_gpu_time_us for p in per])
        spread.step_gpu_time_us[kind] = relative_spread(medians)
        layer_spreads = []
        for j in range(len(stats.median_layer_time_us)):
            values = [p.median_layer_time_us[j] for p in per]
            stats.median_layer_time_us[j] = _median(values)
            layer_spreads.append(relative_spread(values))
        spread.layer_time_us[kind] = layer_spreads
        per_kernel = [kernel_us_per_step(s, kind) for s in summaries]
        spread.kernel_us_per_step[kind] = {
            name: relative_spread([pk.get(name, 0.0) for pk in per_kernel]) for name in per_kernel[0]
        }

    by_name = [{k.name: k for k in s.kernels} for s in summaries]
    for kernel in out.kernels:
        repeats = [m[kernel.name] for m in by_name]
        kernel.total_us = _median([k.total_us for k in repeats])
        kernel.mean_us = _median([k.mean_us for k in repeats])
        kernel.median_us = _median([k.median_us for k in repeats])
        kernel.p90_us = _median([k.p90_us for k in repeats])
        kernel.min_us = _median([k.min_us for k in repeats])
        kernel.max_us = _median([k.max_us for k in repeats])
        kernel.share = kernel.total_us / out.total_kernel_us if out.total_kernel_us > 0 else 0.0
        for kind, stats in kernel.per_step_kind.items():
            # memory ops may be missing from a kind in some repeats (see _count_signature)
            present = [k.per_step_kind[kind] for k in repeats if kind in k.per_step_kind]
            stats.count = int(round(_median([float(p.count) for p in present])))
            stats.total_us = _median([p.total_us for p in present])
            stats.mean_us = stats.total_us / stats.count if stats.count else 0.0
    out.kernels.sort(key=lambda k: k.total_us, reverse=True)

    if out.roofline is not None and "decode" in out.step_kinds:
        # Achieved bandwidth scales with 1 / step time; rescale rather than re-derive units.
        before = out.roofline.decode_step_time_us
        out.roofline.decode_step_time_us = out.step_kinds["decode"].median_gpu_time_us
        if out.roofline.decode_step_time_us > 0:
            out.roofline.fraction *= before / out.roofline.decode_step_time_us
    if n > 1:
        out.notes = [*out.notes, f"median of {n} repeats"]
    return out, spread
