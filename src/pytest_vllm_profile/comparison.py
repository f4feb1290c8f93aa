"""Result types of comparing a candidate profile with a baseline (the verdict contract).

`compare.compare_summaries(...)` produces a `Comparison`; the plugin, the CLI and the
reports only read these types. JSON form: `Comparison.to_dict()`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def step_metric(kind: str) -> str:
    """Metric name of a step kind's median time (a `Finding.metric`)."""
    return f"step.{kind}.gpu_time_us"


def kernel_metric(short_name: str, kind: str) -> str:
    """Metric name of a kernel's time per step of `kind` (a `Finding.metric`)."""
    return f"kernel[{short_name}].{kind}.us_per_step"


@dataclass
class Finding:
    """One metric that moved: a regression (fails the verdict) or an improvement/info."""

    metric: str  # e.g. "token_steps", "layer_count", "step.decode.gpu_time_us", "kernel[<short>].decode.us_per_step"
    kind: str  # "count" (exact), "time" (tolerance), "drift" (kernel appeared / disappeared)
    baseline: float | None
    candidate: float | None
    delta: float | None  # candidate - baseline
    delta_pct: float | None  # 100 * delta / baseline
    allowed: str  # the tolerance that applied, in words, e.g. "±2% (min 5 µs), noise 0.3%"
    contribution_us: float = 0.0  # how much of the step-time change this explains (per step)
    message: str = ""  # one sentence a person acts on


@dataclass
class KernelDrift:
    name: str
    short_name: str
    kernel_class: str
    step_kind: str  # where it carries the most time
    us_per_step: float
    share_of_step: float  # 0..1 of that step kind's GPU time
    fails: bool  # carries >= the drift threshold


@dataclass
class StepTimeChange:
    kind: str
    baseline_us: float
    candidate_us: float
    delta_pct: float


@dataclass
class Comparison:
    verdict: str  # "pass" or "fail"
    regressions: list[Finding] = field(default_factory=list)  # ranked by contribution_us, largest first
    improvements: list[Finding] = field(default_factory=list)
    new_kernels: list[KernelDrift] = field(default_factory=list)
    missing_kernels: list[KernelDrift] = field(default_factory=list)
    step_times: list[StepTimeChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # The CLI contract: `new_kernels` / `missing_kernels` are plain lists of kernel names;
        # the details travel beside them.
        d["new_kernel_details"] = d.pop("new_kernels")
        d["missing_kernel_details"] = d.pop("missing_kernels")
        d["new_kernels"] = [k.name for k in self.new_kernels]
        d["missing_kernels"] = [k.name for k in self.missing_kernels]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Comparison":
        """Inverse of `to_dict` (a results file's `comparison`); TypeError when the layout differs."""
        def objects(kind: type, items: Any) -> list[Any]:
            return [kind(**i) for i in items or [] if isinstance(i, dict)]

        return cls(
            verdict=str(d.get("verdict", "")),
            regressions=objects(Finding, d.get("regressions")),
            improvements=objects(Finding, d.get("improvements")),
            new_kernels=objects(KernelDrift, d.get("new_kernel_details")),
            missing_kernels=objects(KernelDrift, d.get("missing_kernel_details")),
            step_times=objects(StepTimeChange, d.get("step_times")),
            notes=[str(n) for n in d.get("notes", [])],
        )

    def explain(self, limit: int = 5) -> str:
        """Multi-line reason for a failed test: what regressed, by how much, top offenders first."""
        lines = [f"verdict: {self.verdict}"]
        for st in self.step_times:
            lines.append(f"  {st.kind} step: {st.baseline_us:.1f} µs -> {st.candidate_us:.1f} µs ({st.delta_pct:+.2f}%)")
        for f in self.regressions[:limit]:
            lines.append(f"  REGRESSION {f.message or f.metric}")
        if len(self.regressions) > limit:
            lines.append(f"  ... and {len(self.regressions) - limit} more regressions")
        for k in self.new_kernels:
            lines.append(f"  NEW kernel {k.short_name} ({k.kernel_class}, {k.us_per_step:.1f} µs/{k.step_kind} step, {100 * k.share_of_step:.1f}%)")
        for k in self.missing_kernels:
            lines.append(f"  MISSING kernel {k.short_name} ({k.kernel_class}, was {k.us_per_step:.1f} µs/{k.step_kind} step, {100 * k.share_of_step:.1f}%)")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)
