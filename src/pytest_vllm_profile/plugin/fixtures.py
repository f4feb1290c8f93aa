"""The fixtures: `vllm_server_pool` (session) and `vllm_profile` (per test)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ..errors import VllmProfileError
from ..pool import ServerPool
from .marker import SKIP_REASON, item_state_for_fixture
from .messages import cause_first
from .preflight import model_problem
from .progress import Progress
from .record import configuration_of
from .state import session_state

if TYPE_CHECKING:
    from ..workload_profile import VllmProfile


def boot_message(model: str, launcher: str, url: str | None) -> str:
    if launcher == "url":
        return f"waiting for the vLLM server at {url} (model {model}) to be healthy"
    return (
        f"starting a vLLM server for {model} ({launcher} launcher; a boot takes from 30 s on a CPU to minutes on a GPU)"
    )


@pytest.fixture(scope="session")
def vllm_server_pool(request: pytest.FixtureRequest) -> Iterator[ServerPool]:
    """One vLLM server per distinct server identity, shared by the session (or xdist worker)."""
    state = session_state(request.config)
    if not state.settings.enabled:
        pytest.skip(SKIP_REASON)
    pool = state.get_pool()
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
def vllm_profile(request: pytest.FixtureRequest, vllm_server_pool: ServerPool) -> VllmProfile:
    """The profile (median of repeats) of this test's `vllm_workload` on its pooled server."""
    from ..workload_profile import profile_workload

    item = request.node
    session = session_state(request.config)
    test = item_state_for_fixture(item)
    workload = test.workload
    # Before any server is asked for (plugin/preflight.py); the model folder only now, once the
    # test's other fixtures (which may write it) have run.
    problems = list(test.preflight_problems)
    if (missing_model := model_problem(workload, session.settings)) is not None:
        problems.append(missing_model)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    progress = Progress(request.config)
    problem = None
    try:
        if not vllm_server_pool.is_live(workload) and vllm_server_pool.failure_reason(workload) is None:
            progress.say(boot_message(workload.model, session.settings.launcher, session.settings.url))
        pooled = vllm_server_pool.get(workload)
        if pooled.uses == 1:
            test.server_boot_s = pooled.boot_s
            progress.say(
                f"vLLM server for {workload.model} healthy after {pooled.boot_s:.1f} s ({pooled.server.base_url})"
            )
        # The marker's tolerances win over the session's options.
        baseline = session.settings.baseline_settings(session.commit()).with_overrides(
            rel_tol=workload.rel_tol, abs_floor_us=workload.abs_floor_us, fail_on_drift=workload.fail_on_drift
        )
        profile = profile_workload(
            item.nodeid, workload, pooled, session.settings.capture_settings(), baseline, progress=progress.say
        )
        profile.baseline_key_override = item.config.hook.pytest_vllm_profile_baseline_key(item=item, profile=profile)
        profile.configuration = configuration_of(session, profile, pooled)
    except VllmProfileError as exc:
        problem = cause_first(exc)
    if problem is not None:  # failed outside the except block: the message alone, no exception chain
        pytest.fail(problem, pytrace=False)
    test.profile = profile
    return profile
