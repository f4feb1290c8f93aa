"""Result types of comparing a candidate profile with a baseline (the verdict contract).

`comparator.compare_summaries(...)` produces a `Comparison`; the plugin, the CLI and the
reports only read these types. JSON form: `codec.encode_json(comparison)`.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from .summary import StepKind

Verdict = Literal["pass", "fail"]
# Where a drifting kernel carries the most time: a step kind, or "outside-steps" when it ran in none.
DriftPlace = Literal["prefill", "decode", "mixed", "outside-steps"]
FindingKind = Literal[
    "count", "time", "drift", "damage"
]  # exact count, time within tolerance, kernel appeared/disappeared, a side built on a damaged trace


def step_metric(kind: str) -> str:
    """Metric name of a step kind's median time (a `Finding.metric`)."""
    return f"step.{kind}.op_time_us"


def kernel_metric(short_name: str, kind: str) -> str:
    """Metric name of a kernel's time per step of `kind` (a `Finding.metric`)."""
    return f"kernel[{short_name}].{kind}.us_per_step"


class Finding(msgspec.Struct):
    """One metric that moved: a regression (fails the verdict) or an improvement/info."""

    metric: str  # e.g. "token_steps", "layer_count", "step.decode.op_time_us", "kernel[<short>].decode.us_per_step"
    kind: FindingKind
    baseline: float | None
    candidate: float | None
    delta: float | None  # candidate - baseline
    delta_pct: float | None  # 100 * delta / baseline
    allowed: str  # the tolerance that applied, in words, e.g. "±2% (min 5 µs), noise 0.3%"
    contribution_us: float = 0.0  # how much of the step-time change this explains (per step)
    message: str = ""  # one sentence a person acts on
    # Set only on findings judged from samples by the statistical rule (significance.py, issue 13);
    # absent (UNSET, not written) on those judged by the fixed tolerance, as in 0.1.0 files. In %.
    estimate_pct: float | UnsetType = UNSET  # Hodges-Lehmann shift, % of the baseline median
    interval_pct: list[float] | UnsetType = UNSET  # [low, high] at confidence 1 - alpha
    threshold_pct: float | UnsetType = UNSET  # the smallest shift that counts (min effect or the µs floor)
    p_value: float | UnsetType = UNSET  # two-sided Mann-Whitney U
    samples: list[int] | UnsetType = UNSET  # [baseline, candidate] sample counts


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


class ClassChange(msgspec.Struct):
    """One kernel class in one step kind, vLLM A vs B: what a cross-version comparison matches on."""

    step_kind: StepKind
    kernel_class: str  # analysis.kernels.KERNEL_CLASSES: "gemm", "attention", "norm", ...
    baseline_us: float  # µs per step of the class's kernels
    candidate_us: float
    baseline_launches: float  # launches per step
    candidate_launches: float
    added: list[str] = msgspec.field(default_factory=list)  # short names only B runs in this place
    removed: list[str] = msgspec.field(default_factory=list)  # short names only A ran here


class VersionChange(msgspec.Struct):
    """A comparison across vLLM versions (issue 13): the baseline is vLLM A's entry, the run is B.

    Kernels are matched by class and place (step kind; layers by index), so a renamed kernel is
    compared as its class; `classes` is "what changed between A and B". Kernel-set drift fails
    only when `drift_fails` (--vllm-cross-version-drift=fail).
    """

    from_version: str
    to_version: str
    classes: list[ClassChange] = msgspec.field(default_factory=list)
    drift_fails: bool = False
    # short names of kernels only B runs / only A ran, anywhere in the profile (in steps or not)
    new_kernels: list[str] = msgspec.field(default_factory=list)
    missing_kernels: list[str] = msgspec.field(default_factory=list)

    @property
    def label(self) -> str:
        return f"cross-version: vLLM {self.from_version} -> {self.to_version}"

    def describe(self, limit: int = 12) -> list[str]:
        """Lines of "what changed between vLLM A and B" (kernel-set and class changes)."""
        lines = [
            f"what changed between vLLM {self.from_version} and {self.to_version} "
            f"(kernels matched by class and step kind):"
        ]
        changed = [c for c in self.classes if c.added or c.removed or c.baseline_launches != c.candidate_launches]
        for c in changed[:limit]:
            parts = [
                f"{c.baseline_us:.1f} -> {c.candidate_us:.1f} µs/step",
                f"launches/step {c.baseline_launches:g} -> {c.candidate_launches:g}",
            ]
            if c.added:
                parts.append("new: " + ", ".join(c.added[:4]) + (f" +{len(c.added) - 4}" if len(c.added) > 4 else ""))
            if c.removed:
                parts.append(
                    "gone: " + ", ".join(c.removed[:4]) + (f" +{len(c.removed) - 4}" if len(c.removed) > 4 else "")
                )
            lines.append(f"  {c.step_kind} {c.kernel_class}: " + "; ".join(parts))
        if len(changed) > limit:
            lines.append(f"  ... and {len(changed) - limit} more class changes")
        for names, where in ((self.new_kernels, self.to_version), (self.missing_kernels, self.from_version)):
            if names:
                more = f" and {len(names) - limit} more" if len(names) > limit else ""
                lines.append(f"  kernels only in vLLM {where}: {', '.join(names[:limit])}{more}")
        if not changed and not self.new_kernels and not self.missing_kernels:
            lines.append("  same kernels and launches per step in every class")
        return lines


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
    # Set when the baseline is another vLLM version's entry (issue 13 item 3); None otherwise.
    cross_version: VersionChange | None = None
    # Metrics with samples, but too few for the statistical rule: neither passed nor failed, reported
    # here and in `explain()` (their step kind's kernel and layer times are not judged either);
    # written only when there are some.
    too_few_samples: list[str] | UnsetType = UNSET

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
        lines = [f"verdict: {self.verdict}" + (f" ({self.cross_version.label})" if self.cross_version else "")]
        for st in self.step_times:
            lines.append(
                f"  {st.kind} step: {st.baseline_us:.1f} µs -> {st.candidate_us:.1f} µs ({st.delta_pct:+.2f}%)"
            )
        for f in self.regressions[:limit]:
            lines.append(f"  REGRESSION {f.message or f.metric}")
        if limit is not None and len(self.regressions) > limit:
            lines.append(f"  ... and {len(self.regressions) - limit} more regressions")
        for k in self.new_kernels:
            lines.append(
                f"  NEW kernel {k.short_name} ({k.kernel_class}, {k.us_per_step:.1f} µs/{k.step_kind} step, "
                f"{100 * k.share_of_step:.1f}%)"
            )
        for k in self.missing_kernels:
            lines.append(
                f"  MISSING kernel {k.short_name} ({k.kernel_class}, was {k.us_per_step:.1f} µs/{k.step_kind} "
                f"step, {100 * k.share_of_step:.1f}%)"
            )
        if self.too_few_samples:
            lines.append(f"  UNDECIDED (too few samples): {', '.join(self.too_few_samples)}")
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.cross_version is not None:
            lines.extend("  " + line for line in self.cross_version.describe())
        return "\n".join(lines)
