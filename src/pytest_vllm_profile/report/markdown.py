"""The GitHub job summary: a Markdown digest of a run (verdicts, step-time deltas, offenders, drift).

GitHub renders job summaries as GitHub-flavoured Markdown with inline HTML allowed, so names
from traces are escaped for both (`<`, `>`, `&`, and `|` which would split a table cell).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..results import RunResults
from .latency_tables import fmt_ms, latency_rows, percentile_header, throughput_line
from .tables import VERDICT_LABELS, ReportInputError, TestView, fmt_pct, fmt_us, views_of

VERDICT_ICONS = {"pass": "✅", "fail": "❌", "updated": "🔄", "no-baseline": "⚪", "error": "⚠️", "skipped": "⏭️"}


def md_escape(text: object) -> str:
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace("|", "\\|").replace("`", "&#96;").replace("\n", " ")


def _verdict(v: str) -> str:
    return f"{VERDICT_ICONS.get(v, '')} {VERDICT_LABELS.get(v, v)}".strip()


def _step_cell(view: TestView, kind: str) -> str:
    r = view.step_time(kind)
    if r is None:
        return "–"
    if r.delta_pct is None:
        return fmt_us(r.current_us)
    return f"{fmt_us(r.current_us)} ({fmt_pct(r.delta_pct)})"


def _latency_section(views: list[TestView]) -> list[str]:
    """Per test with a timed pass: TTFT/TPOT/ITL/e2e p50/p90/p99 (ms), candidate vs baseline."""
    out: list[str] = []
    for v in views:
        rows = latency_rows(v.test)
        if not rows:
            continue
        head = percentile_header()
        out += [
            "",
            f"**Latency** {md_escape(v.nodeid)} (ms; {md_escape(throughput_line(v.test))})",
            "",
            f"| metric | candidate {head} | baseline {head} | Δ p50 | Δ p90 |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for r in rows:
            out.append(
                f"| {r.label} | {fmt_ms(r.candidate)} | {fmt_ms(r.baseline)} | {fmt_pct(r.delta_pct(0))} "
                f"| {fmt_pct(r.delta_pct(1))} |"
            )
    return out


def render_job_summary(results: RunResults, top: int = 5) -> str:
    views = views_of(results)
    failed = sum(v.verdict in ("fail", "error") for v in views)
    head = "❌" if failed else "✅"
    meta = ", ".join(
        f"{k} `{md_escape(v)}`"
        for k, v in (("commit", (results.commit or "")[:12]), ("GPU", results.gpu), ("vLLM", results.vllm_version))
        if v
    )
    lines = [f"## {head} vLLM profile: {len(views)} test(s), {failed} failed", ""]
    if meta:
        lines += [meta, ""]
    lines += ["| test | verdict | prefill step (Δ) | decode step (Δ) |", "| --- | --- | ---: | ---: |"]
    for v in views:
        xver = v.comparison.cross_version if v.comparison is not None else None
        cross = f" ({md_escape(xver.label)})" if xver is not None else ""
        lines.append(
            f"| {md_escape(v.nodeid)} | {_verdict(v.verdict)}{cross} | {_step_cell(v, 'prefill')} "
            f"| {_step_cell(v, 'decode')} |"
        )
    lines += _latency_section(views)
    for v in views:
        c = v.comparison
        regressions = c.regressions if c is not None else []
        drift = [("new", c.new_kernels), ("missing", c.missing_kernels)] if c is not None else []
        any_drift = any(ks for _, ks in drift)
        if not (regressions or any_drift) and v.verdict not in ("fail", "error"):
            continue
        lines += ["", f"### {_verdict(v.verdict)} {md_escape(v.nodeid)}", ""]
        if c is not None and c.cross_version is not None:  # "what changed between A and B"
            head, *rest = c.cross_version.describe()
            lines += [f"{md_escape(c.cross_version.label)}; {md_escape(head)}", ""]
            lines += [f"- {md_escape(line.strip())}" for line in rest] + [""]
        if regressions:
            lines.append("Top offenders:")
            lines.append("")
            for f in regressions[:top]:
                allowed = "" if "allowed" in f.message else f" (allowed {md_escape(f.allowed)})"
                lines.append(f"1. {md_escape(f.message or f.metric)}{allowed}")
            if len(regressions) > top:
                lines.append(f"\n…and {len(regressions) - top} more regressions.")
            lines.append("")
        if any_drift:
            lines += [
                "| drift | kernel | class | per step | share | fails |",
                "| --- | --- | --- | ---: | ---: | --- |",
            ]
            for label, ks in drift:
                for k in ks:
                    lines.append(
                        f"| {label} | {md_escape(k.short_name)} | {md_escape(k.kernel_class)} "
                        f"| {fmt_us(k.us_per_step)} / {md_escape(k.step_kind)} step "
                        f"| {100 * k.share_of_step:.1f}% | {'yes' if k.fails else 'no'} |"
                    )
            lines.append("")
        if v.test.message and not regressions:
            lines += ["```", v.test.message.replace("```", "'''")[:2000], "```"]
    return "\n".join(lines).rstrip() + "\n"


def write_job_summary(results: RunResults, path: str | Path, append: bool = False) -> Path:
    """Write (or append) the Markdown job summary of `results` to `path`."""
    path = Path(path)
    text = render_job_summary(results)
    try:
        with open(path, "a" if append else "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot write the job summary: {exc}") from None
    return path


def maybe_write_github_summary(results: RunResults) -> Path | None:
    """Append the job summary to $GITHUB_STEP_SUMMARY when running in GitHub Actions."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    return write_job_summary(results, target, append=True)
