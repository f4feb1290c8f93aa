"""Noise-aware comparison of a candidate profile with its baseline (the same vLLM version).

The rules each metric is judged by are `metric_judge.MetricJudge`'s, shared with the
cross-version comparison (`comparator_crossversion`); this module decides what is compared.

Counts are compared exactly (token steps, steps per kind, layers per step, launches per step
of each kernel): a change there means the work changed, not the speed. Step and layer times
are judged from their samples, every step of every repeat (`significance`: a shift that is
significant at `alpha` and at least `min_effect`, or 4 sigma of the samples' own noise, big);
a step kind with fewer than 5 samples a side is reported as undecided (`too_few_samples`),
its times not judged. Kernel times (one value per repeat) and summaries without samples (0.1.0
baselines) keep the fixed rule: a relative tolerance, an absolute floor (tiny kernels jitter
by whole microseconds) and the repeats' observed noise, max(rel_time, noise_multiplier * spread).
Kernels that appear or disappear are kernel-set drift; it fails the verdict when such a
kernel carries at least `drift_share` of a step's op time.

Launch counts of memory copies/sets are not held exact (an async copy lands in whichever step
is running), nor are those of kernels the repeats themselves showed to be unstable
(`RepeatSpread.unstable_kernels`); those also never fail as drift. `step_kinds` restricts the
per-step-kind metrics to the steady part of a workload (e.g. only "decode" when how a batch
splits between prefill and mixed steps depends on timing); token steps, layer count and the
total kernel time are always compared.

`compare_summaries` returns a `comparison.Comparison`; the `vllm-profile compare` command
(`cli.compare`) is built on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .comparison import Comparison, StepTimeChange, kernel_metric
from .errors import AnalysisError, VllmProfileError
from .latency_compare import compare_latency, compare_step_overhead
from .metric_judge import MetricJudge, clock_name, fmt_pct, num, short_names
from .repeats import RepeatSpread, kernel_us_per_step
from .summary import STEP_KINDS, ProfileSummary, StepKind
from .tolerances import Tolerances

__all__ = [
    "IncomparableSummariesError",
    "KernelDelta",
    "Tolerances",
    "compare_summaries",
    "kernel_deltas",
    "launches_per_step",
    "validate_step_kinds",
]

if TYPE_CHECKING:
    from .latency import TimedPassResult


class IncomparableSummariesError(AnalysisError):
    """The two summaries measure different things (e.g. GPU kernel time vs CPU op time)."""


@dataclass
class KernelDelta:
    """Per-step time of one kernel in one step kind, baseline vs candidate (for tables)."""

    name: str
    short_name: str
    step_kind: str
    baseline_us: float | None
    candidate_us: float | None

    @property
    def delta_us(self) -> float:
        return (self.candidate_us or 0.0) - (self.baseline_us or 0.0)


def launches_per_step(summary: ProfileSummary, kind: StepKind) -> dict[str, float]:
    """Kernel name -> launches per step of `kind` (analysis' median, else derived from totals)."""
    stats = summary.step_kinds.get(kind)
    if stats is None or stats.count == 0:
        return {}
    if stats.kernels_per_step:
        return dict(stats.kernels_per_step)
    return {k.name: k.per_step_kind[kind].count / stats.count for k in summary.kernels if kind in k.per_step_kind}


def validate_step_kinds(step_kinds: Any, argument: str = "step_kinds") -> tuple[str, ...] | None:
    """None (compare every kind) or a non-empty tuple of known step kinds; else a clear error."""
    if step_kinds is None:
        return None
    if isinstance(step_kinds, str) or not isinstance(step_kinds, (list, tuple, set, frozenset)):
        raise VllmProfileError(
            f"{argument}={step_kinds!r} must be a list of step kinds, e.g. ['decode'] "
            f"(valid kinds: {', '.join(STEP_KINDS)})"
        )
    kinds = tuple(step_kinds)
    unknown = [k for k in kinds if k not in STEP_KINDS]
    if not kinds or unknown:
        why = f"unknown step kind(s) {unknown!r}" if unknown else "is empty"
        raise VllmProfileError(
            f"{argument}={step_kinds!r}: {why}; valid kinds: {', '.join(STEP_KINDS)} "
            "(or leave it unset to compare every kind)"
        )
    return tuple(k for k in STEP_KINDS if k in kinds)


class _Comparer(MetricJudge):
    """The same-version comparison (see the module docstring); the rules are `MetricJudge`'s."""

    def run(self) -> Comparison:
        b, c, tol = self.b, self.c, self.tol
        if b.timing_domain != c.timing_domain:
            raise IncomparableSummariesError(
                f"cannot compare a {b.timing_domain}-timed summary (baseline: {', '.join(b.source) or '?'}) with a "
                f"{c.timing_domain}-timed one (candidate: {', '.join(c.source) or '?'}): GPU kernel time and CPU op "
                "time measure different things; record the baseline on the same kind of device"
            )
        clock = clock_name(b)
        if b.ranks or c.ranks:
            self.notes.append(
                "tensor-parallel profile: compared the pooled top level (slowest rank per step), not each rank"
            )
        if b.device.name != c.device.name:
            self.notes.append(f"baseline device {b.device.name!r} differs from candidate device {c.device.name!r}")
        if b.runtime.vllm_version != c.runtime.vllm_version:
            self.notes.append(f"vLLM {b.runtime.vllm_version} (baseline) vs {c.runtime.vllm_version} (candidate)")

        # Counts, exact.
        if self.step_kinds is None:
            self.count("token_steps", "token steps (engine steps)", b.token_steps, c.token_steps)
        elif b.token_steps != c.token_steps:  # the compared kinds' step counts are held exact below
            self.notes.append(
                f"token steps {b.token_steps} -> {c.token_steps} (only {', '.join(self.step_kinds)} steps are compared)"
            )
        layers_match = b.layer_count == c.layer_count
        self.count("layer_count", "decoder layers per step", b.layer_count, c.layer_count)
        kinds = [k for k in STEP_KINDS if k in b.step_kinds or k in c.step_kinds]
        kinds += sorted((set(b.step_kinds) | set(c.step_kinds)) - set(kinds))
        if self.step_kinds is not None:
            skipped = [k for k in kinds if k not in self.step_kinds]
            kinds = [k for k in kinds if k in self.step_kinds]
            if skipped:
                self.notes.append(
                    f"compared {', '.join(kinds) or 'no'} steps only (compare_step_kinds); "
                    f"{', '.join(skipped)} steps not compared"
                )
        for kind in kinds:
            bn = b.step_kinds[kind].count if kind in b.step_kinds else 0
            cn = c.step_kinds[kind].count if kind in c.step_kinds else 0
            self.count(f"step.{kind}.count", f"number of {kind} steps", bn, cn)

        step_times: list[StepTimeChange] = []
        for kind in kinds:
            if kind not in b.step_kinds or kind not in c.step_kinds:
                continue
            step_time, judged, noise = self.judge_step_time(kind)
            step_times.append(step_time)
            base_us = step_time.baseline_us
            self._kernels(kind, base_us, noise, judged)
            if judged:
                self.judge_layer_times(kind, layers_match)

        steps = max(c.token_steps, 1)
        undecided_kinds = [m for m in self.too_few_samples if m.startswith("step.")]
        if undecided_kinds:  # the total holds those steps' time: it cannot be judged either
            self.too_few_samples.append("total_kernel_us")
        else:
            self.time(
                "total_kernel_us",
                f"total {'kernel' if clock == 'GPU' else 'CPU op'} time",
                b.total_kernel_us,
                c.total_kernel_us,
                tol.total_abs_floor_us,
                max(self.step_noise, self._spread(lambda s: s.total_kernel_us)),
                contribution_us=(c.total_kernel_us - b.total_kernel_us) / steps,
            )

        new_kernels, missing_kernels = self.drift()
        failing_drift = [d for d in new_kernels + missing_kernels if d.fails]
        excused = [
            d
            for d in new_kernels + missing_kernels
            if not d.fails
            and d.name in self.unstable
            and self.drift_of(self.c if d in new_kernels else self.b, d.name, excuse=False).fails
        ]
        if excused:
            self.notes.append(
                f"{len(excused)} kernel(s) unstable across the repeats appeared/disappeared; "
                f"not failing: {', '.join(d.short_name for d in excused[:5])}"
            )
        if failing_drift and not tol.fail_on_drift:
            self.notes.append(
                f"{len(failing_drift)} kernel(s) appeared/disappeared above the drift threshold; "
                "not failing (fail_on_drift is off)"
            )
        elif failing_drift:
            for d in failing_drift:
                verb = "appeared" if d in new_kernels else "disappeared"
                self.add_drift_regression(
                    d,
                    new=d in new_kernels,
                    allowed=f"new/missing kernels below {fmt_pct(tol.drift_share)} of step time",
                    where=(
                        f"{verb}: {d.us_per_step:.1f} µs per {d.step_kind} step, {fmt_pct(d.share_of_step)} of the "
                        f"step (allowed < {fmt_pct(tol.drift_share)})"
                    ),
                )

        self.note_without_samples()
        # User-facing latency, throughput and per-step CPU overhead (issue 12), in their own module.
        compare_step_overhead(self, kinds)
        compare_latency(self, self.b_timed, self.c_timed)

        return self.finish(new_kernels, missing_kernels, step_times)

    def _kernels(self, kind: StepKind, base_us: float, noise: float, judged: bool) -> None:
        """Each kernel both sides ran in `kind` steps: launches per step exact, µs per step (when judged)
        by the tolerance, floored by what the step's own noise hides."""
        b, c, tol = self.b, self.c, self.tol
        # Per kernel: launches per step exact, µs per step within tolerance.
        b_launch, c_launch = launches_per_step(b, kind), launches_per_step(c, kind)
        b_us, c_us = kernel_us_per_step(b, kind), kernel_us_per_step(c, kind)
        loose: list[str] = []
        for name in sorted(set(b_launch) & set(c_launch)):
            short = self.short.get(name, name)
            if self.kernel_class.get(name) == "memory" or name in self.unstable:
                if b_launch[name] != c_launch[name]:
                    loose.append(f"{short} {num(b_launch[name])} -> {num(c_launch[name])}")
                continue
            self.count(
                f"kernel[{short}].{kind}.launches_per_step",
                f"launches per {kind} step of kernel {short}",
                b_launch[name],
                c_launch[name],
                contribution_us=abs(c_us.get(name, 0.0) - b_us.get(name, 0.0)),
            )
        if loose:
            self.notes.append(
                f"launches per {kind} step changed for memory ops / kernels unstable across "
                f"repeats (not held exact): {'; '.join(loose[:5])}"
                + (f" and {len(loose) - 5} more" if len(loose) > 5 else "")
            )
        for name in sorted(set(b_us) & set(c_us)) if judged else ():
            short = self.short.get(name, name)
            self.time(
                kernel_metric(short, kind),
                f"kernel {short} in {kind} steps",
                b_us[name],
                c_us[name],
                tol.abs_floor_us,
                self._spread(lambda s, k=kind, n=name: s.kernel_us_per_step[k][n]),
                unit="µs/step",
                step_us=base_us,
                step_noise=noise,
            )


def compare_summaries(
    baseline: ProfileSummary,
    candidate: ProfileSummary,
    tol: Tolerances | None = None,
    baseline_spread: RepeatSpread | None = None,
    candidate_spread: RepeatSpread | None = None,
    step_kinds: tuple[str, ...] | list[str] | None = None,
    baseline_timed: TimedPassResult | None = None,
    candidate_timed: TimedPassResult | None = None,
) -> Comparison:
    """Compare `candidate` with `baseline`; verdict "fail" when any regression (or failing drift).

    `step_kinds` (e.g. ("decode",)): compare only the per-step metrics of those step kinds
    (step time, per-kernel and per-layer times, launch counts, drift); None compares every kind.
    `baseline_timed` / `candidate_timed`: the timed passes (TTFT, TPOT, ITL, e2e, throughput);
    compared when both exist, else a note says latency was not compared.
    """
    kinds = validate_step_kinds(step_kinds)
    return _Comparer(
        baseline,
        candidate,
        tol or Tolerances(),
        baseline_spread,
        candidate_spread,
        kinds,
        baseline_timed,
        candidate_timed,
    ).run()


def kernel_deltas(baseline: ProfileSummary, candidate: ProfileSummary) -> list[KernelDelta]:
    """Every (kernel, step kind) pair's µs per step on both sides, largest absolute change first."""
    short = short_names(baseline, candidate)
    rows: list[KernelDelta] = []
    for kind in sorted(set(baseline.step_kinds) | set(candidate.step_kinds)):
        b_us, c_us = kernel_us_per_step(baseline, kind), kernel_us_per_step(candidate, kind)
        for name in set(b_us) | set(c_us):
            rows.append(KernelDelta(name, short.get(name, name), kind, b_us.get(name), c_us.get(name)))
    rows.sort(key=lambda r: abs(r.delta_us), reverse=True)
    return rows
