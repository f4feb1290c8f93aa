"""Per-test tolerances on the marker (rel_tol=, abs_floor_us=, fail_on_drift=) override the session's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.double_sessions import H100, baseline_file, load_results, run
from support.vllm_double import DOUBLE_MODEL, RECORDED_VLLM_VERSION, RecordedTraceDouble

# Two tests of one workload: on a 5 % slower trace, 10 % passes and 1 % fails, whatever the
# session's --vllm-rel-tol (3 % here) says.
TOLERANCE_TESTS = f"""
import pytest

@pytest.mark.vllm_workload(model="{DOUBLE_MODEL}", max_tokens=10, warmup_requests=0, rel_tol=0.10,
                           abs_floor_us=50.0, fail_on_drift=False)
def test_loose(vllm_profile):
    settings = vllm_profile.baseline_settings
    assert (settings.rel_tol, settings.abs_floor_us, settings.fail_on_drift) == (0.10, 50.0, False)

@pytest.mark.vllm_workload(model="{DOUBLE_MODEL}", max_tokens=10, warmup_requests=0, rel_tol=0.01)
def test_strict(vllm_profile):
    settings = vllm_profile.baseline_settings
    # the arguments it does not give: the session's
    assert (settings.rel_tol, settings.abs_floor_us, settings.fail_on_drift) == (0.01, None, True)
"""


def test_marker_tolerances_win_over_the_sessions(
    pytester: pytest.Pytester,
    recorded_trace_double: RecordedTraceDouble,
    slowed_trace: Path,
    xdist_args: tuple[str, ...],
) -> None:
    pytester.makepyfile(test_workload=TOLERANCE_TESTS)
    run(pytester, recorded_trace_double, "--update-baselines", "--vllm-rel-tol=0.03", *xdist_args).assert_outcomes(
        passed=2
    )
    stored = json.loads(baseline_file(pytester, "test_loose").read_text())["entries"][H100][RECORDED_VLLM_VERSION]
    assert (stored["workload"]["rel_tol"], stored["workload"]["fail_on_drift"]) == (0.10, False)
    # Unset tolerances are not stored, so a 0.1.0 baseline re-records unchanged.
    stored = json.loads(baseline_file(pytester, "test_strict").read_text())["entries"][H100][RECORDED_VLLM_VERSION]
    assert stored["workload"]["rel_tol"] == 0.01 and not {"abs_floor_us", "fail_on_drift"} & set(stored["workload"])
    recorded_trace_double.serve(slowed_trace)
    result = run(pytester, recorded_trace_double, "--vllm-rel-tol=0.03", *xdist_args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*profile regressed against the baseline*", "  decode step: 6071.6 µs -> 6375.2 µs (+5.00%)"]
    )
    verdicts = {t.nodeid.split("::")[1]: (t.outcome, t.verdict) for t in load_results(pytester).tests}
    assert verdicts == {"test_loose": ("passed", "pass"), "test_strict": ("failed", "fail")}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("rel_toll=0.05", "unknown vllm_workload argument(s) rel_toll; valid: *"),
        ("rel_tol=-0.1", "vllm_workload rel_tol=-0.1: must be a number >= 0"),
        ("rel_tol=float('nan')", "vllm_workload rel_tol=nan: must be a number >= 0"),
        ("abs_floor_us='5'", "vllm_workload abs_floor_us='5': must be a number >= 0"),
        ("abs_floor_us=True", "vllm_workload abs_floor_us=True: must be a number >= 0"),
        ("fail_on_drift='no'", "vllm_workload fail_on_drift='no': must be True or False"),
    ],
)
def test_bad_tolerance_on_the_marker_is_a_collection_error(
    pytester: pytest.Pytester, arguments: str, message: str
) -> None:
    pytester.makepyfile(
        test_tol=f"""
        import pytest

        @pytest.mark.vllm_workload(model="m", {arguments})
        def test_it():
            pass
    """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED  # 2: errors during collection
    result.stdout.fnmatch_lines([f"*invalid @pytest.mark.vllm_workload: test_tol.py::test_it: {message}"])
