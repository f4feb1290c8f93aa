"""The run history (JSON Lines) and its trend plot, from real summaries."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from report_inputs import ERROR_ID, FAIL_ID, PASS_ID, real_results, real_summaries

from pytest_vllm_profile.report import HistoryWarning, ReportInputError, append_run, load, write_html_report
from pytest_vllm_profile.report.history import trend_series, with_current_run


def _run(day: int, commit: str):  # noqa: ANN202 - RunResults
    r = real_results()
    r.tests = [r.tests[0], r.tests[1], r.tests[4]]  # fail, pass, error
    r.created = f"2026-01-{day:02d}T03:17:00Z"
    r.commit = commit
    return r


def test_append_and_load_keep_per_test_medians_and_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "history.jsonl"
    append_run(path, _run(1, "aaaa111"))
    append_run(path, _run(2, "bbbb222"))
    assert len(path.read_text().splitlines()) == 2
    entries = load(path)
    assert [e.commit for e in entries] == ["aaaa111", "bbbb222"]
    _, cur = real_summaries()
    t = entries[0].tests[FAIL_ID]
    assert t.verdict == "fail"
    assert t.median_step_us["decode"] == pytest.approx(cur.step_kinds["decode"].median_gpu_time_us)
    assert t.median_step_us["prefill"] == pytest.approx(cur.step_kinds["prefill"].median_gpu_time_us)
    assert entries[0].tests[PASS_ID].verdict == "pass"
    assert entries[0].tests[ERROR_ID].median_step_us == {} and entries[0].tests[ERROR_ID].verdict == "error"
    assert entries[0].gpu == "NVIDIA H100 80GB HBM3" and entries[0].vllm_version == "0.26.0"


def test_corrupt_lines_are_skipped_with_a_warning_and_the_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    append_run(path, _run(1, "aaaa111"))
    good = path.read_bytes()
    # A bad merge, a line of the wrong shape, and a write cut off mid-line (no newline).
    path.write_bytes(good + b"<<<<<<< HEAD\n" + json.dumps({"tests": 3}).encode() + b"\n" + good[: len(good) // 2])
    before = path.read_bytes()
    with pytest.warns(HistoryWarning) as caught:
        entries = load(path)
    assert len(entries) == 1
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3 and all(str(path) in m for m in messages)
    assert any(":2:" in m for m in messages) and any(":4:" in m for m in messages)
    assert path.read_bytes() == before  # reading never rewrites
    append_run(path, _run(2, "bbbb222"))
    assert path.read_bytes().startswith(before)  # appending never drops what was there
    with pytest.warns(HistoryWarning):
        entries = load(path)
    assert [e.commit for e in entries] == ["aaaa111", "bbbb222"]  # the new run is not glued to the fragment


def test_missing_history_is_empty_and_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    assert load(tmp_path / "none.jsonl") == []
    with pytest.raises(ReportInputError, match="not a file"):
        load(tmp_path)


def test_trend_series_and_current_run_without_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    for day in (1, 2, 3):
        append_run(path, _run(day, f"c{day}"))
    entries = load(path)
    series = trend_series(entries, "decode")
    assert set(series) == {FAIL_ID, PASS_ID}  # the error test has no decode number
    assert [label for label, _ in series[PASS_ID]] == ["2026-01-01 c1", "2026-01-02 c2", "2026-01-03 c3"]
    assert len(with_current_run(entries, _run(3, "c3"))) == 3  # already appended: not twice
    assert len(with_current_run(entries, _run(4, "c4"))) == 4


def test_report_plots_the_trend_of_a_slow_drift(tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    path = tmp_path / "h.jsonl"
    lines = []
    for day in range(1, 8):  # +0.4 % per run: every run passes a 2 % tolerance, the trend shows it
        append_run(path, _run(day, f"c{day}"))
    for i, line in enumerate(path.read_text().splitlines()):
        d = json.loads(line)
        for t in d["tests"].values():
            if "decode" in t["median_step_us"]:
                t["median_step_us"]["decode"] *= 1 + 0.004 * i
        lines.append(json.dumps(d))
    path.write_text("\n".join(lines) + "\n")
    series = trend_series(load(path))
    values = [v for _, v in series[PASS_ID]]
    assert values == sorted(values) and values[-1] / values[0] == pytest.approx(1.024)
    index = write_html_report(_run(7, "c7"), tmp_path / "report", history=path)
    html = index.read_text()
    assert '<img class="plot" src="trend-decode.png"' in html
    assert "Trend over 7 run(s)" in html  # run 7 is the history's last line: not counted twice
    img = Image.open(tmp_path / "report" / "trend-decode.png").convert("L")
    assert max(ImageStat.Stat(img).stddev) > 10


def test_history_without_decode_numbers_says_so(tmp_path: Path) -> None:
    r = copy.deepcopy(_run(1, "x"))
    r.tests = [r.tests[2]]  # only the error test
    index = write_html_report(r, tmp_path / "report", history=tmp_path / "empty.jsonl")
    assert "no decode steps in the history" in index.read_text()
    assert not (tmp_path / "report" / "trend-decode.png").exists()
