"""The `vllm_workload` marker: its documentation, merging, and the checks made while collecting."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from ..errors import WorkloadError
from ..settings import SessionSettings
from ..workload import Workload
from .state import ITEM_KEY, ItemState

MARKER = "vllm_workload"
SKIP_REASON = "vLLM profiling tests need --vllm-profile (and a GPU/vLLM server)"


def marker_doc() -> str:
    names = ", ".join(f"{f.name}=" for f in fields(Workload) if f.name != "model")
    return (
        f"{MARKER}(model=..., {names}): profile this vLLM workload (runs only with --vllm-profile). "
        "The test gets the median-of-repeats profile through the vllm_profile fixture "
        "(profile.token_steps, profile.layer_count, profile.kernel(name), profile.steps_of(kind)) and, once its "
        "body passed, is compared with its stored baseline (--update-baselines records it). Example: "
        "@pytest.mark.vllm_workload(model='Qwen/Qwen3-8B', max_tokens=10, prompts=['What is the capital of "
        "France?'], server_args=['--enforce-eager'], repeats=3)"
    )


def workload_of(item: pytest.Item) -> Workload | None:
    """The merged `vllm_workload` markers of `item` (closest wins per argument); None if unmarked."""
    markers = list(item.iter_markers(MARKER))
    if not markers:
        return None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    for mark in reversed(markers):  # farthest (module) first, so the function's own marker wins
        args += tuple(mark.args)
        kwargs.update(mark.kwargs)
    return Workload.from_marker_kwargs(item.nodeid, args, kwargs)


def prepare_item(item: pytest.Function, settings: SessionSettings) -> None:
    """Validate the marker (raising a collect error that names the test) and wire the item."""
    try:
        workload = workload_of(item)
    except WorkloadError as exc:
        raise pytest.Collector.CollectError(f"invalid @pytest.mark.{MARKER}: {exc}") from None
    if workload is None:
        if "vllm_profile" in item.fixturenames:
            raise pytest.Collector.CollectError(
                f"{item.nodeid}: uses the vllm_profile fixture but has no @pytest.mark.{MARKER}(model=...) "
                "saying what to profile"
            )
        return
    item.stash[ITEM_KEY] = ItemState(workload)
    if "vllm_profile" not in item.fixturenames:
        item.fixturenames.append("vllm_profile")  # a marker alone is a baseline check of the workload
    if not settings.enabled:
        item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


def item_state_for_fixture(item: pytest.Item) -> ItemState:
    """The test's state, made now for a marker added after collection (e.g. by a conftest hook)."""
    state = item.stash.get(ITEM_KEY, None)
    if state is not None:
        return state
    problem = None
    try:
        workload = workload_of(item)
    except WorkloadError as exc:
        workload, problem = None, str(exc)
    if problem is not None:  # failed outside the except block: the message alone, no exception chain
        pytest.fail(problem, pytrace=False)
    if workload is None:
        pytest.fail(f"{item.nodeid}: vllm_profile needs @pytest.mark.{MARKER}(model=...)", pytrace=False)
    state = item.stash[ITEM_KEY] = ItemState(workload)
    return state
