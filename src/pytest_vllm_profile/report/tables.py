"""The numbers every report shows, shaped once from a `RunResults` (HTML and Markdown share them).

A `TestView` is one test's results with the numbers the renderers show beside it;
rows (`StepTimeRow`, `KernelRow`) are plain data the renderers only format.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..codec import ModelDecodeError, from_builtins
from ..comparison import Comparison, StepTimeChange
from ..errors import VllmProfileError
from ..results import RESULTS_SCHEMA_VERSION, RunResults, TestResult
from ..schema_v1 import upgrade_results
from ..summary import STEP_KINDS, ProfileSummary, StepKind


class ReportInputError(VllmProfileError):
    """A results or history file cannot be read into a report."""


# How each verdict reads and which colour class it gets (HTML) — one place for both renderers.
VERDICT_LABELS: dict[str, str] = {
    "pass": "PASS",
    "fail": "FAIL",
    "updated": "BASELINE UPDATED",
    "no-baseline": "NO BASELINE",
    "error": "ERROR",
    "skipped": "SKIPPED",
}


@dataclass
class StepTimeRow:
    kind: str
    steps: int
    baseline_us: float | None
    current_us: float | None

    @property
    def delta_pct(self) -> float | None:
        if self.baseline_us in (None, 0.0) or self.current_us is None:
            return None
        return 100.0 * (self.current_us - self.baseline_us) / self.baseline_us


@dataclass
class KernelRow:
    """One kernel's cost per step of one step kind, baseline vs current."""

    name: str
    short_name: str
    kernel_class: str
    step_kind: str
    launches_per_step: float | None  # current (baseline when the kernel is missing now)
    baseline_us: float | None
    current_us: float | None

    @property
    def delta_pct(self) -> float | None:
        if not self.baseline_us or self.current_us is None:
            return None
        return 100.0 * (self.current_us - self.baseline_us) / self.baseline_us


@dataclass
class RequestStats:
    count: int
    median_latency_s: float | None
    max_latency_s: float | None
    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass
class TestView:
    test: TestResult
    verdict: str  # a key of VERDICT_LABELS
    current: ProfileSummary | None
    baseline: ProfileSummary | None
    comparison: Comparison | None  # None when the test was not compared (no baseline, error, update)
    step_times: list[StepTimeRow] = field(default_factory=list)

    @property
    def nodeid(self) -> str:
        return self.test.nodeid

    @property
    def clock(self) -> str:
        s = self.current or self.baseline
        return "CPU" if s is not None and s.timing_domain == "cpu" else "GPU"

    def metric_state(self, metric: str) -> str:
        """ "worse" / "better" when the comparison counted `metric` as a regression / improvement."""
        if self.comparison is None:
            return ""
        if any(f.metric == metric for f in self.comparison.regressions):
            return "worse"
        if any(f.metric == metric for f in self.comparison.improvements):
            return "better"
        return ""

    def step_time(self, kind: str) -> StepTimeRow | None:
        return next((r for r in self.step_times if r.kind == kind), None)


def load_results(path: str | Path) -> RunResults:
    """Read a results file written by the plugin; every failure names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ReportInputError(f"{path}: results file not found (the plugin writes it with --vllm-results PATH)")
    try:
        data = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportInputError(f"{path}: not a readable JSON results file: {exc}") from None
    if isinstance(data, dict) and "entries" in data and "test" in data and "tests" not in data:
        raise ReportInputError(
            f"{path}: that is a baseline file (of test {data.get('test')!r}); report takes a results file, "
            "the one `pytest --vllm-profile` writes (.vllm-profile/results.json, or --vllm-results PATH); "
            "to compare a baseline with a profile use `vllm-profile compare BASELINE CANDIDATE`"
        )
    if not isinstance(data, dict) or not isinstance(data.get("tests", []), list):
        raise ReportInputError(f"{path}: not a vllm-profile results file (expected an object with a 'tests' list)")
    version = data.get("schema_version")
    if isinstance(version, int) and version > RESULTS_SCHEMA_VERSION:
        raise ReportInputError(
            f"{path}: results schema_version {version} is newer than this "
            f"pytest-vllm-profile understands ({RESULTS_SCHEMA_VERSION}); upgrade it"
        )
    data = upgrade_results(data)  # a 0.1.0 file (schema_version 1) in the current layout
    try:
        return from_builtins(data, RunResults, str(path))
    except ModelDecodeError as exc:
        # Name the test whose entry is wrong, not only its index.
        for test in data.get("tests", []):
            nodeid = test.get("nodeid", "?") if isinstance(test, dict) else "?"
            try:
                from_builtins(test, TestResult)
            except ModelDecodeError as test_exc:
                raise ReportInputError(
                    f"{path}: test {nodeid}: {test_exc}; the results file does not match the RunResults layout"
                ) from None
        raise ReportInputError(f"{exc}; the results file does not match the RunResults layout") from None


def summary_of(test: TestResult) -> ProfileSummary | None:
    """The test's current profile summary (None when it has none)."""
    return test.summary


