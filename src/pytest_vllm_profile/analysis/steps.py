"""Engine-step detection ("token peaks"): which events belong to which forward pass.

Two methods, tried in order:

1. `annotation` — vLLM marks every engine step with an annotation named
   `execute_context_<n>(<tokens>)_generation_<m>(<tokens>)`: n prefill requests, m decode
   requests. The GPU copy (`gpu_user_annotation`) bounds the step's GPU work and is
   preferred; the CPU copy (`user_annotation`) is used when there is no GPU one (CPU backend).
   Steps with no requests (`execute_context_0(0)_generation_0(0)`) are idle scheduler
   iterations without a forward pass: they are not token steps.
2. `gpu_activity` — for traces without annotations (older vLLM, nsys). Idle gaps between
   kernels do NOT separate steps reliably: with async scheduling the host prepares step
   k+1 while the GPU runs step k, and the largest gaps are *inside* steps (between input
   preparation and a CUDA-graph replay). What does separate steps is structure: every
   forward pass runs one attention kernel per decoder layer, and between two consecutive
   attention kernels sit the same few kernels (the rest of one layer, the start of the
   next) -- except between the last layer of one step and the first of the next, where the
   LM head, the sampler and the next step's input preparation add many more. So:
   take the attention-class kernel that launches most (short names, so template variants
   count as one); count the GPU operations between consecutive launches; these counts form
   a low cluster (layer periods) and a high cluster (step boundaries); the threshold is the
   largest relative jump between consecutive distinct counts (a jump of at least 1.5x,
   otherwise there is only one step). Inside each boundary interval the step is cut at the
   longest GPU-idle gap (the host preparing the next step).
   Kind: without annotations the request counts are unknown. The first step of a profile
   is the prefill of the request that started it (profiles are started before a request is
   sent); any other step is prefill if its kernel time is > 1.5x the median step's (a long
   prompt) — otherwise decode. Request and token counts stay None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..events import Category, Trace
from ..summary import StepKind, StepMethod, TimingDomain
from .intervals import enclosing
from .kernels import classes, is_attention_math, short_names

STEP_ANNOTATION = re.compile(r"execute_context_(\d+)\((\d+)\)_generation_(\d+)\((\d+)\)")
_STEP_ANNOTATION_TEST = re.compile(r"execute_context_\d+\(\d+\)_generation_\d+\(\d+\)")

GPU_WORK_CATEGORIES = (Category.KERNEL.value, Category.MEMCPY.value, Category.MEMSET.value)

# Boundary intervals must hold at least this many times the operations of a layer period.
_MIN_BOUNDARY_JUMP = 1.5
# Without annotations, a step whose kernel time exceeds this multiple of the median is a prefill.
_PREFILL_TIME_FACTOR = 1.5


@dataclass
class DetectedStep:
    index: int
    kind: StepKind
    name: str
    start_us: float
    end_us: float
    prefill_requests: int | None = None
    prefill_tokens: int | None = None
    decode_requests: int | None = None
    decode_tokens: int | None = None


@dataclass
class StepDetection:
    steps: list[DetectedStep]
    method: StepMethod
    domain: TimingDomain  # whose clock the step bounds are on
    notes: list[str] = field(default_factory=list)


def _kind(n_prefill: int, n_decode: int) -> StepKind:
    if n_prefill > 0 and n_decode > 0:
        return "mixed"
    return "prefill" if n_prefill > 0 else "decode"


def _annotation_steps(ann: pd.DataFrame) -> list[DetectedStep]:
    """Token steps from annotation rows (any category), in time order; idle steps dropped."""
    parsed = ann["name"].str.extract(STEP_ANNOTATION)
    ok = parsed.notna().all(axis=1)
    ann = ann[ok]
    parsed = parsed[ok].astype(np.int64)
    order = np.argsort(ann["start_us"].to_numpy(), kind="stable")
    steps: list[DetectedStep] = []
    for i in order:  # one row per step: tens, not events
        n, nt, m, mt = (int(v) for v in parsed.iloc[i])
        if n + m == 0:
            continue
        row = ann.iloc[i]
        steps.append(
            DetectedStep(
                index=len(steps),
                kind=_kind(n, m),
                name=str(row["name"]),
                start_us=float(row["start_us"]),
                end_us=float(row["end_us"]),
                prefill_requests=n,
                prefill_tokens=nt,
                decode_requests=m,
                decode_tokens=mt,
            )
        )
    return steps


def _assign_by_ranges(events: pd.DataFrame, rows: np.ndarray, steps: list[DetectedStep]) -> None:
    """Set `step` of the given row positions whose start lies inside a step's [start, end]."""
    if not len(rows) or not steps:
        return
    starts = np.array([s.start_us for s in steps])
    ends = np.array([s.end_us for s in steps])
    order = np.argsort(starts)
    starts, ends = starts[order], ends[order]
    idx = np.array([steps[i].index for i in order])
    pos = enclosing(starts, ends, events["start_us"].to_numpy()[rows])
    inside = pos >= 0
    step_col = events["step"].to_numpy(copy=True)
    step_col[rows[inside]] = idx[pos[inside]]
    events["step"] = step_col


