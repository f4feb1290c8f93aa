"""Hooks pytest-vllm-profile calls, for a conftest.py or another plugin to implement.

Added through `pytest_addhooks`, like pytest-xdist's `newhooks`. docs/hooks.md has a worked
example of each. The firstresult hooks stop at the first implementation that returns
something other than None; the plugin's own implementations (`builtin_hooks.py`) are
`trylast`, so any conftest or plugin implementation is asked first and may return None to
leave the decision to them.

Under pytest-xdist the hooks run where the test runs (the worker), except
`pytest_vllm_profile_commit`, which the controller also calls for the results file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..launchers.base import Launcher, ServerSpec
    from ..settings import SessionSettings
    from ..workload_profile import BaselineOutcome, VllmProfile


@pytest.hookspec(firstresult=True)
def pytest_vllm_profile_make_launcher(
    config: pytest.Config, spec: ServerSpec, settings: SessionSettings
) -> Launcher | None:
    """Return the `Launcher` that gets a server for `spec`, or None to leave it to the next one.

    Called once per server the pool boots. `spec` says what to serve (model, arguments,
    environment, profiler, trace folder, port, GPUs, health timeout); `settings.launcher` is
    the `--vllm-launcher` name asked for. The default implementations make the built-in
    `process`, `docker` and `url` launchers (for `settings.launcher` of that name).
    """


@pytest.hookspec(firstresult=True)
def pytest_vllm_profile_baseline_key(item: pytest.Item, profile: VllmProfile) -> tuple[str, str] | None:
    """Return the (GPU key, vLLM version key) the baseline of `item` is stored and looked up under.

    Called once per test after its profile was taken, before the body runs. The default is
    `(profile.gpu, profile.vllm_version)`: the GPU model the trace names ("cpu" for a CPU
    trace) and the version the server reports.
    """


@pytest.hookspec(firstresult=True)
def pytest_vllm_profile_commit(config: pytest.Config) -> str | None:
    """Return the commit recorded in baselines and the results file (None: not known).

    Called once per process (cached). The default is `GITHUB_SHA`, else `git rev-parse HEAD`
    in the rootdir.
    """


@pytest.hookspec
def pytest_vllm_profile_verdict(item: pytest.Item, profile: VllmProfile, outcome: BaselineOutcome) -> None:
    """Called with each test's baseline verdict, once it is decided and before a failing one fails the test.

    `outcome.verdict` is "pass", "fail", "no-baseline" or "updated" (--update-baselines);
    `outcome.comparison` is the `Comparison` with the baseline (None for "no-baseline" and
    "updated"); `outcome.baseline_path` the baseline file. E.g. push the numbers to a
    dashboard. Not called when the test body failed before any comparison.
    """
