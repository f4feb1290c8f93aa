"""CPU overhead of each engine step, from the profiled pass: where the GPU waited for the host.

Per token step (from `StepDetector`, which also fills the event table's `step` column):

* `wall_us` — the step's span on the clock its bounds are on (GPU traces: the GPU copy of
  vLLM's step annotation, first to last GPU work of the forward pass; CPU traces: the CPU
  annotation around execute_model);
* `period_us` — start of this step to start of the next one. Work between steps (the
  scheduler, the output processor, sampling bookkeeping) is outside every annotation and only
  shows here; None for the last step of a profile;
* `gpu_busy_us` — the union (not the sum) of the step's kernel intervals, clipped to the step:
  kernels on several streams overlap and count once;
* `gpu_idle_us` — `wall_us - gpu_busy_us`: time inside the step the GPU computed nothing,
  waiting for the host (launches, Python) or for copies;
* `kernel_launches` — CUDA kernel launch calls the host made in the step (runtime
  `cudaLaunchKernel*`, driver `cuLaunchKernel*`, which Triton uses), `graph_launches` — CUDA
  graph replays (`cudaGraphLaunch`, `cuGraphLaunch`); an eager step launches every kernel,
  a CUDA-graph step one graph per captured piece. Counted on the thread(s) carrying the CPU
  step annotation, the ones StepDetector assigns steps on.

CPU-only traces (vLLM CPU backend, timing domain "cpu") have no GPU: GPU busy/idle and
launches are not applicable and are None (not 0, which would read as "no overhead"); wall
time and period still are the host's step times.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec
import numpy as np
import pandas as pd

from ..events import Category, Trace
from ..summary import StepKindOverhead
from .steps import StepDetection

__all__ = [
    "StepKindOverhead",
    "StepOverhead",
    "StepOverheadAnalysis",
    "kind_overheads",
    "step_overhead",
    "union_length",
]

# Launch calls, by name (CUDA runtime and driver API events of the torch profiler / nsys).
KERNEL_LAUNCH = re.compile(
    r"^(cudaLaunchKernel(ExC?)?(_ptsz)?|cuLaunchKernel(Ex)?(_ptsz)?|cudaLaunchCooperativeKernel)$"
)
GRAPH_LAUNCH = re.compile(r"^(cudaGraphLaunch|cuGraphLaunch)(_ptsz)?$")
LAUNCH_CATEGORIES = (Category.CUDA_RUNTIME.value, Category.CUDA_DRIVER.value)


class StepOverhead(msgspec.Struct, kw_only=True, frozen=True):
    """One token step's time split between GPU work and everything else."""

    step: int
    kind: str  # "prefill", "decode" or "mixed"
    start_us: float  # on the trace's clock, in the timing domain
    wall_us: float
    period_us: float | None  # to the next step's start; None for the last step
    gpu_busy_us: float | None  # None: CPU-only trace
    gpu_idle_us: float | None
    kernels: int | None  # kernels executed in the step (GPU side)
    kernel_launches: int | None  # host launch calls
    graph_launches: int | None


class StepOverheadAnalysis(msgspec.Struct, kw_only=True, frozen=True):
    timing_domain: Literal["gpu", "cpu"]
    steps: tuple[StepOverhead, ...]
    kinds: dict[str, StepKindOverhead]
    notes: tuple[str, ...] = ()


