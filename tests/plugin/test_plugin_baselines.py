"""The plugin end to end over HTTP against `recorded_trace_double` (see tests/support/double_sessions.py).

Real-vLLM (CPU) runs of the plugin go through the process launcher elsewhere.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_vllm_profile.results import RunResults
from support.double_sessions import (
    H100,
    REP1,
    WORKLOAD_TEST,
    baseline_file,
    load_results,
    record_baseline,
    run,
    run_with_baseline_text,
)
from support.vllm_double import DOUBLE_MODEL, RECORDED_VLLM_VERSION, RecordedTraceDouble


def test_missing_baseline_is_a_failure_telling_how_to_record_one(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble, xdist_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    result = run(pytester, recorded_trace_double, *xdist_args)
    result.assert_outcomes(failed=1, errors=0)
    result.stdout.fnmatch_lines(
        [
            f"no baseline for test_workload.py::test_decode on {H100}/vLLM 0.26.0 in "
            f"{baseline_file(pytester)}; run with --update-baselines to record one",
            "*= vllm-profile =*",
            "NO BASELINE test_workload.py::test_decode  [10 steps x 36 layers]",
        ]
    )
    assert not baseline_file(pytester).exists()
    (test,) = load_results(pytester).tests
    assert (test.outcome, test.verdict) == ("failed", "no-baseline")


def test_update_baselines_writes_the_file_and_a_rerun_passes(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble, xdist_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    result = run(pytester, recorded_trace_double, "--update-baselines", *xdist_args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "UPDATED     test_workload.py::test_decode*",
            "baseline files updated (1):",
            f"    {baseline_file(pytester)}  (test_workload.py::test_decode)",
        ]
    )
    stored = json.loads(baseline_file(pytester).read_text())
    assert stored["test"] == "test_workload.py::test_decode"
    entry = stored["entries"][H100]["0.26.0"]
    assert entry["summary"]["token_steps"] == 10 and entry["repeats"] == 1
    assert entry["workload"]["max_tokens"] == 10

    recorded_trace_double.serve(REP1)  # a second real profile of the same workload
    result = run(pytester, recorded_trace_double, *xdist_args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["PASS        test_workload.py::test_decode*", "    decode step * vs baseline *(+0.*%)"]
    )
    (test,) = load_results(pytester).tests
    assert test.verdict == "pass" and test.comparison is not None and test.comparison.verdict == "pass"


def test_regression_fails_with_the_comparison_explanation(
    pytester: pytest.Pytester,
    recorded_trace_double: RecordedTraceDouble,
    slowed_trace: Path,
    xdist_args: tuple[str, ...],
) -> None:
    record_baseline(pytester, recorded_trace_double, *xdist_args)
    recorded_trace_double.serve(slowed_trace)
    result = run(pytester, recorded_trace_double, "--junitxml", "junit.xml", *xdist_args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, errors=0)
    result.stdout.fnmatch_lines(
        [
            "*profile regressed against the baseline for NVIDIA H100*",
            "verdict: fail",
            "  decode step: 6071.6 µs -> 6375.2 µs (+5.00%)",
            "  REGRESSION *",
            "(if the change is intended, re-record with --update-baselines)",
        ]
    )
    result.stdout.fnmatch_lines(["FAIL        test_workload.py::test_decode*", "    top offenders:", "      1. *"])
    assert "Traceback" not in result.stdout.str()  # the explanation, not plugin internals
    (test,) = load_results(pytester).tests
    assert test.verdict == "fail" and test.comparison is not None and test.comparison.regressions
    props = dict((p.get("name"), p.get("value")) for p in ET.parse(pytester.path / "junit.xml").iter("property"))
    assert props["vllm_verdict"] == "fail"
    assert props["vllm_token_steps"] == "10" and props["vllm_layer_count"] == "36"
    assert props["vllm_decode_step_us"] == "6375.2"
    assert props["vllm_decode_step_delta_pct"] == "+5.00"


def test_assert_matches_baseline_in_the_body_fails_there(
    pytester: pytest.Pytester,
    recorded_trace_double: RecordedTraceDouble,
    slowed_trace: Path,
    xdist_args: tuple[str, ...],
) -> None:
    record_baseline(pytester, recorded_trace_double, *xdist_args)
    pytester.makepyfile(
        test_workload=f"""
        import pytest

        @pytest.mark.vllm_workload(model="{DOUBLE_MODEL}", max_tokens=10, warmup_requests=0)
        def test_decode(vllm_profile):
            vllm_profile.assert_matches_baseline()
            raise RuntimeError("not reached when the baseline does not match")
    """
    )
    recorded_trace_double.serve(slowed_trace)
    result = run(pytester, recorded_trace_double, *xdist_args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*BaselineMismatch: profile regressed*"])
    assert "not reached" not in result.stdout.str()
    # The results file (and so the reports) keeps the verdict and the comparison behind it.
    (test,) = load_results(pytester).tests
    assert (test.outcome, test.verdict) == ("failed", "fail")
    assert test.comparison is not None and test.comparison.regressions
    assert test.baseline_path is not None and test.baseline_path.endswith("test_decode.json")


def test_failed_body_never_writes_a_baseline(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble, xdist_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST.replace("layer_count == 36", "layer_count == 32"))
    result = run(pytester, recorded_trace_double, "--update-baselines", *xdist_args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 36 == 32*"])
    assert not baseline_file(pytester).exists()
    (test,) = load_results(pytester).tests
    assert (test.outcome, test.verdict, test.baseline_changed) == ("failed", None, False)
    assert "assert 36 == 32" in test.message


def test_invalid_baseline_file_is_a_clear_failure(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    path, result = run_with_baseline_text(
        pytester,
        recorded_trace_double,
        '{"schema_version": 1, "test": "test_workload.py::test_decode", "entries": {"x": 3}}',
    )
    result.assert_outcomes(errors=1)  # found before the server is asked for (issue 15): a setup error
    result.stdout.fnmatch_lines([f"*BaselineError: {path}*"])
    assert "Traceback" not in result.stdout.str()
    run(pytester, recorded_trace_double, "--update-baselines").assert_outcomes(errors=1)  # never overwritten
    assert '"x": 3' in path.read_text()


def test_results_file_holds_profile_requests_and_traces(
    pytester: pytest.Pytester,
    recorded_trace_double: RecordedTraceDouble,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    xdist_args: tuple[str, ...],
) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    out = tmp_path / "out" / "run.json"
    job_summary = tmp_path / "step-summary.md"
    job_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(job_summary))
    result = run(
        pytester,
        recorded_trace_double,
        "--update-baselines",
        f"--vllm-results={out}",
        "--vllm-repeats=2",
        f"--vllm-report={tmp_path / 'html'}",
        *xdist_args,
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"results: {out}", f"HTML report: {tmp_path / 'html'}*"])
    assert (tmp_path / "html" / "index.html").is_file()
    text = job_summary.read_text()
    assert text.startswith("earlier step\n") and "test_workload.py::test_decode" in text
    results = RunResults.load(out)
    assert (results.gpu, results.vllm_version, results.launcher, results.profiler) == (
        H100,
        RECORDED_VLLM_VERSION,
        "url",
        "torch",
    )  # the server says its version
    (test,) = results.tests
    assert test.nodeid == "test_workload.py::test_decode" and test.outcome == "passed"
    assert test.summary is not None and test.summary.token_steps == 10 and test.summary.layer_count == 36
    assert test.summary.notes[-1] == "median of 2 repeats"
    assert [r.completion_tokens for r in test.requests] == [10, 10]
    assert len(test.trace_paths) == 2 and all(Path(p).is_file() for p in test.trace_paths)
    assert all(Path(p).name.startswith("rank0.") for p in test.trace_paths)
    assert test.baseline_changed and Path(test.baseline_path) == baseline_file(pytester)
    assert json.loads(Path(test.baseline_path).read_text())["entries"][H100]["0.26.0"]["repeats"] == 2


def test_server_that_cannot_be_reached_fails_fast_for_later_tests(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST + WORKLOAD_TEST.replace("test_decode", "test_again"))
    result = pytester.runpytest(
        "--vllm-profile",
        "--vllm-launcher",
        "url",
        "--vllm-url",
        "http://127.0.0.1:9",
        f"--vllm-trace-dir={tmp_path}",
        "--vllm-health-timeout",
        "1",
    )
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*LauncherError: vLLM server at http://127.0.0.1:9 is not reachable/healthy*",
            "*LauncherError: server for model 'qwen3-8b-shape' failed to start earlier in this session*",
        ]
    )


def test_xdist_workers_profile_and_write_baselines_safely(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST + WORKLOAD_TEST.replace("test_decode", "test_again"))
    result = run(pytester, recorded_trace_double, "-n", "2", "--update-baselines")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["baseline files updated (2):"])
    for name in ("test_decode", "test_again"):
        assert json.loads(baseline_file(pytester, name).read_text())["entries"][H100]["0.26.0"]
    results = load_results(pytester)
    assert sorted(t.nodeid for t in results.tests) == ["test_workload.py::test_again", "test_workload.py::test_decode"]
    traces = [p for t in results.tests for p in t.trace_paths]
    assert len(set(traces)) == 2  # each capture got its own trace (captures on one server are serialized)
    run(pytester, recorded_trace_double, "-n", "2").assert_outcomes(passed=2)


def test_expected_layers_of_the_marker_is_checked_before_the_baseline(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    pytester.makepyfile(
        test_workload=f"""
        import pytest

        @pytest.mark.vllm_workload(model="{DOUBLE_MODEL}", max_tokens=10, warmup_requests=0, expected_layers=32)
        def test_decode():
            pass
    """
    )
    result = run(pytester, recorded_trace_double, "--update-baselines")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*found 36 decoder layers per step, the vllm_workload marker expects expected_layers=32"]
    )
    assert not baseline_file(pytester).exists()
