"""`summarize`: one profile (a `TraceSet`) -> `ProfileSummary`.

A summary built on damaged trace data (values the reader dropped or deduplicated) carries a
note starting with `damage.DAMAGE_NOTE_PREFIX`; `damage_notes(summary)` lists them.

Per rank: steps (`StepDetector`), layers (`LayerDetector`), kernel statistics
(`KernelStats`), per-step-kind aggregates, device/runtime info, and the decode roofline
when the model's weight bytes and the GPU's peak bandwidth are known.

GPU traces: times are kernel durations; `kernels` lists kernels plus memcpy/memset
(class "memory") with `share` relative to all of them, while `total_kernel_us` and step
`op_time_us` count `kernel` events only.
CPU-only traces (vLLM CPU backend): times are cpu_op times, without double counting of
nested ops (see `cpu_ops`): step and layer times from top-level ops, per-op statistics
from self time; `timing_domain` is "cpu".
Several ranks (tensor parallel): one summary per rank in `ranks`; the top level pools
the ranks' kernels and, per step, takes the slowest rank's time (a TP step ends when its
slowest rank does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from ..damage import damage_notes
from ..errors import AnalysisError, TraceError
from ..events import Category, Trace, TraceSet
from ..summary import (
    STEP_KINDS,
    SUMMARY_SCHEMA_VERSION,
    LayerTiming,
    ProfileSummary,
    StepKind,
    StepKindStats,
    StepSummary,
)
from ..trace import read_trace_set
from ..trace.discovery import READER_NOTES_KEY, SessionChoice
from ..trace.validation import DAMAGE_KEY
from .cpu_ops import self_times, top_level_mask
from .kernels import KernelStats, kernels_per_step
from .layers import LayerDetection, LayerDetector
from .roofline import decode_roofline, peak_bandwidth_gbps
from .step_overhead import StepOverhead, step_overhead
from .steps import GPU_WORK_CATEGORIES, StepDetection, StepDetector


def _timed_table(trace: Trace, domain: str) -> tuple[pd.DataFrame, float]:
    """Rows whose durations are "the time" (name, dur_us, step), and the total for `total_kernel_us`."""
    ev = trace.events
    if domain == "gpu":
        table = ev[ev["category"].isin(GPU_WORK_CATEGORIES)][["name", "dur_us", "step", "category"]]
        total = float(table.loc[table["category"] == Category.KERNEL.value, "dur_us"].sum())
        return table, total
    ops = ev[ev["category"] == Category.CPU_OP.value]
    table = pd.DataFrame(
        {
            "name": ops["name"].to_numpy(),
            "dur_us": self_times(ops),
            "step": ops["step"].to_numpy(),
            "category": ops["category"].to_numpy(),
        }
    )
    return table, float(table["dur_us"].sum())


def _step_times(trace: Trace, domain: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Per step: time (kernel sum, or top-level cpu_op sum) and count of kernels (or top-level ops)."""
    ev = trace.events
    if domain == "gpu":
        rows = ev[(ev["category"] == Category.KERNEL.value) & (ev["step"] >= 0)]
    else:
        ops = ev[(ev["category"] == Category.CPU_OP.value)]
        rows = ops[top_level_mask(ops) & (ops["step"].to_numpy() >= 0)]
    agg = rows.groupby("step")["dur_us"].agg(["sum", "count"]).reindex(range(n_steps), fill_value=0)
    return agg["sum"].to_numpy(dtype=float), agg["count"].to_numpy(dtype=np.int64)


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else 0.0


def _with_step_kinds(table: pd.DataFrame, steps: list[StepSummary]) -> pd.DataFrame:
    """`table` plus a `kind` column: the kind of each row's step, "" outside the steps."""
    kinds = np.array([s.kind for s in steps] + [""], dtype=object)
    st = table["step"].to_numpy()
    return table.assign(kind=kinds[np.where((st >= 0) & (st < len(steps)), st, len(steps))])


def summarize_trace(trace: Trace, *, model_weight_bytes: int | None = None) -> ProfileSummary:
    """Summary of one rank's trace (fills the trace's `step` column as a side effect)."""
    return _summarize_rank(trace, model_weight_bytes)[0]


