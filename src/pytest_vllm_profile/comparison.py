"""Result types of comparing a candidate profile with a baseline (the verdict contract).

`comparator.compare_summaries(...)` produces a `Comparison`; the plugin, the CLI and the
reports only read these types. JSON form: `codec.encode_json(comparison)`.
"""
from __future__ import annotations

from typing import Literal

import msgspec

from .summary import StepKind

Verdict = Literal["pass", "fail"]
# Where a drifting kernel carries the most time: a step kind, or "outside-steps" when it ran in none.
DriftPlace = Literal["prefill", "decode", "mixed", "outside-steps"]
FindingKind = Literal["count", "time", "drift", "damage"]  # exact count, time within tolerance, kernel appeared/disappeared, a side built on a damaged trace


def step_metric(kind: str) -> str:
    """Metric name of a step kind's median time (a `Finding.metric`)."""
    return f"step.{kind}.gpu_time_us"


def kernel_metric(short_name: str, kind: str) -> str:
    """Metric name of a kernel's time per step of `kind` (a `Finding.metric`)."""
    return f"kernel[{short_name}].{kind}.us_per_step"


class Finding(msgspec.Struct):
    """One metric that moved: a regression (fails the verdict) or an improvement/info."""

    metric: str  # e.g. "token_steps", "layer_count", "step.decode.gpu_time_us", "kernel[<short>].decode.us_per_step"
    kind: FindingKind
    baseline: float | None
    candidate: float | None
    delta: float | None  # candidate - baseline
    delta_pct: float | None  # 100 * delta / baseline
    allowed: str  # the tolerance that applied, in words, e.g. "±2% (min 5 µs), noise 0.3%"
    contribution_us: float = 0.0  # how much of the step-time change this explains (per step)
    message: str = ""  # one sentence a person acts on


class KernelDrift(msgspec.Struct):
    name: str
    short_name: str
    kernel_class: str
    step_kind: DriftPlace  # where it carries the most time
    us_per_step: float
    share_of_step: float  # 0..1 of that step kind's GPU time
    fails: bool  # carries >= the drift threshold


class StepTimeChange(msgspec.Struct):
    kind: StepKind
    baseline_us: float
    candidate_us: float
    delta_pct: float


class Comparison(msgspec.Struct):
    """The verdict and what moved.

    JSON form (the CLI's and the results file's contract): the drift details travel as
    `new_kernel_details` / `missing_kernel_details`, and `new_kernels` / `missing_kernels` are
    plain lists of kernel names, filled from the details when the object is made or read.
    """

    verdict: Verdict
    regressions: list[Finding] = msgspec.field(default_factory=list)  # structural counts, then by contribution_us
    improvements: list[Finding] = msgspec.field(default_factory=list)
    # Field order = the JSON key order 0.1.0 wrote.
    step_times: list[StepTimeChange] = msgspec.field(default_factory=list)
    notes: list[str] = msgspec.field(default_factory=list)
    new_kernels: list[KernelDrift] = msgspec.field(default_factory=list, name="new_kernel_details")
    missing_kernels: list[KernelDrift] = msgspec.field(default_factory=list, name="missing_kernel_details")
    new_kernel_names: list[str] = msgspec.field(default_factory=list, name="new_kernels")
    missing_kernel_names: list[str] = msgspec.field(default_factory=list, name="missing_kernels")

    def __post_init__(self) -> None:
        # Derived, never set by hand: the details are the truth.
        self.new_kernel_names = [k.name for k in self.new_kernels]
        self.missing_kernel_names = [k.name for k in self.missing_kernels]

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def explain(self, limit: int | None = None) -> str:
        """Multi-line reason for a failed test: what regressed, by how much, top offenders first
        (every regression unless `limit` says how many)."""
        lines = [f"verdict: {self.verdict}"]
        for st in self.step_times:
            lines.append(f"  {st.kind} step: {st.baseline_us:.1f} µs -> {st.candidate_us:.1f} µs "
                         f"({st.delta_pct:+.2f}%)")
        for f in self.regressions[:limit]:
            lines.append(f"  REGRESSION {f.message or f.metric}")
        if limit is not None and len(self.regressions) > limit:
            lines.append(f"  ... and {len(self.regressions) - limit} more regressions")
        for k in self.new_kernels:
            lines.append(f"  NEW kernel {k.short_name} ({k.kernel_class}, {k.us_per_step:.1f} µs/{k.step_kind} step, "
                         f"{100 * k.share_of_step:.1f}%)")
        for k in self.missing_kernels:
            lines.append(f"  MISSING kernel {k.short_name} ({k.kernel_class}, was {k.us_per_step:.1f} µs/{k.step_kind} "
                         f"step, {100 * k.share_of_step:.1f}%)")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)
