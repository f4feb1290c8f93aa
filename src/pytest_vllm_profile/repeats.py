"""Combine the summaries of repeated profiles of one workload into one, plus its noise.

A baseline is the per-metric median of N repeats; the relative spread (max - min) / median
of each timing tells the comparison how noisy that metric is, so noise does not fail a run.
The step structure (token steps, layers per step, the sequence of step kinds) must be identical
across repeats: when it is not, the workload is not deterministic and no baseline made from it
could be trusted. Which kernels run may legitimately vary (measured on a real H100, vLLM 0.26):
cuBLAS picks GEMM tiles by token count, and how a batch's prompts split between the prefill
and the following mixed step depends on arrival timing; async copies land in whichever step
is running. Such kernels are combined over the union of the repeats (0 where absent) and
listed as unstable, not rejected.
"""

from __future__ import annotations

import copy
import statistics
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType

from .errors import AnalysisError
from .summary import KernelKindStats, KernelSummary, Micros, ProfileSummary, StepKind, StepKindOverhead

# The remedy named when nothing is known about the workload (advice.step_structure_advice knows it).
GENERIC_ADVICE = "the workload is not deterministic (use temperature=0, ignore_eos=True and a fixed max_tokens)"

Relative = Annotated[float, msgspec.Meta(ge=0)]  # (max - min) / median


class RepeatSpread(msgspec.Struct, forbid_unknown_fields=True):
    """Relative spread (max - min) / median of each timing across the repeats (0 for one repeat).

    Files written before a field existed lack it: every field but `repeats` has a default.
    """

    repeats: Annotated[int, msgspec.Meta(ge=1)]
    total_kernel_us: Relative = 0.0
    # step kind -> spread of the median step time
    step_op_time_us: dict[str, Relative] = msgspec.field(default_factory=dict)
    # step kind -> kernel name -> spread
    kernel_us_per_step: dict[str, dict[str, Relative]] = msgspec.field(default_factory=dict)
    # step kind -> spread per layer index
    layer_time_us: dict[str, list[Relative]] = msgspec.field(default_factory=dict)
    # Kernels launched in some repeats only, or a different number of times (memory copies
    # excepted unless missing from a repeat): their counts cannot be held exact.
    unstable_kernels: list[str] = msgspec.field(default_factory=list)
    # The samples the statistical rule (significance.py) tests, every repeat kept (issue 13):
    # step kind -> repeat -> time of each step of that kind; UNSET (not written) in 0.1.0 files.
    step_samples_us: dict[str, list[list[Micros]]] | UnsetType = UNSET
    # step kind -> repeat -> step -> time of each layer
    layer_samples_us: dict[str, list[list[list[Micros]]]] | UnsetType = UNSET
    # step kind -> overhead metric ("median_wall_us", "median_period_us", "median_gpu_busy_us",
    # "median_gpu_idle_us") -> each repeat's value: the samples the comparison judges noise on (issue 12).
    # UNSET (left out of the file) in spreads recorded before it existed.
    step_overhead_us: dict[str, dict[str, list[float]]] | UnsetType = UNSET


def kernel_us_per_step(summary: ProfileSummary, kind: StepKind) -> dict[str, float]:
    """Kernel name -> microseconds that kernel takes per step of `kind` (its total / step count)."""
    stats = summary.step_kinds.get(kind)
    if stats is None or stats.count == 0:
        return {}
    return {k.name: k.per_step_kind[kind].total_us / stats.count for k in summary.kernels if kind in k.per_step_kind}


def relative_spread(values: list[float]) -> float:
    """(max - min) / median; 0 when there is a single value or the median is 0."""
    if len(values) < 2:
        return 0.0
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid > 0 else 0.0


def _structure_signature(summary: ProfileSummary) -> dict[str, Any]:
    """What must not change between repeats of a deterministic workload (kernels may: see module doc)."""
    return {
        "timing_domain": summary.timing_domain,
        "token_steps": summary.token_steps,
        "layer_count": summary.layer_count,
        "step kinds": [s.kind for s in summary.steps],
        "layers per step": [len(s.layers) for s in summary.steps],
        "layers per step kind": {k: len(v.median_layer_time_us) for k, v in summary.step_kinds.items()},
    }