class StepDetector:
    """Finds the token steps of one rank's trace and fills the event table's `step` column."""

    def detect(self, trace: Trace) -> StepDetection:
        ev = trace.events
        ev["step"] = np.int64(-1)
        category = ev["category"]  # categorical: isin/== on it compare codes, not 350 K strings
        is_gpu_work = category.isin(GPU_WORK_CATEGORIES).to_numpy()
        is_gpu_ann = (category == Category.GPU_ANNOTATION.value).to_numpy()
        is_launch_side = ~is_gpu_work
        has_gpu = bool(is_gpu_work.any())
        ann = ev[category.isin((Category.GPU_ANNOTATION.value, Category.CPU_ANNOTATION.value)).to_numpy()]
        ann = ann[ann["name"].str.contains(_STEP_ANNOTATION_TEST, na=False)]
        gpu_ann = ann[ann["category"] == Category.GPU_ANNOTATION.value]
        cpu_ann = ann[ann["category"] == Category.CPU_ANNOTATION.value]

        notes: list[str] = []
        if has_gpu and len(gpu_ann):
            steps = _annotation_steps(gpu_ann)
            _assign_by_ranges(ev, np.flatnonzero(is_gpu_work | is_gpu_ann), steps)
            self._assign_cpu_side(ev, is_launch_side, cpu_ann, steps, notes)
            return StepDetection(steps, "annotation", "gpu", notes)
        if has_gpu:
            steps = self._from_gpu_activity(ev, is_gpu_work, notes)
            return StepDetection(steps, "gpu_activity", "gpu", notes)
        if len(cpu_ann):
            steps = _annotation_steps(cpu_ann)
            cpu_rows = np.flatnonzero(_same_threads(ev, cpu_ann))
            _assign_by_ranges(ev, cpu_rows, steps)
            notes.append(
                "CPU-only trace (no GPU events): steps from vLLM's CPU step annotations, times are cpu_op times"
            )
            return StepDetection(steps, "annotation", "cpu", notes)
        paths = ", ".join(trace.metadata.paths) or "trace"
        raise AnalysisError(
            f"{paths}: no vLLM step annotations (execute_context_*_generation_*) and no GPU events: cannot find engine steps"
        )

    @staticmethod
    def _assign_cpu_side(
        ev: pd.DataFrame, cpu_side: np.ndarray, cpu_ann: pd.DataFrame, steps: list[DetectedStep], notes: list[str]
    ) -> None:
        """CPU events (launches, module events) get the step of the CPU annotation around them.

        The k-th non-idle CPU annotation is the host side of the k-th GPU step; only events
        on the annotating thread(s) are assigned (other threads run unrelated work).
        """
        if not len(cpu_ann):
            return
        cpu_steps = _annotation_steps(cpu_ann)
        if len(cpu_steps) != len(steps):
            notes.append(
                f"{len(cpu_steps)} CPU step annotations vs {len(steps)} GPU ones: CPU events left without a step"
            )
            return
        rows = np.flatnonzero(_same_threads(ev, cpu_ann) & cpu_side)
        _assign_by_ranges(ev, rows, cpu_steps)

    def _from_gpu_activity(self, ev: pd.DataFrame, is_gpu_work: np.ndarray, notes: list[str]) -> list[DetectedStep]:
        gpu = ev[is_gpu_work]
        order = np.argsort(gpu["start_us"].to_numpy(), kind="stable")
        gpu = gpu.iloc[order]
        rows = np.flatnonzero(is_gpu_work)[order]
        start = gpu["start_us"].to_numpy()
        end_run = np.maximum.accumulate(gpu["end_us"].to_numpy())
        marker = layer_marker_name(gpu)
        cuts: list[int] = []  # position (in time order) where a new step starts
        if marker is not None:
            pos = np.flatnonzero(short_names(gpu["name"]).to_numpy() == marker)
            between = np.diff(pos)
            threshold = _boundary_threshold(between)
            if threshold is not None:
                idle = np.empty(len(start))
                idle[0] = 0.0
                idle[1:] = start[1:] - end_run[:-1]
                for i in np.flatnonzero(between >= threshold):  # one per step boundary
                    lo, hi = pos[i] + 1, pos[i + 1]
                    cuts.append(lo + int(np.argmax(idle[lo : hi + 1])))
            notes.append(
                f"steps found from GPU activity: {marker} launches, step boundaries where more than "
                f"{threshold if threshold is not None else 'n/a'} GPU operations separate two launches"
            )
        bounds = [0, *cuts, len(gpu)]
        kernel_mask = (gpu["category"] == Category.KERNEL.value).to_numpy()
        dur = gpu["dur_us"].to_numpy()
        steps: list[DetectedStep] = []
        times = []
        step_col = ev["step"].to_numpy(copy=True)
        for k in range(len(bounds) - 1):
            a, b = bounds[k], bounds[k + 1]
            if b <= a:
                continue
            steps.append(
                DetectedStep(
                    index=len(steps),
                    kind="decode",
                    name=f"gpu_burst_{len(steps)}",
                    start_us=float(start[a]),
                    end_us=float(end_run[b - 1]),
                )
            )
            times.append(float(dur[a:b][kernel_mask[a:b]].sum()))
            step_col[rows[a:b]] = steps[-1].index
        ev["step"] = step_col
        median = float(np.median(times)) if times else 0.0
        for s, t in zip(steps, times, strict=False):
            if s.index == 0 or (median > 0 and t > _PREFILL_TIME_FACTOR * median):
                s.kind = "prefill"
        notes.append(
            "step kinds without annotations: the first step is the request's prefill, others are prefill "
            f"when their kernel time exceeds {_PREFILL_TIME_FACTOR}x the median step; request counts unknown"
        )
        return steps