def verdict_of(test: TestResult) -> str:
    """The key of VERDICT_LABELS a test is shown with."""
    if test.outcome in ("error", "skipped") and test.verdict in (None, ""):
        return test.outcome
    if test.verdict in VERDICT_LABELS:
        return str(test.verdict)
    return "fail" if test.outcome == "failed" else ("pass" if test.outcome == "passed" else "error")


def view_of(test: TestResult) -> TestView:
    current, baseline, comparison = test.summary, test.baseline_summary, test.comparison
    return TestView(
        test=test,
        verdict=verdict_of(test),
        current=current,
        baseline=baseline,
        comparison=comparison,
        step_times=step_time_rows(current, baseline, comparison.step_times if comparison else None),
    )


def views_of(results: RunResults) -> list[TestView]:
    return [view_of(t) for t in results.tests]


def median_step_us(summary: ProfileSummary | None, kind: StepKind) -> float | None:
    if summary is None:
        return None
    stats = summary.step_kinds.get(kind)
    if stats is not None and stats.count:
        return stats.median_op_time_us
    times = [s.op_time_us for s in summary.steps_of(kind)]
    return statistics.median(times) if times else None


def step_time_rows(
    current: ProfileSummary | None, baseline: ProfileSummary | None, changes: list[StepTimeChange] | None = None
) -> list[StepTimeRow]:
    """Median step time per step kind; the comparison's numbers win where it has them."""
    by_kind = {c.kind: c for c in changes or []}
    rows = []
    for kind in STEP_KINDS:
        cur, base = median_step_us(current, kind), median_step_us(baseline, kind)
        if kind in by_kind:
            base, cur = by_kind[kind].baseline_us, by_kind[kind].candidate_us
        if cur is None and base is None:
            continue
        s = current if cur is not None else baseline
        steps = len(s.steps_of(kind)) if s is not None else 0
        rows.append(StepTimeRow(kind, steps, base, cur))
    return rows


def main_step_kind(*summaries: ProfileSummary | None) -> StepKind | None:
    """The step kind a report leads with: decode (the token peaks) when there is any."""
    lead_order: tuple[StepKind, ...] = ("decode", "mixed", "prefill")
    for kind in lead_order:
        if any(s is not None and s.step_kinds.get(kind) and s.step_kinds[kind].count for s in summaries):
            return kind
    return None


def _per_step(summary: ProfileSummary | None, kind: StepKind) -> dict[str, tuple[float, float]]:
    """Kernel name -> (µs per step, launches per step) over the steps of `kind`."""
    if summary is None:
        return {}
    stats = summary.step_kinds.get(kind)
    if stats is None or not stats.count:
        return {}
    out = {}
    for k in summary.kernels:
        ks = k.per_step_kind.get(kind)
        if ks is not None:
            launches = stats.kernels_per_step.get(k.name, ks.count / stats.count)
            out[k.name] = (ks.total_us / stats.count, launches)
    return out


def kernel_rows(
    current: ProfileSummary | None, baseline: ProfileSummary | None, kind: StepKind, top: int = 15
) -> list[KernelRow]:
    """The `top` kernels of `kind` steps by current time per step (baseline time for missing ones)."""
    cur, base = _per_step(current, kind), _per_step(baseline, kind)
    info = {}
    for s in (baseline, current):
        for k in s.kernels if s is not None else []:
            info[k.name] = (k.short_name or k.name, k.kernel_class)
    rows = []
    for name in set(cur) | set(base):
        short, klass = info.get(name, (name, "other"))
        launches = cur[name][1] if name in cur else base[name][1]
        rows.append(
            KernelRow(
                name,
                short,
                klass,
                kind,
                launches,
                base[name][0] if name in base else None,
                cur[name][0] if name in cur else None,
            )
        )
    rows.sort(key=lambda r: r.current_us if r.current_us is not None else r.baseline_us or 0.0, reverse=True)
    return rows[:top]


def request_stats(test: TestResult) -> RequestStats | None:
    if not test.requests:
        return None
    lat = [r.latency_s for r in test.requests]

    def total(attr: str) -> int | None:
        vals = [getattr(r, attr) for r in test.requests]
        return None if any(v is None for v in vals) else sum(vals)

    return RequestStats(len(lat), statistics.median(lat), max(lat), total("prompt_tokens"), total("completion_tokens"))


def fmt_us(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1000:.2f} ms" if value >= 10_000 else f"{value:.1f} µs"


def fmt_pct(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}%"
