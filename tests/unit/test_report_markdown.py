"""The GitHub job summary (Markdown), from real summaries and real comparisons."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_vllm_profile.report import maybe_write_github_summary, render_job_summary, write_job_summary
from pytest_vllm_profile.report.markdown import md_escape
from support.report_inputs import DRIFT_ID, ERROR_ID, FAIL_ID, PASS_ID, dropped_kernel, real_results, real_summaries


@pytest.fixture(scope="module")
def summary() -> str:
    return render_job_summary(real_results())


def _table_rows(text: str) -> list[list[str]]:
    """Cells of the verdict table (split on unescaped pipes)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and "---" not in line:
            cells = [c.strip() for c in line.replace("\\|", "\x00").strip("|").split("|")]
            rows.append([c.replace("\x00", "|") for c in cells])
    return rows


def test_verdict_table_has_one_row_per_test_with_step_deltas(summary: str) -> None:
    rows = _table_rows(summary.split("\n### ")[0])
    assert rows[0] == ["test", "verdict", "prefill step (Δ)", "decode step (Δ)"]
    by_test = {r[0]: r for r in rows[1:]}
    # Escaped names keep the table intact: 4 columns each, `|` and `<>` inside the name survive.
    assert all(len(r) == 4 for r in rows)
    fail_row = by_test[FAIL_ID.replace("<", "&lt;").replace(">", "&gt;")]
    assert "FAIL" in fail_row[1]
    base, cur = real_summaries()
    b, c = base.step_kinds["decode"].median_op_time_us, cur.step_kinds["decode"].median_op_time_us
    assert f"{c:.1f} µs ({100 * (c - b) / b:+.1f}%)" == fail_row[3]
    assert "PASS" in by_test[PASS_ID][1]
    assert "ERROR" in by_test[ERROR_ID][1] and by_test[ERROR_ID][3] == "–"
    assert summary.startswith("## ❌ vLLM profile: 5 test(s), 3 failed")


def test_failing_tests_list_top_offenders_and_drift(summary: str) -> None:
    sections = {s.split("\n", 1)[0]: s for s in summary.split("\n### ")[1:]}
    fail = next(v for k, v in sections.items() if "tight" in k)
    offenders = [line for line in fail.splitlines() if line.startswith("1. ")]
    assert len(offenders) == 5  # the top 5 of many real-noise regressions
    assert "more regressions" in fail
    drift = next(v for k, v in sections.items() if "simulated_missing_kernel" in k)
    assert f"| missing | {md_escape(dropped_kernel())} |" in drift
    assert not any("default" in k for k in sections)  # a clean pass gets no section
    assert "vllm serve exited with code 1" in next(v for k, v in sections.items() if "server_failed" in k)
    assert DRIFT_ID.split("::")[1] in summary


def test_md_escape_neutralises_markup_and_table_pipes() -> None:
    assert md_escape("a<b>|c&`d`") == "a&lt;b&gt;\\|c&amp;&#96;d&#96;"


def test_github_summary_is_appended_only_when_the_variable_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = real_results()
    results.tests = results.tests[:2]
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert maybe_write_github_summary(results) is None
    target = tmp_path / "step_summary.md"
    target.write_text("earlier step's summary\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    assert maybe_write_github_summary(results) == target
    text = target.read_text()
    assert text.startswith("earlier step's summary\n## ❌ vLLM profile: 2 test(s), 1 failed")
    write_job_summary(results, tmp_path / "fresh.md")
    assert (tmp_path / "fresh.md").read_text() == render_job_summary(results)
