"""Comparing a run on vLLM B with a baseline recorded on vLLM A (issue 13 item 3).

A new vLLM version renames, fuses and splits kernels (a new cuBLAS/nvjet tile, a fused
add+norm): per-kernel names and launch counts are not comparable across versions, the work
per step is. What a cross-version comparison compares, with the same rules as a same-version
one (`metric_judge.MetricJudge`: the statistical rule on every step's samples when both sides
have them, else the tolerance; too few samples of a step kind: its times undecided, reported):

* counts, exact: token steps (unless `step_kinds`), steps per kind, decoder layers per step —
  the same workload runs the same steps on any version;
* each step kind's median step time, judged from its per-step samples (`judge_step_time`);
* each decoder layer's time by index per step kind, from its samples (`judge_layer_times`);
* each kernel class's µs per step per step kind (`analysis.kernels.KERNEL_CLASSES`: gemm,
  attention, norm, ...), in place of per-kernel times: the tolerance, floored by the step's noise;
* user-facing latency and throughput of the timed pass, and the per-step CPU overhead
  (`latency_compare`), as in a same-version comparison: it is the same workload.

Not compared across versions: per-kernel times and launch counts, and the profile's total kernel
time (the step times hold it). The kernel-set diff (kernels only one side ran, launches per step
of each class) is reported as "what changed between A and B" (`comparison.VersionChange`), and
in `new_kernels` / `missing_kernels`; it fails the verdict only with `drift_fails`
(--vllm-cross-version-drift=fail).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from .comparator import IncomparableSummariesError, Tolerances, launches_per_step, validate_step_kinds
from .comparison import ClassChange, Comparison, KernelDrift, StepTimeChange, VersionChange
from .latency_compare import compare_latency, compare_step_overhead
from .metric_judge import MetricJudge
from .repeats import RepeatSpread, kernel_us_per_step
from .summary import STEP_KINDS, ProfileSummary, StepKind

if TYPE_CHECKING:
    from .latency import TimedPassResult


def class_metric(kernel_class: str, kind: str) -> str:
    """Metric name of a kernel class's time per step of `kind` (a `Finding.metric`)."""
    return f"class[{kernel_class}].{kind}.us_per_step"


def _by_class(
    summary: ProfileSummary, kind: StepKind
) -> tuple[dict[str, float], dict[str, float], dict[str, set[str]]]:
    """(class -> µs per step, class -> launches per step, class -> short names) in steps of `kind`."""
    classes = {k.name: k.kernel_class for k in summary.kernels}
    short = {k.name: k.short_name or k.name for k in summary.kernels}
    us: dict[str, float] = defaultdict(float)
    launches: dict[str, float] = defaultdict(float)
    names: dict[str, set[str]] = defaultdict(set)
    for name, value in kernel_us_per_step(summary, kind).items():
        us[classes.get(name, "other")] += value
        names[classes.get(name, "other")].add(short.get(name, name))
    for name, value in launches_per_step(summary, kind).items():
        launches[classes.get(name, "other")] += value
    return dict(us), dict(launches), dict(names)


def _class_spread(summary: ProfileSummary, spread: RepeatSpread | None, kind: StepKind, kernel_class: str) -> float:
    """Time-weighted mean of the class members' repeat spreads (0 without a spread)."""
    if spread is None:
        return 0.0
    per_kernel = spread.kernel_us_per_step.get(kind, {})
    weighted = total = 0.0
    for k in summary.kernels:
        if k.kernel_class != kernel_class or kind not in k.per_step_kind:
            continue
        weighted += k.per_step_kind[kind].total_us * per_kernel.get(k.name, 0.0)
        total += k.per_step_kind[kind].total_us
    return weighted / total if total > 0 else 0.0


