"""Comparing a run on vLLM B with a baseline recorded on vLLM A (issue 13 item 3).

A new vLLM version renames, fuses and splits kernels (a new cuBLAS/nvjet tile, a fused
add+norm): per-kernel names and launch counts are not comparable across versions, the work
per step is. So kernels are matched by class and place: the time of each kernel class
(`analysis.kernels.KERNEL_CLASSES`: gemm, attention, norm, ...) per step kind, and each
decoder layer's time by index per step kind. The gate is on

* counts, exact: token steps (unless `step_kinds`), steps per kind, decoder layers per step —
  the same workload runs the same steps on any version;
* times, with the same rule as a same-version comparison (`_Comparer.time`): each step kind's
  median step time, each layer's time, each kernel class's µs per step;
* latency: the timed pass's metrics go through the same methods as in a same-version
  comparison (see `_CrossVersionComparer.run`).

The kernel-set diff (kernels only one side ran, launches per step of each class) is reported as
"what changed between A and B" (`comparison.VersionChange`), and in `new_kernels` /
`missing_kernels`; it fails the verdict only with `drift_fails` (--vllm-cross-version-drift=fail).
"""

from __future__ import annotations

from collections import defaultdict

from .comparator import IncomparableSummariesError, Tolerances, _Comparer, launches_per_step, validate_step_kinds
from .comparison import (
    ClassChange,
    Comparison,
    Finding,
    KernelDrift,
    StepTimeChange,
    VersionChange,
    step_metric,
)
from .repeats import RepeatSpread, kernel_us_per_step
from .summary import STEP_KINDS, ProfileSummary, StepKind


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


class _CrossVersionComparer(_Comparer):
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
    ) -> None:
        super().__init__(baseline, candidate, tol, baseline_spread, candidate_spread, step_kinds)
        self.b_spread, self.c_spread = baseline_spread, candidate_spread
        self.change = VersionChange(from_version=from_version, to_version=to_version, drift_fails=drift_fails)

    def run(self) -> Comparison:
        b, c, tol = self.b, self.c, self.tol
        self._check_comparable()
        clock = "CPU" if b.timing_domain == "cpu" else "GPU"
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
            bs, cs = b.step_kinds[kind], c.step_kinds[kind]
            base_us, cand_us = bs.median_op_time_us, cs.median_op_time_us
            step_times.append(
                StepTimeChange(kind, base_us, cand_us, 100 * (cand_us - base_us) / base_us if base_us else 0.0)
            )
            self.time(
                step_metric(kind),
                f"{kind} step {clock} time",
                base_us,
                cand_us,
                tol.step_abs_floor_us,
                self._spread(lambda s, k=kind: s.step_op_time_us[k]),
            )
            self._classes(kind, base_us)
            if layers_match and len(bs.median_layer_time_us) == len(cs.median_layer_time_us):
                for j, (bl, cl) in enumerate(zip(bs.median_layer_time_us, cs.median_layer_time_us, strict=True)):
                    self.time(
                        f"layer[{j}].{kind}.time_us",
                        f"layer {j} in {kind} steps",
                        bl,
                        cl,
                        tol.abs_floor_us,
                        self._spread(lambda s, k=kind, i=j: s.layer_time_us[k][i]),
                        step_us=base_us,
                    )
        # Latency (issue 12's timed pass): its comparison methods on _Comparer are called here,
        # as in the same-version comparison; it is the same workload, so the same gate applies.

        new_kernels, missing_kernels = self._drift()
        self._report_drift(new_kernels, missing_kernels)
        self.change.new_kernels = [d.short_name for d in new_kernels]
        self.change.missing_kernels = [d.short_name for d in missing_kernels]
        self.notes.append(
            f"{self.change.label}: kernels matched by class and step kind, layers by index; "
            "per-kernel names and launch counts are not compared across versions"
        )
        return self._finish(new_kernels, missing_kernels, step_times, cross_version=self.change)

    def _check_comparable(self) -> None:
        if self.b.timing_domain != self.c.timing_domain:
            raise IncomparableSummariesError(
                f"cannot compare a {self.b.timing_domain}-timed baseline (vLLM {self.change.from_version}) with a "
                f"{self.c.timing_domain}-timed run (vLLM {self.change.to_version}): GPU kernel time and CPU op time "
                "measure different things; record the baseline on the same kind of device"
            )

    def _classes(self, kind: StepKind, step_us: float) -> None:
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
            if cls in b_us and cls in c_us:  # a class only one side runs is kernel-set change: reported
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
                )

    def _report_drift(self, new: list[KernelDrift], missing: list[KernelDrift]) -> None:
        if not self.change.drift_fails:
            for d in new + missing:
                d.fails = False  # reported in "what changed between A and B", never failing
            return
        for d in new + missing:
            if not d.fails:
                continue
            what = "new" if d in new else "missing"
            only_in = self.change.to_version if what == "new" else self.change.from_version
            self.regressions.append(
                Finding(
                    metric=f"kernel[{d.short_name}].{what}",
                    kind="drift",
                    baseline=None if what == "new" else d.us_per_step,
                    candidate=d.us_per_step if what == "new" else None,
                    delta=d.us_per_step if what == "new" else -d.us_per_step,
                    delta_pct=None,
                    allowed=f"new/missing kernels below {100 * self.tol.drift_share:.1f}% of step time "
                    "(--vllm-cross-version-drift=fail)",
                    contribution_us=d.us_per_step,
                    message=(
                        f"{what} kernel {d.short_name} ({d.kernel_class}) in vLLM {only_in} only: "
                        f"{d.us_per_step:.1f} µs per {d.step_kind} step, {100 * d.share_of_step:.1f}% of the step"
                    ),
                )
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
) -> Comparison:
    """Compare a run on vLLM `to_version` with a baseline of vLLM `from_version` (see the module doc).

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
    ).run()
