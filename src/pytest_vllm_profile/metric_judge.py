"""`MetricJudge`: how every comparison judges one metric, and the verdict it comes to.

Shared by the same-version comparison (`comparator`) and the cross-version one
(`comparator_crossversion`), so both hold the same rules:

* counts are exact (`count`);
* times are judged from their samples when both sides have enough (`significance`: every step of
  every repeat; a step kind with fewer than `min_samples` a side is undecided, `too_few_samples`),
  else by the fixed tolerance rule: max(rel_time, noise_multiplier * spread), with a µs floor
  (`time`); a part of a step (a kernel, a kernel class, a layer) is also judged by what it does
  to the step;
* a step kind's median step time and its layers' times (`judge_step_time`, `judge_layer_times`);
* kernel-set drift: each new / missing kernel's share of its step kind's time (`drift`);
* the verdict (`finish`): regressions ranked, structure first (`regression_rank`), findings of
  damaged trace data before all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    step_metric,
)
from .damage import damage_notes
from .repeats import RepeatSpread
from .samples import layer_samples, step_samples
from .significance import SampleDecision, compare_samples, relative_noise
from .summary import ProfileSummary, StepKind
from .tolerances import Tolerances

if TYPE_CHECKING:
    from .latency import TimedPassResult


def fmt_pct(frac: float) -> str:
    return f"{100 * frac:.1f}%"


def clock_name(summary: ProfileSummary) -> str:
    return "CPU" if summary.timing_domain == "cpu" else "GPU"


def short_names(*summaries: ProfileSummary) -> dict[str, str]:
    names: dict[str, str] = {}
    for s in summaries:
        for k in s.kernels:
            names.setdefault(k.name, k.short_name or k.name)
    return names


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


def num(x: float) -> str:
    return f"{x:g}"


class MetricJudge:
    """Judges the metrics of one baseline / candidate pair; `finish()` gives the Comparison."""

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
        self.short = short_names(baseline, candidate)
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
                message=f"{label} changed {num(base)} -> {num(cand)} (counts must match exactly)",
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
            allowed_full += f", noise {fmt_pct(spread)}"
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

    # -- a step kind's step time and layers (same- and cross-version) --------------------------
    def judge_step_time(self, kind: StepKind) -> tuple[StepTimeChange, bool, float]:
        """Judge the median step time of `kind` (both sides have such steps): (its change, whether
        its times were judged (False: too few samples, reported), the samples' step-to-step noise)."""
        bs, cs = self.b.step_kinds[kind], self.c.step_kinds[kind]
        base_us, cand_us = bs.median_op_time_us, cs.median_op_time_us
        change_pct = 100 * (cand_us - base_us) / base_us if base_us else 0.0
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
                f"{kind} step {clock_name(self.b)} time",
                base_us,
                cand_us,
                self.tol.step_abs_floor_us,
                self._spread(lambda s, k=kind: s.step_op_time_us[k]),
                baseline_samples=b_samples,
                candidate_samples=c_samples,
            )
        return StepTimeChange(kind, base_us, cand_us, change_pct), judged, noise

    def judge_layer_times(self, kind: StepKind, layers_match: bool) -> None:
        """Judge each decoder layer's time in `kind` steps, by index, from its samples (only when
        both sides have the same layer structure)."""
        bs, cs = self.b.step_kinds[kind], self.c.step_kinds[kind]
        if not layers_match:
            return
        if len(bs.median_layer_time_us) != len(cs.median_layer_time_us):
            self.notes.append(f"{kind} steps: per-layer times not compared (layer lists differ in length)")
            return
        for j, (bl, cl) in enumerate(zip(bs.median_layer_time_us, cs.median_layer_time_us, strict=True)):
            b_samples, c_samples = self._samples(kind, j)
            self.time(
                f"layer[{j}].{kind}.time_us",
                f"layer {j} in {kind} steps",
                bl,
                cl,
                self.tol.abs_floor_us,
                self._spread(lambda s, k=kind, i=j: s.layer_time_us[k][i]),
                step_us=bs.median_op_time_us,
                baseline_samples=b_samples,
                candidate_samples=c_samples,
            )

    def note_without_samples(self) -> None:
        """Say which side was judged by the fixed tolerance for lack of per-step samples."""
        if self.without_samples:
            self.notes.append(
                f"the {' and '.join(self.without_samples)} summary has no per-step samples of its "
                "repeats (written before they were kept): step and layer times judged by the fixed "
                "tolerance, not the statistical rule"
            )

    def finish(
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

    def drift(self) -> tuple[list[KernelDrift], list[KernelDrift]]:
        b_names = {k.name for k in self.b.kernels}
        c_names = {k.name for k in self.c.kernels}
        new = [self.drift_of(self.c, name) for name in sorted(c_names - b_names)]
        missing = [self.drift_of(self.b, name) for name in sorted(b_names - c_names)]
        key = lambda d: d.share_of_step  # noqa: E731
        return sorted(new, key=key, reverse=True), sorted(missing, key=key, reverse=True)

    def add_drift_regression(self, d: KernelDrift, new: bool, allowed: str, where: str) -> None:
        """A failing new/missing kernel as a regression; `where`: what the message says after its name."""
        what = "new" if new else "missing"
        self.regressions.append(
            Finding(
                metric=f"kernel[{d.short_name}].{what}",
                kind="drift",
                baseline=None if new else d.us_per_step,
                candidate=d.us_per_step if new else None,
                delta=d.us_per_step if new else -d.us_per_step,
                delta_pct=None,
                allowed=allowed,
                contribution_us=d.us_per_step,
                message=f"{what} kernel {d.short_name} ({d.kernel_class}) {where}",
            )
        )

    def drift_of(self, summary: ProfileSummary, name: str, excuse: bool = True) -> KernelDrift:
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
