"""Fixtures of the plugin layer: pytester sessions of the plugin against the recorded-trace double.

The plugin's sessions run both in one process and under pytest-xdist (`-n 2`): under xdist the
tests run in worker processes and their results reach the controller with the reports, a
different path for the results file, the terminal section, the baselines and the hooks. A test
whose inner session goes one of those paths takes `xdist_args` and passes it to the session, so
it runs once plain (`[no-xdist]`) and once with `-n 2` (`[xdist-n2]`).
"""

from __future__ import annotations

import pytest

from support.double_sessions import slowed_trace  # noqa: F401 - fixture

PYTESTER_XDIST_MODES = {"no-xdist": (), "xdist-n2": ("-n", "2")}


@pytest.fixture(params=list(PYTESTER_XDIST_MODES))
def xdist_args(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Extra arguments for an inner pytester run: none, or `-n 2`."""
    return PYTESTER_XDIST_MODES[request.param]
