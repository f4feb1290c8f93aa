"""Noise-aware comparison of a candidate profile with its baseline.

Counts are compared exactly (token steps, steps per kind, layers per step, launches per step
of each kernel): a change there means the work changed, not the speed. Step and layer times
are judged from their samples, every step of every repeat (`significance`: a shift that is
significant at `alpha` and at least `min_effect`, or 4 sigma of the samples' own noise, big);
a step kind with fewer than 5 samples a side is reported as undecided (`too_few_samples`),
its times not judged. Kernel times (one value per repeat) and summaries without samples (0.1.0
baselines) keep the fixed rule: a relative tolerance, an absolute floor (tiny kernels jitter
by whole microseconds) and the repeats' observed noise, max(rel_time, noise_multiplier * spread).
Kernels that appear or disappear are kernel-set drift; it fails the verdict when such a
kernel carries at least `drift_share` of a step's GPU time.

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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from .comparison import (
    Comparison,
    DriftPlace,
    Finding,
    KernelDrift,
    StepTimeChange,
    Verdict,
    VersionChange,
    kernel_metric,
    step_metric,
)
from .damage import damage_notes
from .errors import AnalysisError, VllmProfileError
from .latency_compare import compare_latency, compare_step_overhead
from .repeats import RepeatSpread, kernel_us_per_step
from .samples import layer_samples, step_samples
from .significance import SampleDecision, compare_samples, relative_noise
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


def _fmt_pct(frac: float) -> str:
    return f"{100 * frac:.1f}%"


def _clock(summary: ProfileSummary) -> str:
    return "CPU" if summary.timing_domain == "cpu" else "GPU"


def _short_names(*summaries: ProfileSummary) -> dict[str, str]:
    names: dict[str, str] = {}
    for s in summaries:
        for k in s.kernels:
            names.setdefault(k.name, k.short_name or k.name)
    return names


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


class _Comparer:
    def __init__(
        self,
        baseline: ProfileSummary,
        candidate: ProfileSummary,
        tol: Tolerances,
        baseline_spread: RepeatSpread | None,
        candidate_spread: RepeatSpread | None,
        step_kinds: tuple[str, ...] | None = None,
        baseline_timed: TimedPassResult | None = None,
        candidate_timed: TimedPassResult | None = None,
    ) -> None:
        self.b, self.c, self.tol = baseline, candidate, tol
        self.b_spread, self.c_spread = baseline_spread, candidate_spread
        self.rule = tol.decision_rule()
        self.too_few_samples: list[str] = []
        self.step_noise = 0.0  # largest step-to-step noise of a judged step kind (significance.relative_noise)
        self.without_samples: list[str] = []  # sides that lack samples (a 0.1.0 combined baseline)
        self.b_timed, self.c_timed = baseline_timed, candidate_timed
        self.spreads = [s for s in (baseline_spread, candidate_spread) if s is not None]
        self.step_kinds = step_kinds
        self.unstable = {name for s in self.spreads for name in s.unstable_kernels}
        self.kernel_class = {k.name: k.kernel_class for s in (baseline, candidate) for k in s.kernels}
        self.short = _short_names(baseline, candidate)
        self.regressions: list[Finding] = []
        self.improvements: list[Finding] = []
        self.notes: list[str] = []

    # -- noise -----------------------------------------------------------------------------
    def _spread(self, getter: Any) -> float:
        values = []
        for s in self.spreads:
            try:
                values.append(float(getter(s)))
            except (KeyError, IndexError, TypeError):
                continue
        return max(values) if values else 0.0

    # -- counts ----------------------------------------------------------------------------
    def count(self, metric: str, label: str, base: float, cand: float, contribution_us: float = 0.0) -> None:
        if base == cand:
            return
        delta = cand - base
        pct = 100 * delta / base if base else None
        self.regressions.append(
            Finding(
                metric=metric,
                kind="count",
                baseline=base,
                candidate=cand,
                delta=delta,
                delta_pct=pct,
                allowed="exact",
                contribution_us=contribution_us,
                message=f"{label} changed {_num(base)} -> {_num(cand)} (counts must match exactly)",
            )
        )

    # -- times -----------------------------------------------------------------------------
    def time(
        self,
        metric: str,
        label: str,
        base: float,
        cand: float,
        floor_us: float,
        spread: float,
        contribution_us: float | None = None,
        unit: str = "µs",
        step_us: float | None = None,
        step_noise: float = 0.0,
        baseline_samples: Sequence[float] | None = None,
        candidate_samples: Sequence[float] | None = None,
    ) -> Finding | None:
        """Judge one time metric: from its samples when both sides have enough, else by the tolerance;
        the Finding made (regression or improvement) or None when it held.

        baseline_samples / candidate_samples: the samples the metric summarizes (per step for step
        times; per timed repeat for latency, per profiled repeat for step overhead). The floor is in
        `unit`'s base unit (µs, or ms for latency)."""
        if step_us is not None:  # a part of a step: judged by what it does to the step (Tolerances)
            # ... and by what the step's own noise hides (no kernel samples per step exist to test it).
            floor_us = max(
                floor_us, self.tol.kernel_step_share * step_us, self.tol.sample_noise_multiplier * step_noise * step_us
            )
        if baseline_samples is not None and candidate_samples is not None:
            decision = compare_samples(baseline_samples, candidate_samples, self.rule, floor=floor_us)
            if decision.outcome == "too-few-samples":  # reported (Comparison.too_few_samples), never failed
                self.too_few_samples.append(metric)
                return None
            return self._sample_finding(metric, label, base, cand, unit, contribution_us, decision)
        return self._tolerance_time(metric, label, base, cand, floor_us, spread, contribution_us, unit)

    def _sample_finding(
        self,
        metric: str,
        label: str,
        base: float,
        cand: float,
        unit: str,
        contribution_us: float | None,
        decision: SampleDecision,
    ) -> Finding | None:
        if decision.outcome not in ("regression", "improvement"):
            return None
        assert decision.estimate is not None and decision.low is not None and decision.high is not None
        delta = cand - base
        pct = 100 * delta / base if base else None
        confidence = f"{100 * (1 - self.rule.alpha):g}%"
        finding = Finding(
            metric=metric,
            kind="time",
            baseline=base,
            candidate=cand,
            delta=delta,
            delta_pct=pct,
            allowed=f"shift within ±{100 * decision.threshold:.2f}% or not significant at alpha={self.rule.alpha:g}",
            contribution_us=delta if contribution_us is None else contribution_us,
            message=(
                f"{label} {base:.1f} {unit} -> {cand:.1f} {unit}: shift {100 * decision.estimate:+.2f}% "
                f"({confidence} interval {100 * decision.low:+.2f}% to {100 * decision.high:+.2f}%, "
                f"threshold ±{100 * decision.threshold:.2f}%, p={decision.p_value:.2g}, "
                f"{decision.baseline_n} vs {decision.candidate_n} samples)"
            ),
            estimate_pct=100 * decision.estimate,
            interval_pct=[100 * decision.low, 100 * decision.high],
            threshold_pct=100 * decision.threshold,
            p_value=msgspec.UNSET if decision.p_value is None else decision.p_value,
            samples=[decision.baseline_n, decision.candidate_n],
        )
        (self.regressions if decision.outcome == "regression" else self.improvements).append(finding)
        return finding

    def _too_few(self, kind: StepKind, b_samples: Sequence[float] | None, c_samples: Sequence[float] | None) -> bool:
        """True (and reported) when a side has samples of `kind` steps, but fewer than the rule needs."""
        if b_samples is None or c_samples is None or min(len(b_samples), len(c_samples)) >= self.rule.min_samples:
            return False
        self.too_few_samples.append(step_metric(kind))
        self.notes.append(
            f"{kind} steps: {len(b_samples)} vs {len(c_samples)} samples, too few for a statistical "
            f"verdict (need >= {self.rule.min_samples} a side): the times of {kind} steps, their "
            "kernels and layers are not judged (counts are); record more repeats to judge them"
        )
        return True

    def _samples(self, kind: StepKind, layer: int | None = None) -> tuple[Any, Any]:
        """(baseline, candidate) samples of a step kind's step time or of one of its layers."""
        pair = []
        for side, summary, spread in (("baseline", self.b, self.b_spread), ("candidate", self.c, self.c_spread)):
            got = step_samples(summary, spread, kind) if layer is None else layer_samples(summary, spread, kind, layer)
            if got is None and side not in self.without_samples:
                self.without_samples.append(side)
            pair.append(got)
        return pair[0], pair[1]

    def _tolerance_time(
        self,
        metric: str,
        label: str,
        base: float,
        cand: float,
        floor_us: float,
        spread: float,
        contribution_us: float | None,
        unit: str,
    ) -> Finding | None:
        rel = max(self.tol.rel_time, self.tol.noise_multiplier * spread)
        allowed_us = max(rel * base, floor_us)
        delta = cand - base
        pct = 100 * delta / base if base else None
        if abs(delta) <= allowed_us:
            return None
        floor_unit = unit.split("/")[0]
        floor_rules = floor_us > rel * base
        allowed_words = f"±{floor_us:.1f} {floor_unit}" if floor_rules else f"±{100 * rel:.1f}%"
        allowed_full = f"±{100 * rel:.1f}% (min {floor_us:g} {floor_unit})"
        if spread > 0:
            allowed_full += f", noise {_fmt_pct(spread)}"
        pct_words = f"{pct:+.2f}%" if pct is not None else "new"
        finding = Finding(
            metric=metric,
            kind="time",
            baseline=base,
            candidate=cand,
            delta=delta,
            delta_pct=pct,
            allowed=allowed_full,
            contribution_us=delta if contribution_us is None else contribution_us,
            message=f"{label} {base:.1f} {unit} -> {cand:.1f} {unit} ({pct_words}, allowed {allowed_words})",
        )
        (self.regressions if delta > 0 else self.improvements).append(finding)
        return finding

    def run(self) -> Comparison:
        b, c, tol = self.b, self.c, self.tol
        if b.timing_domain != c.timing_domain:
            raise IncomparableSummariesError(
                f"cannot compare a {b.timing_domain}-timed summary (baseline: {', '.join(b.source) or '?'}) with a "
                f"{c.timing_domain}-timed one (candidate: {', '.join(c.source) or '?'}): GPU kernel time and CPU op "
                "time measure different things; record the baseline on the same kind of device"
            )
        clock = _clock(b)
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
            bs, cs = b.step_kinds[kind], c.step_kinds[kind]
            base_us, cand_us = bs.median_op_time_us, cs.median_op_time_us
            change_pct = 100 * (cand_us - base_us) / base_us if base_us else 0.0
            step_times.append(StepTimeChange(kind, base_us, cand_us, change_pct))
            b_samples, c_samples = self._samples(kind)
            # Too few samples: neither the step's time nor its parts' are judged (reported); counts are.
            judged = not self._too_few(kind, b_samples, c_samples)
            # Step-to-step noise seen in the samples sets a µs floor for the kernels, which have one value
            # per repeat, and widens the total's tolerance: ~0.1 % on an H100, ~7 % on a CPU runner.
            noise = max(relative_noise(b_samples or ()), relative_noise(c_samples or ()))
            self.step_noise = max(self.step_noise, noise)
            if judged:
                self.time(
                    step_metric(kind),
                    f"{kind} step {clock} time",
                    base_us,
                    cand_us,
                    tol.step_abs_floor_us,
                    self._spread(lambda s, k=kind: s.step_op_time_us[k]),
                    baseline_samples=b_samples,
                    candidate_samples=c_samples,
                )

            # Per kernel: launches per step exact, µs per step within tolerance.
            b_launch, c_launch = launches_per_step(b, kind), launches_per_step(c, kind)
            b_us, c_us = kernel_us_per_step(b, kind), kernel_us_per_step(c, kind)
            loose: list[str] = []
            for name in sorted(set(b_launch) & set(c_launch)):
                short = self.short.get(name, name)
                if self.kernel_class.get(name) == "memory" or name in self.unstable:
                    if b_launch[name] != c_launch[name]:
                        loose.append(f"{short} {_num(b_launch[name])} -> {_num(c_launch[name])}")
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

            # Per layer (only when the layer structure is the same).
            if not judged:
                pass
            elif layers_match and len(bs.median_layer_time_us) == len(cs.median_layer_time_us):
                for j, (bl, cl) in enumerate(zip(bs.median_layer_time_us, cs.median_layer_time_us, strict=True)):
                    b_samples, c_samples = self._samples(kind, j)
                    self.time(
                        f"layer[{j}].{kind}.time_us",
                        f"layer {j} in {kind} steps",
                        bl,
                        cl,
                        tol.abs_floor_us,
                        self._spread(lambda s, k=kind, i=j: s.layer_time_us[k][i]),
                        step_us=base_us,
                        baseline_samples=b_samples,
                        candidate_samples=c_samples,
                    )
            elif layers_match:
                self.notes.append(f"{kind} steps: per-layer times not compared (layer lists differ in length)")

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

        new_kernels, missing_kernels = self._drift()
        failing_drift = [d for d in new_kernels + missing_kernels if d.fails]
        excused = [
            d
            for d in new_kernels + missing_kernels
            if not d.fails
            and d.name in self.unstable
            and self._drift_of(self.c if d in new_kernels else self.b, d.name, excuse=False).fails
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
                what = "new" if d in new_kernels else "missing"
                verb = "appeared" if what == "new" else "disappeared"
                self.regressions.append(
                    Finding(
                        metric=f"kernel[{d.short_name}].{what}",
                        kind="drift",
                        baseline=None if what == "new" else d.us_per_step,
                        candidate=d.us_per_step if what == "new" else None,
                        delta=d.us_per_step if what == "new" else -d.us_per_step,
                        delta_pct=None,
                        allowed=f"new/missing kernels below {_fmt_pct(tol.drift_share)} of step time",
                        contribution_us=d.us_per_step,
                        message=(
                            f"{what} kernel {d.short_name} ({d.kernel_class}) {verb}: {d.us_per_step:.1f} µs per "
                            f"{d.step_kind} step, {_fmt_pct(d.share_of_step)} of the step "
                            f"(allowed < {_fmt_pct(tol.drift_share)})"
                        ),
                    )
                )

        if self.without_samples:
            self.notes.append(
                f"the {' and '.join(self.without_samples)} summary has no per-step samples of its "
                "repeats (written before they were kept): step and layer times judged by the fixed "
                "tolerance, not the statistical rule"
            )
        # User-facing latency, throughput and per-step CPU overhead (issue 12), in their own module.
        compare_step_overhead(self, kinds)
        compare_latency(self, self.b_timed, self.c_timed)

        return self._finish(new_kernels, missing_kernels, step_times)

    def _finish(
        self,
        new_kernels: list[KernelDrift],
        missing_kernels: list[KernelDrift],
        step_times: list[StepTimeChange],
        cross_version: VersionChange | None = None,
    ) -> Comparison:
        """The verdict of what was judged: regressions ranked (structure first), damage first of all."""
        self.regressions.sort(key=regression_rank)
        self.improvements.sort(key=lambda f: f.contribution_us)
        # A side built on damaged trace data never passes: its numbers may be the damage (issue 17).
        self.regressions[:0] = self._damage()
        verdict: Verdict = "fail" if self.regressions else "pass"
        return Comparison(
            verdict=verdict,
            regressions=self.regressions,
            improvements=self.improvements,
            new_kernels=new_kernels,
            missing_kernels=missing_kernels,
            step_times=step_times,
            notes=self.notes,
            too_few_samples=self.too_few_samples or msgspec.UNSET,
            cross_version=cross_version,
        )

    def _damage(self) -> list[Finding]:
        return [
            Finding(
                metric=f"trace_damage.{side}",
                kind="damage",
                baseline=None,
                candidate=None,
                delta=None,
                delta_pct=None,
                allowed="no damaged trace data",
                message=f"the {side} summary is built on a damaged trace, so the comparison cannot pass: {note}",
            )
            for side, summary in (("baseline", self.b), ("candidate", self.c))
            for note in damage_notes(summary)
        ]

    def _drift(self) -> tuple[list[KernelDrift], list[KernelDrift]]:
        b_names = {k.name for k in self.b.kernels}
        c_names = {k.name for k in self.c.kernels}
        new = [self._drift_of(self.c, name) for name in sorted(c_names - b_names)]
        missing = [self._drift_of(self.b, name) for name in sorted(b_names - c_names)]
        key = lambda d: d.share_of_step  # noqa: E731
        return sorted(new, key=key, reverse=True), sorted(missing, key=key, reverse=True)

    def _drift_of(self, summary: ProfileSummary, name: str, excuse: bool = True) -> KernelDrift:
        kernel = summary.kernel(name)
        assert kernel is not None

        def best_of(kinds: list[StepKind]) -> tuple[float, DriftPlace, float] | None:  # (share, kind, µs per step)
            best: tuple[float, DriftPlace, float] | None = None
            for kind in kinds:
                stats = summary.step_kinds.get(kind)
                if stats is None or stats.count == 0:
                    continue
                us = kernel.per_step_kind[kind].total_us / stats.count
                share = us / stats.median_op_time_us if stats.median_op_time_us > 0 else 0.0
                if best is None or share > best[0]:
                    best = (share, kind, us)
            return best

        kinds = list(kernel.per_step_kind)
        compared = [k for k in kinds if self.step_kinds is None or k in self.step_kinds]
        best = best_of(compared)
        judged = best is not None
        if best is None:  # only in steps of kinds not compared: reported, never failing
            best = best_of(kinds)
        if best is None:  # launched outside every step: judge it against the whole profile
            share = kernel.total_us / summary.total_kernel_us if summary.total_kernel_us > 0 else 0.0
            outside: DriftPlace = "outside-steps"
            best = (share, outside, kernel.total_us / max(summary.token_steps, 1))
            judged = True
        share, kind, us = best
        fails = judged and share >= self.tol.drift_share and not (excuse and name in self.unstable)
        return KernelDrift(
            name=name,
            short_name=kernel.short_name or name,
            kernel_class=kernel.kernel_class,
            step_kind=kind,
            us_per_step=us,
            share_of_step=share,
            fails=fails,
        )


# Counts that change the shape of the work (how many steps, layers, steps of a kind): whatever
# else moved follows from them, so they rank first (issue 15: "token steps changed 17 -> 64"
# came fourth, after "aten::slice changed 82 -> 81").
STRUCTURAL_METRICS = ("token_steps", "layer_count")


def is_structural(finding: Finding) -> bool:
    """A count of steps or layers (not of a kernel's launches)."""
    metric = finding.metric
    return metric in STRUCTURAL_METRICS or (metric.startswith("step.") and metric.endswith(".count"))


def regression_rank(finding: Finding) -> tuple[int, float]:
    """Sort key of regressions: structural changes first, then by share of the step-time change."""
    return (0 if is_structural(finding) else 1, -finding.contribution_us)


def _num(x: float) -> str:
    return f"{x:g}"


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
    short = _short_names(baseline, candidate)
    rows: list[KernelDelta] = []
    for kind in sorted(set(baseline.step_kinds) | set(candidate.step_kinds)):
        b_us, c_us = kernel_us_per_step(baseline, kind), kernel_us_per_step(candidate, kind)
        for name in set(b_us) | set(c_us):
            rows.append(KernelDelta(name, short.get(name, name), kind, b_us.get(name), c_us.get(name)))
    rows.sort(key=lambda r: abs(r.delta_us), reverse=True)
    return rows