def _same_threads(ev: pd.DataFrame, ann: pd.DataFrame) -> np.ndarray:
    keys = set(zip(ann["pid"].tolist(), ann["tid"].tolist(), strict=False))
    mask = np.zeros(len(ev), dtype=bool)
    pid = ev["pid"].to_numpy()
    tid = ev["tid"].to_numpy()
    for p, t in keys:
        mask |= (pid == p) & (tid == t)
    return mask


def layer_marker_name(gpu: pd.DataFrame) -> str | None:
    """Short name of the per-layer marker kernel: the attention-class kernel launched most often.

    Falls back to the most launched kernel when no kernel looks like attention.
    """
    kern = gpu[gpu["category"] == Category.KERNEL.value]
    if kern.empty:
        return None
    short = short_names(kern["name"])
    counts = short.value_counts()
    cls = classes(kern["name"])
    attention = short[cls.to_numpy() == "attention"].value_counts()
    attention = attention[[is_attention_math(n, "attention") for n in attention.index]]
    if len(attention):
        return str(attention.index[0])
    return str(counts.index[0])


def _boundary_threshold(between: np.ndarray) -> float | None:
    """Smallest count of operations between two marker launches that marks a step boundary."""
    if len(between) == 0:
        return None
    values = np.unique(between)
    if len(values) < 2:
        return None
    ratios = values[1:] / np.maximum(values[:-1], 1)
    j = int(np.argmax(ratios))
    if ratios[j] < _MIN_BOUNDARY_JUMP:
        return None
    return float(values[j + 1])
