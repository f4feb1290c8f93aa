"""The library's `TestResult` / `RunResults` built from the plugin's state: the one place that
turns the plugin's objects into the results model and into JSON for the xdist report.

Each marked test's result travels as a JSON-able attribute of its teardown report, so under
pytest-xdist the controller receives the workers' results with the reports themselves.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..codec import from_builtins, to_builtins
from ..configuration import workload_on_record
from ..results import Outcome, RunResults, TestResult

if TYPE_CHECKING:
    from ..settings import SessionSettings
    from .state import ItemState

RESULT_ATTR = "vllm_profile_result"  # attribute of the teardown report carrying a TestResult as JSON


def outcome_of_phases(phase_outcomes: dict[str, str]) -> Outcome:
    """ "passed", "failed", "skipped" or "error" of a test from its phases' report outcomes."""
    if phase_outcomes.get("setup") == "skipped" or phase_outcomes.get("call") == "skipped":
        return "skipped"
    if phase_outcomes.get("setup") == "failed":
        return "error"
    if phase_outcomes.get("call") == "failed":
        return "failed"
    if phase_outcomes.get("teardown") == "failed":
        return "error"
    return "passed"


def build_test_result(nodeid: str, state: ItemState, skip_reason: str) -> TestResult:
    """The result of one marked test once its teardown is reported."""
    phases = state.phase_outcomes
    outcome = outcome_of_phases(phases)
    result = TestResult(
        nodeid=nodeid,
        outcome=outcome,
        workload=workload_on_record(state.workload),
        duration_s=round(state.duration_s, 3),
        server_boot_s=state.server_boot_s,
    )
    profile = state.profile
    # The baseline outcome of a passed body, or the failing one that failed it (also when the
    # body's own assert_matches_baseline() raised).
    baseline_outcome = profile.baseline_outcome if profile is not None else None
    if baseline_outcome is not None and phases.get("call") != "passed" and not baseline_outcome.fails_test:
        baseline_outcome = None
    if outcome == "skipped":
        result.message = state.message or skip_reason
        return result
    if profile is not None:
        result.summary = profile.summary
        result.requests = list(profile.requests)
        if profile.timed_pass is not None:
            result.timed_pass = profile.timed_pass
        result.trace_paths = [str(p) for p in profile.trace_paths]
        result.configuration = profile.configuration
    if baseline_outcome is not None:
        result.verdict = baseline_outcome.verdict
        result.baseline_path = str(baseline_outcome.baseline_path) if baseline_outcome.baseline_path else None
        result.baseline_changed = baseline_outcome.baseline_changed
        result.comparison = baseline_outcome.comparison
        result.baseline_summary = baseline_outcome.baseline_summary
        if baseline_outcome.baseline_timed_pass is not None:
            result.baseline_timed_pass = baseline_outcome.baseline_timed_pass
        result.message = baseline_outcome.message
    if outcome != "passed" and (not result.message or baseline_outcome is None or not baseline_outcome.fails_test):
        result.message = state.message
    return result


def result_to_report_attr(result: TestResult) -> dict[str, Any]:
    data: dict[str, Any] = to_builtins(result)
    return data


def result_from_report_attr(data: dict[str, Any], nodeid: str) -> TestResult:
    return from_builtins(data, TestResult, f"the report of {nodeid}")


def build_run_results(tests: list[TestResult], settings: SessionSettings, commit: str | None) -> RunResults:
    """The session's results file: its tests sorted by node id, the GPU / vLLM version of the first profile."""
    from ..baseline import keys_for_summary  # lazy: jsonschema is not loaded by plain pytest runs

    tests = sorted(tests, key=lambda t: t.nodeid)
    gpu = vllm_version = None
    for t in tests:
        if t.summary is not None:
            gpu = keys_for_summary(t.summary)[0]
            vllm_version = t.summary.runtime.vllm_version
            break
    return RunResults(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        commit=commit,
        gpu=gpu,
        vllm_version=vllm_version,
        launcher=settings.launcher,
        profiler=settings.profiler,
        tests=tests,
    )