def _summarize_rank(trace: Trace, model_weight_bytes: int | None) -> tuple[ProfileSummary, pd.DataFrame]:
    """The rank's summary and its timed table (what a multi-rank summary pools)."""
    if trace.events.empty:
        raise TraceError(", ".join(trace.metadata.paths) or "trace", "the trace holds no events")
    meta = trace.metadata
    detection: StepDetection = StepDetector().detect(trace)
    domain = detection.domain
    # Right after detection: it set the events' `step` column the overhead analysis groups by.
    overhead = step_overhead(trace, detection)
    overhead_of = {o.step: o for o in overhead.steps}
    layers: LayerDetection = LayerDetector().detect(trace, domain)
    steps_info = detection.steps
    op_times, counts = _step_times(trace, domain, len(steps_info))
    per_step_layers: dict[int, list[LayerTiming]] = {}
    for row in layers.timings.itertuples(index=False):  # steps x layers rows: hundreds
        per_step_layers.setdefault(int(row.step), []).append(
            LayerTiming(index=int(row.layer), time_us=float(row.time_us), kernel_count=int(row.kernel_count))
        )
    steps = [
        StepSummary(
            index=s.index,
            kind=s.kind,
            name=s.name,
            start_us=s.start_us,
            wall_time_us=s.end_us - s.start_us,
            op_time_us=float(op_times[s.index]),
            kernel_count=int(counts[s.index]),
            prefill_requests=s.prefill_requests,
            prefill_tokens=s.prefill_tokens,
            decode_requests=s.decode_requests,
            decode_tokens=s.decode_tokens,
            layers=per_step_layers.get(s.index, []),
            **_overhead_fields(overhead_of.get(s.index)),
        )
        for s in steps_info
    ]
    timed, total = _timed_table(trace, domain)
    table = _with_step_kinds(timed, steps)
    kernels = KernelStats(table).summaries()
    step_kinds = _step_kind_stats(steps, table)

    meta = trace.metadata
    device = msgspec.structs.replace(meta.device, peak_memory_bandwidth_gbps=peak_bandwidth_gbps(meta.device.name))
    # Damage notes first (the comparison looks for them; `damage_notes`), then what the reader skipped.
    notes = [*meta.extra.get(DAMAGE_KEY, []), *meta.extra.get(READER_NOTES_KEY, []), *detection.notes, *layers.notes]
    if domain == "cpu":
        notes.append(
            "timing_domain=cpu: times are cpu_op durations; step/layer times sum top-level ops, per-op "
            "statistics use self time, so nested ops are not counted twice"
        )
    if device.peak_memory_bandwidth_gbps is not None:
        notes.append(
            f"peak memory bandwidth {device.peak_memory_bandwidth_gbps:g} GB/s is the datasheet peak for {device.name}"
        )
    summary = ProfileSummary(
        schema_version=SUMMARY_SCHEMA_VERSION,
        source=list(meta.paths),
        timing_domain=domain,
        step_method=detection.method,
        layer_method=layers.method,
        token_steps=len(steps),
        layer_count=layers.layer_count,
        total_kernel_us=total,
        device=device,
        runtime=msgspec.structs.replace(meta.runtime),  # a copy: the summary owns its objects
        steps=steps,
        kernels=kernels,
        step_kinds=step_kinds,
        step_overhead=dict(overhead.kinds),
        rank=meta.rank,
        world_size=meta.world_size,
        notes=notes,
    )
    _add_roofline(summary, model_weight_bytes)
    return summary, timed


def _overhead_fields(o: StepOverhead | None) -> dict[str, Any]:
    """A step's CPU-overhead values as StepSummary fields ({}: left UNSET when the analysis has no such step)."""
    if o is None:
        return {}
    return {
        "period_us": o.period_us,
        "gpu_busy_us": o.gpu_busy_us,
        "gpu_idle_us": o.gpu_idle_us,
        "kernel_launches": o.kernel_launches,
        "graph_launches": o.graph_launches,
    }


def _step_kind_stats(steps: list[StepSummary], table: pd.DataFrame) -> dict[StepKind, StepKindStats]:
    out: dict[StepKind, StepKindStats] = {}
    for kind in STEP_KINDS:
        of_kind = [s for s in steps if s.kind == kind]
        if not of_kind:
            continue
        times = [s.op_time_us for s in of_kind]
        n_layers = max((len(s.layers) for s in of_kind), default=0)
        layer_medians = []
        for i in range(n_layers):
            vals = [s.layers[i].time_us for s in of_kind if len(s.layers) > i]
            layer_medians.append(_median(vals))
        out[kind] = StepKindStats(
            count=len(of_kind),
            median_op_time_us=_median(times),
            mean_op_time_us=float(np.mean(times)),
            min_op_time_us=float(np.min(times)),
            max_op_time_us=float(np.max(times)),
            median_layer_time_us=layer_medians,
            kernels_per_step=kernels_per_step(table, [s.index for s in of_kind]),
        )
    return out