def union_length(starts: np.ndarray, ends: np.ndarray) -> float:
    """Total length covered by the intervals [starts[i], ends[i]] (overlaps counted once)."""
    if len(starts) == 0:
        return 0.0
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    # A new covered segment begins where an interval starts after everything before it ended.
    new = np.empty(len(s), dtype=bool)
    new[0] = True
    new[1:] = s[1:] > reach[:-1]
    seg_start = s[new]
    seg_end = np.append(reach[np.flatnonzero(new)[1:] - 1], reach[-1])
    return float((seg_end - seg_start).sum())


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def step_overhead(trace: Trace, detection: StepDetection) -> StepOverheadAnalysis:
    """Per-step wall, GPU busy/idle and launches. `detection` must come from `StepDetector().detect(trace)`
    on this trace (it set the events' `step` column)."""
    ev = trace.events
    gpu = detection.domain == "gpu"
    notes: list[str] = []
    steps = sorted(detection.steps, key=lambda s: s.start_us)
    step_col = ev["step"].to_numpy()
    kernels = ev[(ev["category"] == Category.KERNEL.value).to_numpy() & (step_col >= 0)]
    by_step_kernels = {int(k): g for k, g in kernels.groupby("step")} if gpu else {}
    launches = _launch_counts(ev) if gpu else {}
    if gpu and not launches:
        notes.append(
            "no CUDA launch events assigned to steps (no CPU step annotation, or no runtime events "
            "in the trace): kernel/graph launches not counted"
        )
    if not gpu:
        notes.append("CPU-only trace: GPU busy/idle and launches do not apply; wall time and period are host times")
    out: list[StepOverhead] = []
    for i, s in enumerate(steps):
        wall = s.end_us - s.start_us
        period = steps[i + 1].start_us - s.start_us if i + 1 < len(steps) else None
        busy = idle = None
        n_kernels = None
        if gpu:
            group = by_step_kernels.get(s.index)
            if group is None:
                busy, n_kernels = 0.0, 0
            else:
                st = np.clip(group["start_us"].to_numpy(), s.start_us, s.end_us)
                en = np.clip(group["end_us"].to_numpy(), s.start_us, s.end_us)
                busy, n_kernels = union_length(st, en), len(group)
            idle = max(wall - busy, 0.0)
        kl, gl = launches.get(s.index, (0, 0)) if launches else (None, None)
        out.append(
            StepOverhead(
                step=s.index,
                kind=s.kind,
                start_us=s.start_us,
                wall_us=wall,
                period_us=period,
                gpu_busy_us=busy,
                gpu_idle_us=idle,
                kernels=n_kernels,
                kernel_launches=kl,
                graph_launches=gl,
            )
        )
    return StepOverheadAnalysis(
        timing_domain="gpu" if gpu else "cpu", steps=tuple(out), kinds=kind_overheads(out), notes=tuple(notes)
    )


def _launch_counts(ev: pd.DataFrame) -> dict[int, tuple[int, int]]:
    """step -> (kernel launches, graph launches), over launch events that have a step."""
    rows = ev[ev["category"].isin(LAUNCH_CATEGORIES).to_numpy() & (ev["step"].to_numpy() >= 0)]
    if rows.empty:
        return {}
    names = rows["name"].astype(str)
    is_kernel = names.str.match(KERNEL_LAUNCH).to_numpy()
    is_graph = names.str.match(GRAPH_LAUNCH).to_numpy()
    counted = pd.DataFrame({"step": rows["step"].to_numpy(), "k": is_kernel, "g": is_graph})
    sums = counted.groupby("step")[["k", "g"]].sum()
    return {int(step): (int(r.k), int(r.g)) for step, r in sums.iterrows()}


def kind_overheads(steps: list[StepOverhead]) -> dict[str, StepKindOverhead]:
    """Per step kind: medians of the per-step values."""
    result: dict[str, StepKindOverhead] = {}
    for kind in sorted({s.kind for s in steps}):
        of = [s for s in steps if s.kind == kind]
        wall = float(np.median([s.wall_us for s in of]))
        idle = _median([s.gpu_idle_us for s in of if s.gpu_idle_us is not None])
        result[kind] = StepKindOverhead(
            kind=kind,
            steps=len(of),
            median_wall_us=wall,
            median_period_us=_median([s.period_us for s in of if s.period_us is not None]),
            median_gpu_busy_us=_median([s.gpu_busy_us for s in of if s.gpu_busy_us is not None]),
            median_gpu_idle_us=idle,
            gpu_idle_fraction=idle / wall if idle is not None and wall > 0 else None,
            median_kernel_launches=_median([float(s.kernel_launches) for s in of if s.kernel_launches is not None]),
            median_graph_launches=_median([float(s.graph_launches) for s in of if s.graph_launches is not None]),
        )
    return result
