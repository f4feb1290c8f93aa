"""Noise-aware comparison of a candidate profile with its baseline.

Counts are compared exactly (token steps, steps per kind, layers per step, launches per step
of each kernel): a change there means the work changed, not the speed. Times are compared
with a relative tolerance, an absolute floor (tiny kernels jitter by whole microseconds) and
the repeats' observed noise: a metric's tolerance is max(rel_time, noise_multiplier * spread).
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

from .comparison import (
    Comparison,
    DriftPlace,
    Finding,
    KernelDrift,
    StepTimeChange,
    Verdict,
    kernel_metric,
    step_metric,
)
from .damage import damage_notes
from .errors import AnalysisError, VllmProfileError
from .latency_compare import compare_latency, compare_step_overhead
from .repeats import RepeatSpread, kernel_us_per_step
from .summary import STEP_KINDS, ProfileSummary, StepKind

if TYPE_CHECKING:
    from .latency import TimedPassResult


class IncomparableSummariesError(AnalysisError):
    """The two summaries measure different things (e.g. GPU kernel time vs CPU op time)."""


@dataclass
class Tolerances:
    """How far a time may move before it is a regression. Defaults suit H100 decode steps.

    A time metric fails when |candidate - baseline| > max(tolerance * baseline, floor), where
    tolerance = max(rel_time, noise_multiplier * spread) and spread is the larger relative
    spread (max-min)/median of that metric over the baseline's and the candidate's repeats.
    """

    rel_time: float = 0.02  # 2 %: same-config H100 runs differ by ~0.2-0.5 % per step kind
    abs_floor_us: float = 5.0  # per kernel / per layer (µs per step): small kernels jitter by µs
    step_abs_floor_us: float = 20.0  # per step kind median step time
    total_abs_floor_us: float = 100.0  # total kernel time of the profile
    # A single kernel's or layer's time fails only when its move is also at least this share of
    # its step's time: across two boots of the same H100 server, FlashAttention's decode time moved
    # 3.85 % (13 µs, 0.2 % of the step) while the step moved -0.14 %; such moves are noise, and a
    # real slowdown of one kernel large enough to matter shows in the step time too.
    kernel_step_share: float = 0.005
    noise_multiplier: float = 3.0  # noise of k * spread is tolerated when larger than rel_time
    drift_share: float = 0.01  # a new / missing kernel fails at >= 1 % of a step's GPU time
    fail_on_drift: bool = True
    # ---- user-facing latency and step overhead (issue 12): a latency / throughput metric fails
    # when it moves more than max(latency_rel_time, rel_time, noise_multiplier * run-to-run spread)
    # and more than the floor. 10 %: client-side timings also carry the client's and the host's
    # jitter (ITL medians of 0-15 ms between runs on a shared 2-core machine, timed_pass.py), so
    # they are held looser than GPU kernel time; not yet calibrated on a GPU.
    latency_rel_time: float = 0.10
    latency_abs_floor_ms: float = 1.0  # TTFT/TPOT/ITL/e2e: a client timestamp's jitter

    @classmethod
    def from_options(cls, **options: Any) -> Tolerances:
        """Build from plugin options / ini values; None (option not given) keeps the default."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise VllmProfileError(f"unknown tolerance option(s) {', '.join(unknown)}; "
                                   f"valid: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for name, value in options.items():
            if value is None:
                continue
            if name == "fail_on_drift":
                if isinstance(value, str):
                    if value.strip().lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise VllmProfileError(f"tolerance fail_on_drift={value!r} must be true or false")
                    value = value.strip().lower() in ("1", "true", "yes", "on")
                values[name] = bool(value)
                continue
            try:
                values[name] = float(value)
            except (TypeError, ValueError):
                raise VllmProfileError(f"tolerance {name}={value!r} must be a number") from None
        return cls(**values)

    def __post_init__(self) -> None:
        for name in ("rel_time", "abs_floor_us", "step_abs_floor_us", "total_abs_floor_us",
                     "noise_multiplier", "drift_share", "latency_rel_time", "latency_abs_floor_ms"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise VllmProfileError(f"tolerance {name}={value!r} must be a number >= 0")


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
        raise VllmProfileError(f"{argument}={step_kinds!r} must be a list of step kinds, e.g. ['decode'] "
                               f"(valid kinds: {', '.join(STEP_KINDS)})")
    kinds = tuple(step_kinds)
    unknown = [k for k in kinds if k not in STEP_KINDS]
    if not kinds or unknown:
        why = f"unknown step kind(s) {unknown!r}" if unknown else "is empty"
        raise VllmProfileError(f"{argument}={step_kinds!r}: {why}; valid kinds: {', '.join(STEP_KINDS)} "
                               "(or leave it unset to compare every kind)")
    return tuple(k for k in STEP_KINDS if k in kinds)


class _Comparer:
    def __init__(self, baseline: ProfileSummary, candidate: ProfileSummary, tol: Tolerances,
                 baseline_spread: RepeatSpread | None, candidate_spread: RepeatSpread | None,
                 step_kinds: tuple[str, ...] | None = None, baseline_timed: TimedPassResult | None = None,
                 candidate_timed: TimedPassResult | None = None) -> None:
        self.b, self.c, self.tol = baseline, candidate, tol
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
        self.regressions.append(Finding(
            metric=metric, kind="count", baseline=base, candidate=cand, delta=delta, delta_pct=pct,
            allowed="exact", contribution_us=contribution_us,
            message=f"{label} changed {_num(base)} -> {_num(cand)} (counts must match exactly)",
        ))

    # -- times -----------------------------------------------------------------------------
    def time(self, metric: str, label: str, base: float, cand: float, floor_us: float, spread: float,
             contribution_us: float | None = None, unit: str = "µs", step_us: float | None = None,
             baseline_samples: Sequence[float] | None = None, candidate_samples: Sequence[float] | None = None,
             ) -> Finding | None:
        """Judge one time; the Finding made (regression or improvement) or None when within tolerance.

        baseline_samples / candidate_samples: the repeat-level values the metric is the median of
        (per timed repeat for latency, per profiled repeat for step overhead), for a rule that
        judges noise from them; `spread` is their relative spread already. The floor is in `unit`'s
        base unit (µs, or ms for latency)."""
        rel = max(self.tol.rel_time, self.tol.noise_multiplier * spread)
        if step_us is not None:  # a part of a step: judged by what it does to the step (Tolerances)
            floor_us = max(floor_us, self.tol.kernel_step_share * step_us)
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
            metric=metric, kind="time", baseline=base, candidate=cand, delta=delta, delta_pct=pct,
            allowed=allowed_full, contribution_us=delta if contribution_us is None else contribution_us,
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
            self.notes.append("tensor-parallel profile: compared the pooled top level (slowest rank per step), "
                              "not each rank")
        if b.device.name != c.device.name:
            self.notes.append(f"baseline device {b.device.name!r} differs from candidate device {c.device.name!r}")
        if b.runtime.vllm_version != c.runtime.vllm_version:
            self.notes.append(f"vLLM {b.runtime.vllm_version} (baseline) vs {c.runtime.vllm_version} (candidate)")

        # Counts, exact.
        if self.step_kinds is None:
            self.count("token_steps", "token steps (engine steps)", b.token_steps, c.token_steps)
        elif b.token_steps != c.token_steps:  # the compared kinds' step counts are held exact below
            self.notes.append(f"token steps {b.token_steps} -> {c.token_steps} (only "
                              f"{', '.join(self.step_kinds)} steps are compared)")
        layers_match = b.layer_count == c.layer_count
        self.count("layer_count", "decoder layers per step", b.layer_count, c.layer_count)
        kinds = [k for k in STEP_KINDS if k in b.step_kinds or k in c.step_kinds]
        kinds += sorted((set(b.step_kinds) | set(c.step_kinds)) - set(kinds))
        if self.step_kinds is not None:
            skipped = [k for k in kinds if k not in self.step_kinds]
            kinds = [k for k in kinds if k in self.step_kinds]
            if skipped:
                self.notes.append(f"compared {', '.join(kinds) or 'no'} steps only (compare_step_kinds); "
                                  f"{', '.join(skipped)} steps not compared")
        for kind in kinds:
            bn = b.step_kinds[kind].count if kind in b.step_kinds else 0
            cn = c.step_kinds[kind].count if kind in c.step_kinds else 0
            self.count(f"step.{kind}.count", f"number of {kind} steps", bn, cn)

        step_times: list[StepTimeChange] = []
        for kind in kinds:
            if kind not in b.step_kinds or kind not in c.step_kinds:
                continue
            bs, cs = b.step_kinds[kind], c.step_kinds[kind]
            base_us, cand_us = bs.median_gpu_time_us, cs.median_gpu_time_us
            change_pct = 100 * (cand_us - base_us) / base_us if base_us else 0.0
            step_times.append(StepTimeChange(kind, base_us, cand_us, change_pct))
            self.time(step_metric(kind), f"{kind} step {clock} time", base_us, cand_us,
                      tol.step_abs_floor_us, self._spread(lambda s, k=kind: s.step_gpu_time_us[k]))

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
                self.count(f"kernel[{short}].{kind}.launches_per_step",
                           f"launches per {kind} step of kernel {short}", b_launch[name], c_launch[name],
                           contribution_us=abs(c_us.get(name, 0.0) - b_us.get(name, 0.0)))
            if loose:
                self.notes.append(f"launches per {kind} step changed for memory ops / kernels unstable across "
                                  f"repeats (not held exact): {'; '.join(loose[:5])}"
                                  + (f" and {len(loose) - 5} more" if len(loose) > 5 else ""))
            for name in sorted(set(b_us) & set(c_us)):
                short = self.short.get(name, name)
                self.time(kernel_metric(short, kind), f"kernel {short} in {kind} steps",
                          b_us[name], c_us[name], tol.abs_floor_us,
                          self._spread(lambda s, k=kind, n=name: s.kernel_us_per_step[k][n]), unit="µs/step",
                          step_us=base_us)

            # Per layer (only when the layer structure is the same).
            if layers_match and len(bs.median_layer_time_us) == len(cs.median_layer_time_us):
                for j, (bl, cl) in enumerate(zip(bs.median_layer_time_us, cs.median_layer_time_us, strict=True)):
                    self.time(f"layer[{j}].{kind}.time_us", f"layer {j} in {kind} steps", bl, cl, tol.abs_floor_us,
                              self._spread(lambda s, k=kind, i=j: s.layer_time_us[k][i]), step_us=base_us)
            elif layers_match:
                self.notes.append(f"{kind} steps: per-layer times not compared (layer lists differ in length)")

        steps = max(c.token_steps, 1)
        self.time("total_kernel_us", f"total {'kernel' if clock == 'GPU' else 'CPU op'} time", b.total_kernel_us,
                  c.total_kernel_us, tol.total_abs_floor_us, self._spread(lambda s: s.total_kernel_us),
                  contribution_us=(c.total_kernel_us - b.total_kernel_us) / steps)

        new_kernels, missing_kernels = self._drift()
        failing_drift = [d for d in new_kernels + missing_kernels if d.fails]
        excused = [d for d in new_kernels + missing_kernels if not d.fails and d.name in self.unstable
                   and self._drift_of(self.c if d in new_kernels else self.b, d.name, excuse=False).fails]
        if excused:
            self.notes.append(f"{len(excused)} kernel(s) unstable across the repeats appeared/disappeared; "
                              f"not failing: {', '.join(d.short_name for d in excused[:5])}")
        if failing_drift and not tol.fail_on_drift:
            self.notes.append(f"{len(failing_drift)} kernel(s) appeared/disappeared above the drift threshold; "
                              "not failing (fail_on_drift is off)")
        elif failing_drift:
            for d in failing_drift:
                what = "new" if d in new_kernels else "missing"
                verb = "appeared" if what == "new" else "disappeared"
                self.regressions.append(Finding(
                    metric=f"kernel[{d.short_name}].{what}", kind="drift",
                    baseline=None if what == "new" else d.us_per_step,
                    candidate=d.us_per_step if what == "new" else None,
                    delta=d.us_per_step if what == "new" else -d.us_per_step, delta_pct=None,
                    allowed=f"new/missing kernels below {_fmt_pct(tol.drift_share)} of step time",
                    contribution_us=d.us_per_step,
                    message=(f"{what} kernel {d.short_name} ({d.kernel_class}) {verb}: {d.us_per_step:.1f} µs per "
                             f"{d.step_kind} step, {_fmt_pct(d.share_of_step)} of the step "
                             f"(allowed < {_fmt_pct(tol.drift_share)})"),
                ))

        # User-facing latency, throughput and per-step CPU overhead (issue 12), in their own module.
        compare_step_overhead(self, kinds)
        compare_latency(self, self.b_timed, self.c_timed)

        self.regressions.sort(key=lambda f: f.contribution_us, reverse=True)
        self.improvements.sort(key=lambda f: f.contribution_us)
        # A side built on damaged trace data never passes: its numbers may be the damage (issue 17).
        self.regressions[:0] = self._damage()
        verdict: Verdict = "fail" if self.regressions else "pass"
        return Comparison(verdict=verdict, regressions=self.regressions, improvements=self.improvements,
                          new_kernels=new_kernels, missing_kernels=missing_kernels, step_times=step_times,
                          notes=self.notes)

    def _damage(self) -> list[Finding]:
        return [
            Finding(metric=f"trace_damage.{side}", kind="damage", baseline=None, candidate=None, delta=None,
                    delta_pct=None, allowed="no damaged trace data",
                    message=f"the {side} summary is built on a damaged trace, so the comparison cannot pass: {note}")
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
                share = us / stats.median_gpu_time_us if stats.median_gpu_time_us > 0 else 0.0
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
        return KernelDrift(name=name, short_name=kernel.short_name or name, kernel_class=kernel.kernel_class,
                           step_kind=kind, us_per_step=us, share_of_step=share, fails=fails)


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
    return _Comparer(baseline, candidate, tol or Tolerances(), baseline_spread, candidate_spread, kinds,
                     baseline_timed, candidate_timed).run()


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

