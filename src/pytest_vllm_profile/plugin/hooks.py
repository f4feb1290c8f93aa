"""The pytest hooks the plugin implements: setup, collection, the baseline step after the body,
per-test bookkeeping, and the session's end."""

from __future__ import annotations

from typing import Any

import pytest

from ..errors import VllmProfileError
from ..sessions import prune_sessions
from . import builtin_hooks, hookspecs
from .marker import SKIP_REASON, marker_doc, prepare_item
from .messages import cause_first, keep_head
from .options import add_options, read_settings
from .preflight import item_problems
from .reporting import add_junit_properties, write_results_and_reports, write_terminal_summary
from .run_results import RESULT_ATTR, build_test_result, result_to_report_attr
from .session_checks import check_session, stop_servers
from .state import SESSION_KEY, SessionState, item_state, new_stamp, session_state


# ---- setup ---------------------------------------------------------------------------------
def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)
    builtin_hooks.register(pluginmanager)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", marker_doc())
    state = SessionState(settings=read_settings(config), config=config)
    config.stash[SESSION_KEY] = state
    config.pluginmanager.register(state, "vllm-profile-state")
    if state.settings.enabled and not state.is_worker:
        state.session_stamp = new_stamp()  # decided now: the retention rule keeps it (pytest_sessionstart)
        check_session(config, state.settings)


def pytest_sessionstart(session: pytest.Session) -> None:
    state = session.config.stash.get(SESSION_KEY, None)
    if state is not None and state.settings.enabled and not state.is_worker:
        prune_sessions(state.settings.trace_root, state.settings.keep_sessions, state.session_stamp)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(SESSION_KEY, None)
    if state is not None:
        if state.pool is not None:
            stop_servers(state.pool)
        if config.pluginmanager.is_registered(state):
            config.pluginmanager.unregister(state)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: every worker keeps its traces under one shared session folder."""
    state = session_state(node.config)
    state.session_stamp = state.session_stamp or new_stamp()
    node.workerinput["vllm_session_stamp"] = state.session_stamp


# ---- collection -----------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    # Raising here fails the collection of the module (or class) with the message alone:
    # "ERROR collecting ..." and exit code 2, with or without --vllm-profile.
    result = yield
    if result is None:
        return result
    settings = session_state(collector.config).settings
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, pytest.Function):
            prepare_item(item, settings)
    return result


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Checks of each marked test that need no server (plugin/preflight.py), before any boots."""
    settings = session_state(config).settings
    if not settings.enabled:
        return
    for item in items:
        test = item_state(item)
        if test is not None:
            test.preflight_problems = item_problems(item.nodeid, settings)


# ---- baseline after the body ----------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    try:
        result = yield  # a failing body raises here: no comparison, no baseline written
    except BaseException:
        # A body's own assert_matches_baseline() failing still reports its verdict.
        test = item_state(item)
        if test is not None and test.profile is not None and test.profile.baseline_outcome is not None:
            item.config.hook.pytest_vllm_profile_verdict(
                item=item, profile=test.profile, outcome=test.profile.baseline_outcome
            )
        raise
    test = item_state(item)
    profile = test.profile if test is not None else None
    if profile is None:
        return result
    from ..workload_profile import check_baseline, update_baseline

    expected = profile.workload.expected_layers
    if expected is not None and profile.layer_count != expected:
        item.user_properties.append(("vllm_verdict", "structure"))
        pytest.fail(
            f"found {profile.layer_count} decoder layers per step, the vllm_workload marker "
            f"expects expected_layers={expected}",
            pytrace=False,
        )
    settings = profile.baseline_settings
    assert settings is not None  # the fixture always sets them
    problem = None
    try:
        if settings.update:
            outcome = update_baseline(profile, settings)
        elif profile.baseline_outcome is not None:  # the test called assert_matches_baseline()
            outcome = profile.baseline_outcome
        else:
            outcome = check_baseline(profile, settings)
    except VllmProfileError as exc:
        problem = cause_first(exc)
    if problem is not None:
        item.user_properties.append(("vllm_verdict", "error"))
        pytest.fail(problem, pytrace=False)
    profile.baseline_outcome = outcome
    add_junit_properties(item, profile, outcome)
    item.config.hook.pytest_vllm_profile_verdict(item=item, profile=profile, outcome=outcome)
    if outcome.fails_test:
        pytest.fail(outcome.message, pytrace=False)
    return result


# ---- per-test results -----------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    test = item_state(item)
    if test is None:
        return report
    test.phase_outcomes[report.when] = report.outcome
    if report.failed and not test.message:
        test.message = _short_message(report)
    test.duration_s += report.duration
    if report.when == "teardown":
        setattr(report, RESULT_ATTR, result_to_report_attr(build_test_result(item.nodeid, test, SKIP_REASON)))
    return report


def _short_message(report: pytest.TestReport) -> str:
    """The exception of a failure ("assert 36 == 32", the baseline explanation), else the report's
    text; its head is kept, where the cause is (`messages.keep_head`)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or getattr(report, "longreprtext", "") or ""
    if text.startswith("Failed: "):
        text = text[len("Failed: ") :]
    return keep_head(text)


# ---- session end ----------------------------------------------------------------------------
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(SESSION_KEY, None)
    if state is None:
        return
    if state.pool is not None:
        stop_servers(state.pool)  # also on KeyboardInterrupt, where session fixtures may not tear down
    if not state.is_worker:
        write_results_and_reports(state)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(SESSION_KEY, None)
    if state is not None:
        write_terminal_summary(terminalreporter, state)