class _CrossVersionComparer(MetricJudge):
    def __init__(
        self,
        baseline: ProfileSummary,
        candidate: ProfileSummary,
        tol: Tolerances,
        baseline_spread: RepeatSpread | None,
        candidate_spread: RepeatSpread | None,
        step_kinds: tuple[str, ...] | None,
        from_version: str,
        to_version: str,
        drift_fails: bool,
        baseline_timed: TimedPassResult | None = None,
        candidate_timed: TimedPassResult | None = None,
    ) -> None:
        super().__init__(
            baseline, candidate, tol, baseline_spread, candidate_spread, step_kinds, baseline_timed, candidate_timed
        )
        self.change = VersionChange(from_version=from_version, to_version=to_version, drift_fails=drift_fails)

    def run(self) -> Comparison:
        b, c = self.b, self.c
        self._check_comparable()
        if self.step_kinds is None:
            self.count("token_steps", "token steps (engine steps)", b.token_steps, c.token_steps)
        layers_match = b.layer_count == c.layer_count
        self.count("layer_count", "decoder layers per step", b.layer_count, c.layer_count)
        kinds = [
            k
            for k in STEP_KINDS
            if (k in b.step_kinds or k in c.step_kinds) and (self.step_kinds is None or k in self.step_kinds)
        ]
        step_times: list[StepTimeChange] = []
        for kind in kinds:
            bn = b.step_kinds[kind].count if kind in b.step_kinds else 0
            cn = c.step_kinds[kind].count if kind in c.step_kinds else 0
            self.count(f"step.{kind}.count", f"number of {kind} steps", bn, cn)
            if kind not in b.step_kinds or kind not in c.step_kinds:
                continue
            step_time, judged, noise = self.judge_step_time(kind)
            step_times.append(step_time)
            self._classes(kind, step_time.baseline_us, noise, judged)
            if judged:
                self.judge_layer_times(kind, layers_match)

        new_kernels, missing_kernels = self.drift()
        self._report_drift(new_kernels, missing_kernels)
        self.change.new_kernels = [d.short_name for d in new_kernels]
        self.change.missing_kernels = [d.short_name for d in missing_kernels]
        self.notes.append(
            f"{self.change.label}: kernels matched by class and step kind, layers by index; "
            "per-kernel names and launch counts are not compared across versions"
        )
        self.note_without_samples()
        # The same workload on either version: its latency and per-step CPU overhead face the same gate.
        compare_step_overhead(self, kinds)
        compare_latency(self, self.b_timed, self.c_timed)
        return self.finish(new_kernels, missing_kernels, step_times, cross_version=self.change)

    def _check_comparable(self) -> None:
        if self.b.timing_domain != self.c.timing_domain:
            raise IncomparableSummariesError(
                f"cannot compare a {self.b.timing_domain}-timed baseline (vLLM {self.change.from_version}) with a "
                f"{self.c.timing_domain}-timed run (vLLM {self.change.to_version}): GPU kernel time and CPU op time "
                "measure different things; record the baseline on the same kind of device"
            )

    def _classes(self, kind: StepKind, step_us: float, step_noise: float, judged: bool) -> None:
        """Each kernel class's µs per step of `kind`: always reported (`VersionChange.classes`),
        judged when the step kind's times are and both sides run the class."""
        b_us, b_launch, b_names = _by_class(self.b, kind)
        c_us, c_launch, c_names = _by_class(self.c, kind)
        for cls in sorted(set(b_us) | set(c_us)):
            base, cand = b_us.get(cls, 0.0), c_us.get(cls, 0.0)
            self.change.classes.append(
                ClassChange(
                    step_kind=kind,
                    kernel_class=cls,
                    baseline_us=base,
                    candidate_us=cand,
                    baseline_launches=b_launch.get(cls, 0.0),
                    candidate_launches=c_launch.get(cls, 0.0),
                    added=sorted(c_names.get(cls, set()) - b_names.get(cls, set())),
                    removed=sorted(b_names.get(cls, set()) - c_names.get(cls, set())),
                )
            )
            if judged and cls in b_us and cls in c_us:  # a class only one side runs is kernel-set change: reported
                spread = max(
                    _class_spread(self.b, self.b_spread, kind, cls), _class_spread(self.c, self.c_spread, kind, cls)
                )
                self.time(
                    class_metric(cls, kind),
                    f"{cls} kernels in {kind} steps",
                    base,
                    cand,
                    self.tol.abs_floor_us,
                    spread,
                    unit="µs/step",
                    step_us=step_us,
                    step_noise=step_noise,
                )

    def _report_drift(self, new: list[KernelDrift], missing: list[KernelDrift]) -> None:
        if not self.change.drift_fails:
            for d in new + missing:
                d.fails = False  # reported in "what changed between A and B", never failing
            return
        for d in new + missing:
            if not d.fails:
                continue
            only_in = self.change.to_version if d in new else self.change.from_version
            self.add_drift_regression(
                d,
                new=d in new,
                allowed=f"new/missing kernels below {100 * self.tol.drift_share:.1f}% of step time "
                "(--vllm-cross-version-drift=fail)",
                where=(
                    f"in vLLM {only_in} only: {d.us_per_step:.1f} µs per {d.step_kind} step, "
                    f"{100 * d.share_of_step:.1f}% of the step"
                ),
            )


def compare_across_versions(
    baseline: ProfileSummary,
    candidate: ProfileSummary,
    from_version: str,
    to_version: str,
    tol: Tolerances | None = None,
    baseline_spread: RepeatSpread | None = None,
    candidate_spread: RepeatSpread | None = None,
    step_kinds: tuple[str, ...] | list[str] | None = None,
    drift_fails: bool = False,
    baseline_timed: TimedPassResult | None = None,
    candidate_timed: TimedPassResult | None = None,
) -> Comparison:
    """Compare a run on vLLM `to_version` with a baseline of vLLM `from_version` (see the module doc).

    `baseline_timed` / `candidate_timed`: the timed passes (TTFT, TPOT, ITL, e2e, throughput);
    compared when both exist, else a note says latency was not compared.

    The result's `cross_version` holds "what changed between A and B"; `explain()` says
    "cross-version: vLLM A -> B".
    """
    kinds = validate_step_kinds(step_kinds)
    return _CrossVersionComparer(
        baseline,
        candidate,
        tol or Tolerances(),
        baseline_spread,
        candidate_spread,
        kinds,
        from_version,
        to_version,
        drift_fails,
        baseline_timed,
        candidate_timed,
    ).run()