def _describe_difference(a: Any, b: Any, label: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                return f"{label} of {key}: {a.get(key)!r} vs {b.get(key)!r}"
    return f"{label}: {a!r} vs {b!r}"


def _compared_structure_signature(summary: ProfileSummary, step_kinds: tuple[str, ...]) -> dict[str, Any]:
    """What must not change between repeats when only `step_kinds` steps are compared."""
    return {
        "timing_domain": summary.timing_domain,
        "layer_count": summary.layer_count,
        "step count per compared kind": {k: sum(1 for s in summary.steps if s.kind == k) for k in step_kinds},
        "layers per compared step": [len(s.layers) for s in summary.steps if s.kind in step_kinds],
    }


def check_same_structure(
    summaries: list[ProfileSummary], step_kinds: tuple[str, ...] | None = None, advice: str | None = None
) -> None:
    """Raise `AnalysisError` naming the first structural difference between repeats, and `advice`
    (what to change in the workload: `advice.step_structure_advice`) as the remedy.

    With `step_kinds` (a workload's `compare_step_kinds`) only the structure of those steps
    must match: e.g. a batch whose prompts split differently between prefill and mixed steps.
    """

    def signature(summary: ProfileSummary) -> dict[str, Any]:
        if step_kinds is None:
            return _structure_signature(summary)
        return _compared_structure_signature(summary, step_kinds)

    first = signature(summaries[0])
    for i, other in enumerate(summaries[1:], start=1):
        sig = signature(other)
        for label, value in first.items():
            if sig[label] != value:
                raise AnalysisError(
                    f"repeat 0 ({', '.join(summaries[0].source) or '?'}) and repeat {i} "
                    f"({', '.join(other.source) or '?'}) differ in "
                    f"{_describe_difference(value, sig[label], label)}, so its repeats cannot be combined: "
                    f"{advice or GENERIC_ADVICE}"
                )


def _launch_signature(kernel: KernelSummary | None) -> Any:
    if kernel is None:
        return None
    if kernel.kernel_class == "memory":
        # Which step an async copy lands in depends on timing (measured: real H100 repeats put
        # 14 vs 12 of the same 20 DtoH copies inside decode steps): only presence counts.
        return "present"
    return (kernel.count, sorted((kind, s.count) for kind, s in kernel.per_step_kind.items()))


def find_unstable_kernels(summaries: list[ProfileSummary]) -> list[str]:
    """Kernel names absent from some repeat, or (non-memory) launched a different number of times."""
    by_name = [{k.name: k for k in s.kernels} for s in summaries]
    names = sorted(set().union(*by_name))
    return [name for name in names if len({repr(_launch_signature(m.get(name))) for m in by_name}) > 1]


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _combine_kernel(name: str, repeats: list[KernelSummary | None]) -> KernelSummary | None:
    """Median over the repeats, a repeat without the kernel counting 0 launches / 0 µs.

    None when the median launch count is 0 (absent from most repeats). Per-launch statistics
    (mean, median, p90, min, max) are medians over the repeats that launched it.
    """
    present = [k for k in repeats if k is not None]
    count = _median([float(k.count) if k is not None else 0.0 for k in repeats])
    if count <= 0 or not present:
        return None
    out = copy.deepcopy(present[0])
    out.count = max(1, int(round(count)))
    out.total_us = _median([k.total_us if k is not None else 0.0 for k in repeats])
    out.mean_us = _median([k.mean_us for k in present])
    out.median_us = _median([k.median_us for k in present])
    out.p90_us = _median([k.p90_us for k in present])
    out.min_us = _median([k.min_us for k in present])
    out.max_us = _median([k.max_us for k in present])
    out.per_step_kind = {}
    for kind in sorted({kind for k in present for kind in k.per_step_kind}):
        stats = [k.per_step_kind.get(kind) if k is not None else None for k in repeats]
        kind_count = _median([float(s.count) if s is not None else 0.0 for s in stats])
        if kind_count <= 0:
            continue
        total = _median([s.total_us if s is not None else 0.0 for s in stats])
        n = max(1, int(round(kind_count)))
        out.per_step_kind[kind] = KernelKindStats(count=n, total_us=total, mean_us=total / n)
    return out


def _combine_launches_per_step(per: list[dict[str, float]]) -> dict[str, float]:
    """Median launches per step over the union of kernel names (0 where a repeat lacks one)."""
    out: dict[str, float] = {}
    for name in sorted(set().union(*per)):
        value = _median([p.get(name, 0.0) for p in per])
        if value > 0 or all(name in p for p in per):
            out[name] = value
    return out


def combine_repeats(
    summaries: list[ProfileSummary], step_kinds: tuple[str, ...] | None = None, advice: str | None = None
) -> tuple[ProfileSummary, RepeatSpread]:
    """Per-metric medians across repeats, and the relative spread of each timing.

    The combined summary keeps the first repeat's step structure (identical in every repeat,
    checked) with every time replaced by the median over the repeats. Kernels are combined over
    the union of the repeats; those that differ between repeats are listed in the spread's
    `unstable_kernels` and in the summary's notes.

    With `step_kinds`, only those kinds' step structure must match; the step list is that of
    the most common structure among the repeats (per-step medians over the repeats that share
    it) and each step kind is combined over the repeats that have it.
    """
    if not summaries:
        raise AnalysisError("combine_repeats needs at least one summary, got none")
    check_same_structure(summaries, step_kinds, advice)
    if step_kinds is None:  # check_same_structure made sure every repeat has the same steps
        return _combine_same_structure(summaries)
    structures = [str(_structure_signature(s)) for s in summaries]
    if len(set(structures)) > 1:
        common = max(structures, key=structures.count)
        first = structures.index(common)
        steps_note = (
            f"step structure differs between repeats (token steps "
            f"{', '.join(str(s.token_steps) for s in summaries)}); only "
            f"{', '.join(step_kinds)} steps are held to it"
        )
        all_summaries = summaries
        summaries = [all_summaries[first]] + [
            s for i, s in enumerate(all_summaries) if structures[i] == common and i != first
        ]
        combined, spread = _combine_same_structure(summaries, kind_summaries=all_summaries)
        combined.source = [src for s in all_summaries for src in s.source]
        combined.notes = [*combined.notes, steps_note]
        spread.repeats = len(all_summaries)
        return combined, spread
    return _combine_same_structure(summaries)


def _combine_step_kinds(out: ProfileSummary, spread: RepeatSpread, summaries: list[ProfileSummary]) -> None:
    """Per step kind: medians over every repeat that has the kind, and their relative spread."""
    for kind, stats in out.step_kinds.items():
        per = [s.step_kinds[kind] for s in summaries if kind in s.step_kinds]
        medians = [p.median_op_time_us for p in per]
        stats.median_op_time_us = _median(medians)
        stats.mean_op_time_us = _median([p.mean_op_time_us for p in per])
        stats.min_op_time_us = _median([p.min_op_time_us for p in per])
        stats.max_op_time_us = _median([p.max_op_time_us for p in per])
        stats.kernels_per_step = _combine_launches_per_step([p.kernels_per_step for p in per])
        spread.step_op_time_us[kind] = relative_spread(medians)
        # Layer lists line up by index (same layer count in every repeat: checked).
        width = len(stats.median_layer_time_us)
        same_layers = [p.median_layer_time_us for p in per if len(p.median_layer_time_us) == width]
        columns = [list(c) for c in zip(*same_layers, strict=True)]
        stats.median_layer_time_us = [_median(c) for c in columns]
        spread.layer_time_us[kind] = [relative_spread(c) for c in columns]
        per_kernel = [kernel_us_per_step(s, kind) for s in summaries if kind in s.step_kinds]
        having = [s for s in summaries if kind in s.step_kinds]
        if isinstance(spread.step_samples_us, UnsetType) or isinstance(spread.layer_samples_us, UnsetType):
            spread.step_samples_us, spread.layer_samples_us = {}, {}
        spread.step_samples_us[kind] = [[st.op_time_us for st in s.steps if st.kind == kind] for s in having]
        spread.layer_samples_us[kind] = [
            [[layer.time_us for layer in st.layers] for st in s.steps if st.kind == kind] for s in having
        ]
        spread.kernel_us_per_step[kind] = {
            name: relative_spread([pk.get(name, 0.0) for pk in per_kernel]) for name in sorted(set().union(*per_kernel))
        }


STEP_OVERHEAD_FIELDS = ("period_us", "gpu_busy_us", "gpu_idle_us")  # StepSummary's overhead times
OVERHEAD_METRICS = ("median_wall_us", "median_period_us", "median_gpu_busy_us", "median_gpu_idle_us")


def _combine_step_overhead(out: ProfileSummary, spread: RepeatSpread, summaries: list[ProfileSummary]) -> None:
    """Per step kind: each overhead median over the repeats that have it; every repeat's value in the spread."""
    combined: dict[str, StepKindOverhead] = {}
    samples_by_kind: dict[str, dict[str, list[float]]] = {}
    for kind in sorted({k for s in summaries for k in s.overhead_by_kind()}):
        per = [s.overhead_by_kind()[kind] for s in summaries if kind in s.overhead_by_kind()]
        values: dict[str, float | None] = {}
        samples: dict[str, list[float]] = {}
        for metric in (*OVERHEAD_METRICS, "median_kernel_launches", "median_graph_launches"):
            got = [v for p in per if (v := getattr(p, metric)) is not None]
            values[metric] = _median(got) if got else None
            if metric in OVERHEAD_METRICS and got:
                samples[metric] = [float(v) for v in got]
        wall = values["median_wall_us"] or 0.0
        idle = values["median_gpu_idle_us"]
        combined[kind] = StepKindOverhead(
            kind=kind,
            steps=int(round(_median([float(p.steps) for p in per]))),
            median_wall_us=wall,
            median_period_us=values["median_period_us"],
            median_gpu_busy_us=values["median_gpu_busy_us"],
            median_gpu_idle_us=idle,
            gpu_idle_fraction=idle / wall if idle is not None and wall > 0 else None,
            median_kernel_launches=values["median_kernel_launches"],
            median_graph_launches=values["median_graph_launches"],
        )
        samples_by_kind[kind] = samples
    if combined:
        out.step_overhead = combined
        spread.step_overhead_us = samples_by_kind


def _combine_same_structure(
    summaries: list[ProfileSummary], kind_summaries: list[ProfileSummary] | None = None
) -> tuple[ProfileSummary, RepeatSpread]:
    """Combine repeats of one step structure; step kinds over `kind_summaries` (default: the same)."""
    n = len(summaries)
    out = copy.deepcopy(summaries[0])
    out.source = [src for s in summaries for src in s.source]
    spread = RepeatSpread(repeats=n)

    totals = [s.total_kernel_us for s in summaries]
    out.total_kernel_us = _median(totals)
    spread.total_kernel_us = relative_spread(totals)

    # Steps: same index, same kind in every repeat (checked), so the i-th steps line up; the
    # request split of a step may differ (kept from the first repeat).
    for i, step in enumerate(out.steps):
        step.wall_time_us = _median([s.steps[i].wall_time_us for s in summaries])
        step.op_time_us = _median([s.steps[i].op_time_us for s in summaries])
        step.kernel_count = int(round(_median([float(s.steps[i].kernel_count) for s in summaries])))
        if not isinstance(step.period_us, UnsetType):  # steps with overhead values (0.2 on)
            for name in STEP_OVERHEAD_FIELDS:
                values = [float(v) for s in summaries if isinstance(v := getattr(s.steps[i], name), (int, float))]
                setattr(step, name, _median(values) if values else None)
            for name in ("kernel_launches", "graph_launches"):
                counts = [float(v) for s in summaries if isinstance(v := getattr(s.steps[i], name), int)]
                setattr(step, name, int(round(_median(counts))) if counts else None)
        for j, layer in enumerate(step.layers):
            layer.time_us = _median([s.steps[i].layers[j].time_us for s in summaries])

    _combine_step_kinds(out, spread, summaries if kind_summaries is None else kind_summaries)
    _combine_step_overhead(out, spread, summaries if kind_summaries is None else kind_summaries)

    by_name = [{k.name: k for k in s.kernels} for s in summaries]
    kernels = [_combine_kernel(name, [m.get(name) for m in by_name]) for name in sorted(set().union(*by_name))]
    out.kernels = [k for k in kernels if k is not None]
    for kernel in out.kernels:
        kernel.share = kernel.total_us / out.total_kernel_us if out.total_kernel_us > 0 else 0.0
    out.kernels.sort(key=lambda k: k.total_us, reverse=True)

    spread.unstable_kernels = find_unstable_kernels(summaries)
    if spread.unstable_kernels:
        shorts = {k.name: k.short_name or k.name for s in summaries for k in s.kernels}
        listed = ", ".join(shorts[name] for name in spread.unstable_kernels[:6])
        more = f" and {len(spread.unstable_kernels) - 6} more" if len(spread.unstable_kernels) > 6 else ""
        out.notes = [
            *out.notes,
            (
                f"{len(spread.unstable_kernels)} kernel(s) differ between the {n} repeats (launched in some only, "
                f"or a different number of times; combined with 0 where absent): {listed}{more}"
            ),
        ]

    median_decode_us = out.step_kinds["decode"].median_op_time_us if "decode" in out.step_kinds else 0.0
    if out.roofline is not None and median_decode_us > 0:
        # Achieved bandwidth scales with 1 / step time: rescale (analysis.roofline, which
        # derives it, would pull pandas into a JSON-only compare). Time and fraction move together.
        out.roofline.fraction *= out.roofline.decode_step_time_us / median_decode_us
        out.roofline.decode_step_time_us = median_decode_us
    if n > 1:
        out.notes = [*out.notes, f"median of {n} repeats"]
    return out, spread
