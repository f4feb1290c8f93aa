"""The HTML report: one static `index.html` plus PNG plots in one folder.

No server, no JavaScript: it opens from disk (file://) and survives being uploaded as a CI
artifact. Every name from a trace is HTML-escaped (kernel names carry `<...>` templates).
"""

from __future__ import annotations

import os
import re
from html import escape
from pathlib import Path

from ..comparison import kernel_metric, step_metric
from ..results import RunResults
from ..summary import StepKind
from .configuration import configuration_rows
from .history import history_section
from .latency_tables import fmt_ms, latency_plot, latency_rows, percentile_header, throughput_line
from .plots import layer_bar_chart, step_time_plot
from .tables import (
    VERDICT_LABELS,
    ReportInputError,
    TestView,
    fmt_pct,
    fmt_us,
    kernel_rows,
    main_step_kind,
    request_stats,
    views_of,
)

PERFETTO_URL = "https://ui.perfetto.dev"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 24px;
       color: #1f2328; max-width: 1200px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 18px; margin-top: 36px; border-top: 1px solid #d0d7de; padding-top: 16px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: #57606a; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 12px; color: #fff; font-weight: 600;
           font-size: 13px; }
.v-pass { background: #1a7f37; } .v-fail { background: #cf222e; } .v-updated { background: #0969da; }
.v-no-baseline { background: #6e7781; } .v-error { background: #bc4c00; } .v-skipped { background: #8c959f; }
.worse { color: #cf222e; font-weight: 600; } .better { color: #1a7f37; }
pre.message { background: #fff8f8; border: 1px solid #f5c2c7; padding: 8px; font-size: 12px; white-space: pre-wrap; }
img.plot { max-width: 100%; border: 1px solid #d0d7de; }
.note { color: #57606a; font-size: 12px; }
code { font-size: 12px; }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _slug(text: str, index: int) -> str:
    return f"t{index:02d}-" + re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:60]


def _badge(verdict: str) -> str:
    return f'<span class="verdict v-{_e(verdict)}">{_e(VERDICT_LABELS.get(verdict, verdict.upper()))}</span>'


def _pct_cell(pct: float | None, state: str = "") -> str:
    """A delta cell, red / green only where the comparison itself flagged the metric."""
    cls = f" {state}" if state else ""
    return f'<td class="num{cls}">{_e(fmt_pct(pct))}</td>'


def _img(out_dir: Path, path: Path | None, alt: str) -> str:
    if path is None:
        return f'<p class="note">{_e(alt)}: nothing to plot.</p>'
    return f'<img class="plot" src="{_e(path.relative_to(out_dir).as_posix())}" alt="{_e(alt)}">'


def _trace_href(trace: str, out_dir: Path, base: Path) -> str:
    """A relative link when the trace and the report share a file system root, else file://."""
    p = Path(trace)
    if not p.is_absolute():
        # Relative to the results file's folder, or else to the folder pytest ran in.
        p = next((c for c in (base / p, Path.cwd() / p) if c.exists()), base / p)
    p = p.resolve()
    try:
        return Path(os.path.relpath(p, out_dir.resolve())).as_posix()
    except ValueError:  # different drives (Windows)
        return p.as_uri()


def _step_table(view: TestView) -> str:
    if not view.step_times:
        return '<p class="note">No steps were found.</p>'
    rows = "".join(
        f'<tr><td>{_e(r.kind)}</td><td class="num">{r.steps}</td><td class="num">{_e(fmt_us(r.baseline_us))}</td>'
        f'<td class="num">{_e(fmt_us(r.current_us))}</td>'
        f"{_pct_cell(r.delta_pct, view.metric_state(step_metric(r.kind)))}</tr>"
        for r in view.step_times
    )
    return (
        f'<table class="steps"><tr><th>step kind</th><th>steps</th><th>baseline median</th>'
        f"<th>current median</th><th>Δ</th></tr>{rows}</table>"
    )


def _kernel_table(view: TestView, kind: StepKind) -> str:
    rows = kernel_rows(view.current, view.baseline, kind)
    if not rows:
        return '<p class="note">No kernels in these steps.</p>'
    body = "".join(
        f'<tr><td title="{_e(r.name)}"><code>{_e(r.short_name)}</code></td><td>{_e(r.kernel_class)}</td>'
        f'<td class="num">{"–" if r.launches_per_step is None else f"{r.launches_per_step:g}"}</td>'
        f'<td class="num">{_e(fmt_us(r.baseline_us))}</td><td class="num">{_e(fmt_us(r.current_us))}</td>'
        f"{_pct_cell(r.delta_pct, view.metric_state(kernel_metric(r.short_name, kind)))}</tr>"
        for r in rows
    )
    return (
        f'<table class="kernels"><tr><th>kernel (hover: full name)</th><th>class</th>'
        f"<th>launches / step</th><th>baseline µs / {_e(kind)} step</th>"
        f"<th>current µs / {_e(kind)} step</th><th>Δ</th></tr>{body}</table>"
    )


def _findings(view: TestView) -> str:
    regressions = view.comparison.regressions if view.comparison is not None else []
    if not regressions:
        return ""
    items = "".join(
        f"<li>{_e(f.message or f.metric)}"
        + ("" if "allowed" in f.message else f' <span class="note">(allowed {_e(f.allowed)})</span>')
        + "</li>"
        for f in regressions[:10]
    )
    more = f"<li>… and {len(regressions) - 10} more</li>" if len(regressions) > 10 else ""
    return f'<h3>Regressions, largest first</h3><ol class="regressions">{items}{more}</ol>'


def _drift(view: TestView) -> str:
    new = view.comparison.new_kernels if view.comparison is not None else []
    missing = view.comparison.missing_kernels if view.comparison is not None else []
    if not new and not missing:
        return '<h3>Kernel drift</h3><p class="note">Same kernel set as the baseline.</p>' if view.baseline else ""
    rows = "".join(
        f'<tr><td>{label}</td><td title="{_e(k.name)}"><code>{_e(k.short_name)}</code></td>'
        f"<td>{_e(k.kernel_class)}</td>"
        f'<td>{_e(k.step_kind)}</td><td class="num">{_e(fmt_us(k.us_per_step))}</td>'
        f'<td class="num">{100 * k.share_of_step:.1f}%</td><td>{"fails" if k.fails else "below threshold"}</td></tr>'
        for label, ks in (("new", new), ("missing", missing))
        for k in ks
    )
    return (
        f'<h3>Kernel drift</h3><table class="drift"><tr><th></th><th>kernel</th><th>class</th><th>step kind</th>'
        f"<th>per step</th><th>share of step</th><th>verdict</th></tr>{rows}</table>"
    )


def _requests(view: TestView) -> str:
    stats = request_stats(view.test)
    if stats is None:
        return ""
    rows = "".join(
        f'<tr><td class="num">{i}</td><td class="num">{r.latency_s * 1000:.1f} ms</td>'
        f'<td class="num">{"–" if r.prompt_tokens is None else r.prompt_tokens}</td>'
        f'<td class="num">{"–" if r.completion_tokens is None else r.completion_tokens}</td></tr>'
        for i, r in enumerate(view.test.requests)
    )
    assert stats.median_latency_s is not None
    return (
        f"<h3>Requests</h3><p>{stats.count} request(s), median latency {stats.median_latency_s * 1000:.1f} ms"
        f'</p><table class="requests"><tr><th>#</th><th>latency</th><th>prompt tokens</th>'
        f"<th>completion tokens</th></tr>{rows}</table>"
    )


def _latency(view: TestView, out_dir: Path, slug: str) -> str:
    """The timed pass: TTFT/TPOT/ITL/e2e p50/p90/p99 vs the baseline, and the TPOT distributions."""
    rows = latency_rows(view.test)
    if not rows:
        return ""
    head = percentile_header()
    body = "".join(
        f"<tr><td>{_e(r.label)}</td><td>{_e(fmt_ms(r.candidate))}</td><td>{_e(fmt_ms(r.baseline))}</td>"
        f"{_pct_cell(r.delta_pct(0))}{_pct_cell(r.delta_pct(1))}</tr>"
        for r in rows
    )
    png = latency_plot(view.test, out_dir / f"{slug}-tpot.png")
    return (
        f"<h3>Latency (timed pass, no profiler)</h3><p>{_e(throughput_line(view.test))}</p>"
        f'<table class="latency"><tr><th>metric (ms)</th><th>candidate {head}</th><th>baseline {head}</th>'
        f"<th>Δ p50</th><th>Δ p90</th></tr>{body}</table>" + _img(out_dir, png, "TPOT distribution")
    )


def _traces(view: TestView, out_dir: Path, base: Path) -> str:
    links = []
    for label, paths in (
        ("trace", view.test.trace_paths),
        ("baseline", [view.test.baseline_path] if view.test.baseline_path else []),
    ):
        for t in paths:
            links.append(f'<li>{label}: <a href="{_e(_trace_href(t, out_dir, base))}">{_e(Path(t).name)}</a></li>')
    if not links:
        return ""
    return (
        f'<h3>Traces</h3><ul class="traces">{"".join(links)}</ul>'
        f'<p class="note">Open a trace in Perfetto: go to {PERFETTO_URL}, choose “Open trace file” and pick '
        f"the .pt.trace.json.gz file (it is read in your browser, nothing is uploaded).</p>"
    )


def _cross_version(view: TestView) -> list[str]:
    """The verdict's "cross-version: vLLM A -> B" and "what changed between A and B" (issue 13 item 3)."""
    cross = view.comparison.cross_version if view.comparison is not None else None
    if cross is None:
        return []
    head, *rest = cross.describe()
    items = "".join(f"<li>{_e(line.strip())}</li>" for line in rest)
    return [f'<p class="meta"><b>{_e(cross.label)}</b></p><h3>{_e(head)}</h3><ul>{items}</ul>']


def _configuration(view: TestView) -> str:
    rows = configuration_rows(view.test.configuration)
    if not rows:
        return ""
    body = "".join(f"<tr><th>{_e(label)}</th><td><code>{_e(value)}</code></td></tr>" for label, value in rows)
    return f'<h3>Configuration</h3><table class="configuration">{body}</table>'


def _test_section(view: TestView, index: int, out_dir: Path, base: Path) -> str:
    slug = _slug(view.nodeid, index)
    wl = view.test.workload
    wl_text = ", ".join(f"{k}={wl[k]}" for k in ("model", "max_tokens", "repeats") if wl.get(k) is not None)
    if wl.get("prompts"):
        wl_text += f", {len(wl['prompts'])} prompt(s)"
    kind = main_step_kind(view.current, view.baseline)
    parts = [
        f'<section class="test" id="{_e(slug)}"><h2>{_badge(view.verdict)} {_e(view.nodeid)}</h2>',
        f'<p class="meta">{_e(wl_text)}'
        + (f" · {view.test.duration_s:.1f} s" if view.test.duration_s else "")
        + "</p>",
    ]
    parts.extend(_cross_version(view))
    if view.test.message:
        parts.append(f'<pre class="message">{_e(view.test.message)}</pre>')
    if view.current is None and view.baseline is None:
        parts.append('<p class="note">No profile was analysed for this test.</p>')
    else:
        parts.append("<h3>Median step time</h3>" + _step_table(view))
        parts.append(_findings(view))
        step_png = step_time_plot(
            view.current, view.baseline, out_dir / f"{slug}-steps.png", title=f"{view.clock} time per step"
        )
        parts.append("<h3>Step time, step by step</h3>" + _img(out_dir, step_png, "step time per step"))
        if kind is not None:
            layer_png = layer_bar_chart(view.current, view.baseline, kind, out_dir / f"{slug}-layers.png")
            parts.append(
                f"<h3>Per-layer time ({_e(kind)} steps)</h3>"
                + _img(out_dir, layer_png, "per-layer time (no layers were found)")
            )
            parts.append(f"<h3>Top kernels ({_e(kind)} steps)</h3>" + _kernel_table(view, kind))
        parts.append(_drift(view))
    notes = view.comparison.notes if view.comparison is not None else []
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    parts.append(_latency(view, out_dir, slug))
    parts.append(_requests(view))
    parts.append(_configuration(view))
    parts.append(_traces(view, out_dir, base))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def render_html(
    results: RunResults, out_dir: Path, history: str | Path | None = None, trace_base: Path | None = None
) -> str:
    """The report page; plots are written into `out_dir` as a side effect."""
    views = views_of(results)
    base = trace_base or Path.cwd()
    counts: dict[str, int] = {}
    for v in views:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    overview = "".join(
        f'<tr><td><a href="#{_e(_slug(v.nodeid, i))}">{_e(v.nodeid)}</a></td><td>{_badge(v.verdict)}'
        + (
            f' <span class="note">{_e(v.comparison.cross_version.label)}</span>'
            if v.comparison and v.comparison.cross_version
            else ""
        )
        + "</td>"
        + "".join(
            f'<td class="num">{_e(fmt_us(r.current_us))}</td>{_pct_cell(r.delta_pct, v.metric_state(step_metric(k)))}'
            if (r := v.step_time(k))
            else "<td>–</td><td>–</td>"
            for k in ("prefill", "decode")
        )
        + "</tr>"
        for i, v in enumerate(views)
    )
    meta = " · ".join(
        f"{label} {_e(value)}"
        for label, value in (
            ("run", results.created),
            ("commit", results.commit),
            ("GPU", results.gpu),
            ("vLLM", results.vllm_version),
            ("launcher", results.launcher),
            ("profiler", results.profiler),
        )
        if value
    )
    summary_line = ", ".join(f"{n} {VERDICT_LABELS.get(k, k).lower()}" for k, n in sorted(counts.items()))
    trend = history_section(results, out_dir, history) if history is not None else ""
    sections = "\n".join(_test_section(v, i, out_dir, base) for i, v in enumerate(views))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>vLLM profile report</title>
<style>{CSS}</style></head>
<body>
<h1>vLLM profile report</h1>
<p class="meta">{meta}</p>
<p>{len(views)} test(s): {_e(summary_line or "none")}</p>
<table class="overview"><tr><th>test</th><th>verdict</th><th>prefill step</th><th>Δ</th>
<th>decode step</th><th>Δ</th></tr>{overview}</table>
{trend}
{sections}
</body></html>
"""


def write_html_report(
    results: RunResults, out_dir: Path, history: str | Path | None = None, trace_base: Path | None = None
) -> Path:
    """Write `index.html` and its PNG plots into `out_dir`; returns the path of index.html.

    `history`: a history database (SQLite file or postgresql:// URL, see history/) whose series of
    this run's tests are plotted with their change points.
    `trace_base`: folder that relative trace paths in `results` are relative to (default: cwd).
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportInputError(f"{out_dir}: cannot create the report folder: {exc}") from None
    page = render_html(results, out_dir, history, trace_base)
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
