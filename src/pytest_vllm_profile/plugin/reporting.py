"""What a session reports: JUnit properties per test, the results file, the HTML and GitHub
job-summary reports (lazily imported), and the terminal section "vllm-profile".

The controller (or the single process) writes the files and the terminal section.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import VllmProfileError
from ..results import RunResults
from .run_results import build_run_results
from .state import SessionState

if TYPE_CHECKING:
    from ..workload_profile import BaselineOutcome, VllmProfile


def add_junit_properties(item: pytest.Item, profile: VllmProfile, outcome: BaselineOutcome) -> None:
    props = item.user_properties
    props.append(("vllm_verdict", outcome.verdict))
    props.append(("vllm_token_steps", profile.token_steps))
    props.append(("vllm_layer_count", profile.layer_count))
    if profile.decode_step_us is not None:
        props.append(("vllm_decode_step_us", f"{profile.decode_step_us:.1f}"))
    comparison = outcome.comparison
    if comparison is not None:
        for st in comparison.step_times:
            props.append((f"vllm_{st.kind}_step_delta_pct", f"{st.delta_pct:+.2f}"))
    if outcome.baseline_path is not None:
        props.append(("vllm_baseline", str(outcome.baseline_path)))


def session_results(state: SessionState) -> RunResults:
    return build_run_results(state.results, state.settings, state.commit())


def session_results_path(state: SessionState) -> Path:
    """`<trace root>/<session stamp>/results.json`: this session's results, kept by later sessions."""
    stamp = state.session_stamp or state.ensure_session_dir().parent.name
    return state.settings.trace_root / stamp / "results.json"


def write_results_and_reports(state: SessionState) -> None:
    """At session end: the results file, then the reports made from it."""
    if state.settings.results_path is None or not (state.settings.enabled or state.results):
        return
    results = session_results(state)
    own_path = session_results_path(state)
    try:
        # This session's own copy first (a second session in the same rootdir never replaces
        # it), then the shared file, which always holds the latest finished session.
        results.save(own_path)
        results.save(state.settings.results_path)
    except OSError as exc:
        warnings.warn(f"pytest-vllm-profile: cannot write {state.settings.results_path}: {exc}", stacklevel=1)
        return
    state.own_results_path = own_path
    state.run_results = results
    from .history import append_and_check

    append_and_check(state, results)  # before the HTML report, which plots the history with this run
    _write_reports(state, results)


def _write_reports(state: SessionState, results: RunResults) -> None:
    if state.settings.report_dir is not None:
        try:
            from ..report.html import write_html_report
        except ImportError as exc:
            warnings.warn(f"pytest-vllm-profile: HTML report not written ({exc})", stacklevel=1)
        else:
            try:
                state.report_path = write_html_report(
                    results, state.settings.report_dir, history=state.settings.history
                )
            except VllmProfileError as exc:
                warnings.warn(f"pytest-vllm-profile: HTML report not written: {exc}", stacklevel=1)
    try:
        from ..report.markdown import maybe_write_github_summary

        maybe_write_github_summary(results)  # appends: the file is shared by the job's steps
    except (ImportError, VllmProfileError) as exc:
        warnings.warn(f"pytest-vllm-profile: job summary not written: {exc}", stacklevel=1)


def write_terminal_summary(terminalreporter: Any, state: SessionState) -> None:
    if state.is_worker or not state.results:
        return
    if not state.settings.enabled and all(t.outcome == "skipped" for t in state.results):
        return  # a plain run: pytest's own skip summary says why; no section full of SKIPPED lines
    from ..report.terminal import render_terminal_summary

    terminalreporter.write_sep("=", "vllm-profile")
    results = state.run_results or session_results(state)
    for line in render_terminal_summary(results):
        terminalreporter.write_line(line)
    if state.run_results is not None and state.settings.results_path is not None:
        terminalreporter.write_line(f"results: {state.settings.results_path}")
        if state.own_results_path is not None:
            terminalreporter.write_line(f"this session's results: {state.own_results_path}")
    if state.report_path is not None:
        terminalreporter.write_line(f"HTML report: {state.report_path}")
    for line in state.history_notes:
        terminalreporter.write_line(line)
