"""The "vllm-profile" section of pytest's terminal summary, rendered from a `RunResults`.

Per test: the verdict, each step kind's time against the baseline, the top offenders of a
regression; then the baseline files that changed. Plain text lines, no pytest imports.
"""

from __future__ import annotations

from ..results import RunResults, TestResult
from ..summary import ProfileSummary
from .latency_tables import fmt_ms, latency_rows, percentile_header, throughput_line
from .tables import VERDICT_LABELS

VERDICT_LABEL = {**VERDICT_LABELS, "updated": "UPDATED"}  # the terminal's column is 11 wide


def _verdict_label(test: TestResult) -> str:
    if test.verdict == "updated" and not test.baseline_changed:
        return "UNCHANGED"
    if test.verdict:
        return VERDICT_LABEL.get(test.verdict, test.verdict.upper())
    return test.outcome.upper()


def _unit(summary: ProfileSummary | None) -> str:
    return "CPU µs" if summary is not None and summary.timing_domain == "cpu" else "µs"


def step_time_lines(test: TestResult) -> list[str]:
    """One line per step kind: candidate time, and the baseline and change when compared."""
    unit = _unit(test.summary)
    compared = {st.kind: st for st in test.comparison.step_times} if test.comparison is not None else {}
    lines = []
    kinds = test.summary.step_kinds if test.summary is not None else {}
    for kind in sorted(set(kinds) | set(compared)):
        st = compared.get(kind)
        if st is not None:
            lines.append(
                f"{kind} step {st.candidate_us:.1f} {unit} vs baseline {st.baseline_us:.1f} ({st.delta_pct:+.2f}%)"
            )
        else:
            stats = kinds[kind]
            lines.append(f"{kind} step {stats.median_op_time_us:.1f} {unit} (x{stats.count})")
    return lines


def offender_lines(test: TestResult) -> list[str]:
    """Every regression, ranked (structural changes first, then largest share of the step-time
    change), then the new / missing kernels that did not fail the verdict."""
    comparison = test.comparison
    if comparison is None:
        return []
    lines = [f.message or f.metric for f in comparison.regressions]
    if comparison.cross_version is not None:  # the kernel-set diff is "what changed", not an offender
        return lines
    failed_drift = {f.metric for f in comparison.regressions if f.kind == "drift"}
    for drift in comparison.new_kernels:
        if f"kernel[{drift.short_name}].new" in failed_drift:
            continue
        lines.append(f"new kernel {drift.short_name} ({drift.us_per_step:.1f} µs/{drift.step_kind} step)")
    for drift in comparison.missing_kernels:
        if f"kernel[{drift.short_name}].missing" in failed_drift:
            continue
        lines.append(f"missing kernel {drift.short_name} (was {drift.us_per_step:.1f} µs/{drift.step_kind} step)")
    return lines


def latency_lines(test: TestResult) -> list[str]:
    """Short: one line per latency metric (ms, p50/p90/p99) and the throughput, baseline alongside."""
    rows = latency_rows(test)
    if not rows:
        return []
    lines = [
        f"latency ms {percentile_header()}: "
        + "; ".join(
            f"{r.label} {fmt_ms(r.candidate)}" + (f" (base {fmt_ms(r.baseline)})" if r.baseline else "") for r in rows
        )
    ]
    lines.append(throughput_line(test))
    return lines


def render_terminal_summary(results: RunResults) -> list[str]:
    lines: list[str] = []
    counts: dict[str, int] = {}
    for test in results.tests:
        label = _verdict_label(test)
        counts[label] = counts.get(label, 0) + 1
        head = f"{label:<11} {test.nodeid}"
        if test.summary is not None:
            head += f"  [{test.summary.token_steps} steps x {test.summary.layer_count} layers]"
        lines.append(head)
        if test.outcome == "skipped":
            continue
        if test.server_boot_s is not None:
            lines.append(f"    server booted in {test.server_boot_s:.1f} s (start to healthy)")
        cross = test.comparison.cross_version if test.comparison is not None else None
        if cross is not None:
            lines.append(f"    {cross.label}")
        lines.extend(f"    {line}" for line in step_time_lines(test))
        if cross is not None:
            lines.extend(f"    {line}" for line in cross.describe(limit=6))
        lines.extend(f"    {line}" for line in latency_lines(test))
        offenders = offender_lines(test)
        if offenders:
            lines.append("    top offenders:")
            lines.extend(f"      {i}. {text}" for i, text in enumerate(offenders, start=1))
        if test.verdict in ("no-baseline",) or (test.outcome in ("failed", "error") and not offenders):
            first = (test.message or "").strip().splitlines()
            if first:
                lines.append(f"    {first[0][:200]}")
    changed = [t for t in results.tests if t.baseline_changed and t.baseline_path]
    if changed:
        lines.append(f"baseline files updated ({len(changed)}):")
        lines.extend(f"    {t.baseline_path}  ({t.nodeid})" for t in changed)
    elif any(t.verdict == "updated" for t in results.tests):
        lines.append("baseline files updated: none (profiles identical to the stored baselines)")
    where = []
    if results.gpu:
        where.append(f"GPU {results.gpu}")
    if results.vllm_version:
        where.append(f"vLLM {results.vllm_version}")
    tally = ", ".join(f"{n} {label.lower()}" for label, n in sorted(counts.items()))
    lines.append(f"{len(results.tests)} vLLM workload test(s): {tally}" + (f" ({', '.join(where)})" if where else ""))
    return lines
