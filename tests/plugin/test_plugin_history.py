"""The plugin appends every profiled run to the history database (default
.vllm-profile/history.sqlite; the controller only under xdist) and its terminal section names a
change point of this run's series. Against the recorded-trace HTTP double (tests/support/vllm_double.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from pytest_vllm_profile.history import open_history
from support.double_sessions import H100, WORKLOAD_TEST, load_results, record_baseline, run
from support.vllm_double import RecordedTraceDouble

NODEID = "test_workload.py::test_decode"


def test_each_session_appends_one_run_with_its_metrics(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble, xdist_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    db = pytester.path / ".vllm-profile" / "history.sqlite"
    run(pytester, recorded_trace_double, "--update-baselines", *xdist_args).assert_outcomes(passed=1)
    result = run(pytester, recorded_trace_double, *xdist_args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"history: run 2 added to {db}"])
    with open_history(db) as store:
        runs = store.runs()
        assert [r.gpu for r in runs] == [H100, H100]  # one run per session, however many workers
        (decode,) = store.series(nodeid=NODEID, metric="step.decode.median_us")
    summary = load_results(pytester).tests[0].summary
    assert summary is not None
    assert decode.values[-1] == pytest.approx(summary.step_kinds["decode"].median_op_time_us)


def test_history_off_and_a_path_of_ones_own(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble, tmp_path: Path
) -> None:
    record_baseline(pytester, recorded_trace_double, "--vllm-history=off")
    assert not (pytester.path / ".vllm-profile" / "history.sqlite").exists()
    own = tmp_path / "fleet" / "history.sqlite"
    run(pytester, recorded_trace_double, f"--vllm-history={own}").assert_outcomes(passed=1)
    with open_history(own) as store:
        assert len(store.runs()) == 1


def test_terminal_names_a_slowdown_of_this_runs_series(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    pytester.makepyfile(test_workload=WORKLOAD_TEST)
    db = pytester.path / ".vllm-profile" / "history.sqlite"
    run(pytester, recorded_trace_double, "--update-baselines").assert_outcomes(passed=1)  # run 1
    first = load_results(pytester)
    with open_history(db) as store:
        # twelve earlier runs 4 % faster (in January, so they come first) and one more like run 1
        for day in range(1, 13):
            older = copy.deepcopy(first)
            older.created = f"2026-01-{day:02d}T03:00:00Z"
            summary = older.tests[0].summary
            assert summary is not None
            summary.step_kinds["decode"].median_op_time_us /= 1.04 * (1 + 0.001 * (day % 3))
            store.append_run(older)
        store.append_run(first)
    result = run(pytester, recorded_trace_double)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"history: run 15 added to {db}", f"  SLOWDOWN {NODEID}: decode step +4.* since run 1 (vLLM 0.26.0)"]
    )
    assert "class.decode" not in result.stdout.str() and "gemm" not in result.stdout.str()  # nothing else moved