def _add_roofline(summary: ProfileSummary, model_weight_bytes: int | None) -> None:
    if model_weight_bytes is None:
        return
    if model_weight_bytes <= 0:
        raise AnalysisError(f"model weight bytes must be positive, got {model_weight_bytes}")
    decode = summary.step_kinds.get("decode")
    peak = summary.device.peak_memory_bandwidth_gbps
    if summary.timing_domain != "gpu":
        summary.notes.append("no roofline: CPU-only trace")
    elif decode is None or decode.median_op_time_us <= 0:
        summary.notes.append("no roofline: no decode steps")
    elif peak is None:
        summary.notes.append(f"no roofline: peak bandwidth of GPU {summary.device.name!r} unknown")
    else:
        summary.roofline = decode_roofline(model_weight_bytes, peak, decode.median_op_time_us)


def summarize(trace_set: TraceSet, *, model_weight_bytes: int | None = None) -> ProfileSummary:
    """Summary of a whole profile; with several ranks, per-rank summaries plus a combined top level."""
    if not trace_set.ranks:
        raise TraceError(trace_set.root or "trace set", "no engine-rank traces in this profile")
    ranks = sorted(trace_set.ranks)
    per_rank, tables = zip(*(_summarize_rank(trace_set.ranks[r], model_weight_bytes) for r in ranks), strict=True)
    for r, s in zip(ranks, per_rank, strict=True):
        s.rank = r
    if len(per_rank) == 1:
        return per_rank[0]
    return _combine(ranks, list(per_rank), list(tables), model_weight_bytes)


def _combine(
    ranks: list[int], per_rank: list[ProfileSummary], tables: list[pd.DataFrame], model_weight_bytes: int | None
) -> ProfileSummary:
    first = per_rank[0]
    notes = [
        *damage_notes_of_ranks(per_rank),
        f"{len(ranks)} ranks: per-step time is the slowest rank's; kernel statistics pool all ranks",
    ]
    n_steps = {s.token_steps for s in per_rank}
    steps: list[StepSummary] = []
    if len(n_steps) == 1:
        for i, base in enumerate(first.steps):
            slowest = max(per_rank, key=lambda s: s.steps[i].op_time_us).steps[i]
            steps.append(
                msgspec.structs.replace(
                    base, op_time_us=slowest.op_time_us, kernel_count=slowest.kernel_count, layers=slowest.layers
                )
            )
    else:
        notes.append(f"ranks found different step counts {sorted(n_steps)}: top-level steps are rank {ranks[0]}'s")
        steps = list(first.steps)
    # Every rank's rows take the kinds of the combined steps (rank 0's when counts differ).
    pooled = pd.concat([_with_step_kinds(t, steps) for t in tables], ignore_index=True)
    layer_counts = {s.layer_count for s in per_rank}
    combined = ProfileSummary(
        schema_version=SUMMARY_SCHEMA_VERSION,
        source=[p for s in per_rank for p in s.source],
        timing_domain=first.timing_domain,
        step_method=first.step_method,
        layer_method=first.layer_method,
        token_steps=len(steps),
        layer_count=max(layer_counts),
        total_kernel_us=float(sum(s.total_kernel_us for s in per_rank)),
        device=first.device,
        runtime=first.runtime,
        steps=steps,
        kernels=KernelStats(pooled).summaries(),
        step_kinds=_step_kind_stats(steps, pooled),
        step_overhead=dict(first.overhead_by_kind()),  # rank 0's: the host overhead is each rank's own
        rank=0,
        world_size=max(len(ranks), max(s.world_size for s in per_rank)),
        ranks=per_rank,
        notes=notes,
    )
    # kernels_per_step above pools ranks: report launches per rank instead
    for stats in combined.step_kinds.values():
        stats.kernels_per_step = {k: v / len(ranks) for k, v in stats.kernels_per_step.items()}
    _add_roofline(combined, model_weight_bytes)
    return combined


def damage_notes_of_ranks(per_rank: list[ProfileSummary]) -> list[str]:
    """Every rank's damage notes, each once: the combined summary must say its ranks are damaged."""
    found: list[str] = []
    for summary in per_rank:
        found.extend(n for n in damage_notes(summary) if n not in found)
    return found


def load_trace_set(path: str | Path, session: SessionChoice = "latest") -> TraceSet:
    """A `TraceSet` from a trace file or a vLLM profile directory (`trace.read_trace_set`)."""
    return read_trace_set(path, session)


def summarize_path(
    path: str | Path, *, model_weight_bytes: int | None = None, session: SessionChoice = "latest"
) -> ProfileSummary:
    """Read a trace file or vLLM profile directory and summarize it (`session`: see `read_trace_set`)."""
    return summarize(load_trace_set(path, session), model_weight_bytes=model_weight_bytes)
