"""The timed pass through the whole plugin, over HTTP against `recorded_trace_double`.

The double streams one chunk per token at once, so its latency is this machine's jitter: these
tests check the wiring (the timed pass runs, its samples reach the results file, the baseline,
the comparison and every report), not latency values; the verdict on latency is tested on built
inputs (test_compare_latency.py) and on the real vLLM CPU server (test_e2e_latency_cpu_vllm.py).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from pytest_vllm_profile.baseline import read_baseline_file
from support.double_sessions import H100, REP1, WORKLOAD_TEST, baseline_file, load_results, run
from support.vllm_double import RECORDED_VLLM_VERSION, RecordedTraceDouble


def test_timed_pass_reaches_results_baseline_comparison_and_reports(
    pytester: pytest.Pytester,
    recorded_trace_double: RecordedTraceDouble,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    xdist_args: tuple[str, ...],
) -> None:
    # under -n 2 the timed pass travels from the worker to the controller inside the test report
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    result = run(pytester, recorded_trace_double, "--update-baselines", "--vllm-timed-repeats=2", *xdist_args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*latency ms p50/p90/p99: TTFT *; TPOT *; ITL *; e2e *", "*output * tok/s, * req/s"])
    (recorded,) = load_results(pytester).tests
    assert recorded.timed_pass is not None and len(recorded.timed_pass.runs) == 2
    # every sample kept: one request per repeat (one prompt), 10 tokens -> 9 gaps each
    assert [len(run.requests) for run in recorded.timed_pass.runs] == [1, 1]
    assert all(len(run.requests[0].itl_ms) == 9 for run in recorded.timed_pass.runs)
    streamed = recorded_trace_double.state.streamed
    assert len(streamed) == 2  # the timed repeats; warmup_requests=0 in WORKLOAD_TEST
    assert all(b["stream"] and b["max_tokens"] == 10 for b in streamed)
    entry = read_baseline_file(baseline_file(pytester)).entries[H100][RECORDED_VLLM_VERSION]
    assert entry.timed is not None and len(entry.timed.runs) == 2
    assert entry.summary.overhead_by_kind()["decode"].steps == 9

    # re-check against it, latency held loosely (the double's latency is jitter): compared, passes
    recorded_trace_double.serve(REP1)
    job_summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(job_summary))
    result = run(
        pytester,
        recorded_trace_double,
        "--vllm-timed-repeats=2",
        "--vllm-rel-tol=100",
        f"--vllm-report={tmp_path / 'html'}",
        *xdist_args,
    )
    result.assert_outcomes(passed=1)
    (checked,) = load_results(pytester).tests
    assert checked.verdict == "pass" and checked.comparison is not None
    assert not [n for n in checked.comparison.notes if "latency not compared" in n], checked.comparison.notes
    assert checked.baseline_timed_pass is not None
    text = job_summary.read_text()
    assert "**Latency** test_workload.py::test_decode" in text and "| TPOT |" in text
    html = (tmp_path / "html" / "index.html").read_text()
    assert "Latency (timed pass, no profiler)" in html and "-tpot.png" in html
    assert list((tmp_path / "html").glob("*-tpot.png"))


def test_timed_repeats_zero_in_the_marker_runs_no_timed_pass(
    pytester: pytest.Pytester,
    recorded_trace_double: RecordedTraceDouble,
) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST.replace("warmup_requests=0", "warmup_requests=0, timed_repeats=0"))
    run(pytester, recorded_trace_double, "--update-baselines", "--vllm-timed-repeats=3").assert_outcomes(passed=1)
    (recorded,) = load_results(pytester).tests
    assert recorded.timed_pass is msgspec.UNSET  # left out of the results file
    assert recorded_trace_double.state.streamed == []
