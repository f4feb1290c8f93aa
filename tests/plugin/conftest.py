"""Fixtures of the plugin layer: pytester sessions of the plugin against the recorded-trace double.

Plain and `-n 2`: the one mechanism is the `xdist_args` fixture. A test that takes it runs twice,
`[no-xdist]` and `[xdist-n2]`, and passes it to each of its inner sessions (support/double_sessions.py
`run(pytester, double, ..., *xdist_args)`). Under xdist the workload tests run in worker processes
and what they produce reaches the controller inside the test reports: a different path for the
results file, the terminal section, the junit properties, the baselines, the history, the job
summary, the HTML report and the hooks; and collection (skips, marker errors) happens in the
workers. So the tests of those take `xdist_args` (`--collect-only -q tests/plugin | grep xdist-n2`
lists them: test_plugin_baselines, test_plugin_hooks, test_plugin_history,
test_plugin_marker_tolerances, test_plugin_options, test_plugin_timed_pass's first test,
test_results_file's session test).

The others run one mode, on purpose, to keep the layer's time down (an `[xdist-n2]` session costs
3-14 s here against 1-2 s plain): what they check happens at setup or inside the test body (setup
checks, damaged baselines, advice in the test's own message, progress lines, messages of a
failing capture), the same code in a worker, and reaches the controller by the paths above. Tests of xdist itself pass `-n 2` themselves:
test_plugin_baselines' two workers writing baselines, test_plugin_session_checks' warnings
about `-n 2`. A quick loop may leave the xdist halves out: `pytest tests/plugin -k "not xdist-n2"`.
"""

from __future__ import annotations

import pytest

from support.double_sessions import slowed_trace  # noqa: F401 - fixture

PYTESTER_XDIST_MODES = {"no-xdist": (), "xdist-n2": ("-n", "2")}


@pytest.fixture(params=list(PYTESTER_XDIST_MODES))
def xdist_args(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Extra arguments for an inner pytester run: none, or `-n 2`."""
    return PYTESTER_XDIST_MODES[request.param]
