"""Advice matches the cause (issue 15 item 5): repeats of a batched workload that differ in step
count are told to compare decode steps only, not to set the sampling defaults they already have.

Against `recorded_trace_double` (tests/support/vllm_double.py) serving two REAL H100 traces in turn: the
seed workload (10 token steps) for repeat 0 and the batch-4 workload (11) for repeat 1 -- the
step-count difference a batched workload shows between repeats on a real server.
"""

from __future__ import annotations

import pytest

from support.double_sessions import load_results, run
from support.vllm_double import DATA, DOUBLE_MODEL, RecordedTraceDouble

SEED = DATA / "h100-seed-rep0.rank0.pt.trace.json.gz"
BATCH4 = DATA / "h100-batch4-rep0.rank0.pt.trace.json.gz"


def _batched_test(extra: str = "") -> str:
    return f"""
import pytest

@pytest.mark.vllm_workload(model="{DOUBLE_MODEL}", max_tokens=10, warmup_requests=0, repeats=2,
                           prompts=["a", "b", "c", "d"]{extra})
def test_batch(vllm_profile):
    pass
"""


def test_batched_repeats_with_different_step_counts_are_told_to_compare_decode_steps(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    pytester.makepyfile(test_workload=_batched_test())
    recorded_trace_double.serve_in_turn(SEED, BATCH4)
    result = run(pytester, recorded_trace_double)
    result.assert_outcomes(errors=1)
    (test,) = load_results(pytester).tests
    assert "differ in token_steps: 10 vs 11" in test.message
    assert 'compare_step_kinds=["decode"]' in test.message
    assert "use temperature=0" not in test.message  # the marker already has the deterministic defaults
    assert "already deterministic (temperature=0, ignore_eos=True, max_tokens=10)" in test.message


def test_non_zero_temperature_is_named_as_the_cause(
    pytester: pytest.Pytester, recorded_trace_double: RecordedTraceDouble
) -> None:
    pytester.makepyfile(test_workload=_batched_test(", temperature=0.7"))
    recorded_trace_double.serve_in_turn(SEED, BATCH4)
    result = run(pytester, recorded_trace_double)
    result.assert_outcomes(errors=1)
    (test,) = load_results(pytester).tests
    assert "set temperature=0 (it is 0.7) in the vllm_workload marker" in test.message
