"""Marker arguments of the timed pass and load shape (issue 12): validated like the others."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_vllm_profile.errors import WorkloadError
from pytest_vllm_profile.workload import Workload


def _wl(**kw: Any) -> Workload:
    return Workload.from_marker_kwargs("tests/t.py::test_x", (), {"model": "m", **kw})


def test_defaults_keep_todays_workload() -> None:
    wl = _wl()
    assert (wl.timed_repeats, wl.concurrency, wl.input_len, wl.api, wl.request_rate, wl.with_stack) == (
        None,
        1,
        None,
        "completions",
        None,
        False,
    )
    assert wl.server_key() == Workload(model="m").server_key()


def test_load_shape_carries_the_marker_arguments() -> None:
    wl = _wl(concurrency=4, max_tokens=16, api="chat", request_rate=2, arrival="constant", seed=3, timed_repeats=5)
    shape = wl.load_shape(repeats=5)
    assert (shape.api, shape.concurrency, shape.max_tokens, shape.request_rate, shape.arrival, shape.seed) == (
        "chat",
        4,
        16,
        2.0,
        "constant",
        3,
    )
    assert shape.num_requests == 4  # max(concurrency, prompts) by default
    assert shape.repeats == 5 and shape.ignore_eos is True and shape.warmup_requests == 1
    assert _wl(num_requests=7).load_shape(1).num_requests == 7


def test_with_stack_needs_its_own_server() -> None:
    assert _wl(with_stack=True).server_key() != _wl().server_key()


@pytest.mark.parametrize(
    ("arg", "value", "why"),
    [
        ("timed_repeats", -1, "integer >= 0"),
        ("timed_repeats", True, "integer >= 0"),
        ("concurrency", 0, "positive integer"),
        ("concurrency", 1.5, "positive integer"),
        ("num_requests", 0, "positive integer"),
        ("input_len", 0, "positive integer"),
        ("input_len", "128", "positive integer"),
        ("api", "completion", "one of"),
        ("request_rate", 0, "> 0"),
        ("request_rate", "fast", "> 0"),
        ("arrival", "burst", "one of"),
        ("seed", 1.0, "integer"),
        ("with_stack", "yes", "True or False"),
    ],
)
def test_bad_values_name_the_test_and_the_argument(arg: str, value: Any, why: str) -> None:
    with pytest.raises(WorkloadError, match=rf"^tests/t.py::test_x: vllm_workload {arg}=.*{why}"):
        _wl(**{arg: value})


def test_typo_is_an_unknown_argument() -> None:
    with pytest.raises(WorkloadError, match="unknown vllm_workload argument.*concurency"):
        _wl(concurency=2)


def test_input_len_and_prompts_exclude_each_other() -> None:
    with pytest.raises(WorkloadError, match="input_len= cannot be combined with prompts="):
        _wl(input_len=32, prompts=["a"])
    assert _wl(input_len=32).input_len == 32
