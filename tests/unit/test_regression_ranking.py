"""Regressions are ranked structural changes first, then by their share of the step-time change,
and the terminal lists every one of them (issue 15 item 8).

Real summaries: the H100 seed workload (10 steps) against the batch-4 workload (11 steps), both
Qwen3-8B on one H100 (tests/data).
"""

from __future__ import annotations

import pytest

from pytest_vllm_profile.analysis import summarize_path
from pytest_vllm_profile.comparator import Tolerances, compare_summaries
from pytest_vllm_profile.comparison import Comparison
from pytest_vllm_profile.metric_judge import is_structural
from pytest_vllm_profile.report.terminal import render_terminal_summary
from pytest_vllm_profile.results import RunResults, TestResult
from support.paths import DATA


@pytest.fixture(scope="module")
def seed_vs_batch4() -> Comparison:
    seed = summarize_path(DATA / "h100-seed-rep0.rank0.pt.trace.json.gz")
    batch4 = summarize_path(DATA / "h100-batch4-rep0.rank0.pt.trace.json.gz")
    assert (seed.token_steps, batch4.token_steps) == (10, 11)
    return compare_summaries(seed, batch4, Tolerances())


def test_structural_changes_rank_before_kernel_changes_of_larger_time(seed_vs_batch4: Comparison) -> None:
    regressions = seed_vs_batch4.regressions
    assert regressions[0].metric == "token_steps"
    assert regressions[0].message == "token steps (engine steps) changed 10 -> 11 (counts must match exactly)"
    structural = [is_structural(f) for f in regressions]
    first_other = structural.index(False)
    assert all(structural[:first_other]) and not any(structural[first_other:])
    rest = [f.contribution_us for f in regressions[first_other:]]
    assert rest == sorted(rest, reverse=True) and rest[0] > 1000  # a new GEMM of 2.6 ms per step


def test_explain_and_terminal_show_every_regression(seed_vs_batch4: Comparison) -> None:
    regressions = seed_vs_batch4.regressions
    assert len(regressions) > 5
    text = seed_vs_batch4.explain()
    assert "more regressions" not in text
    assert all(f"REGRESSION {f.message}" in text for f in regressions)
    result = TestResult(
        nodeid="tests/test_perf.py::test_batch", outcome="failed", verdict="fail", comparison=seed_vs_batch4
    )
    lines = render_terminal_summary(RunResults(tests=[result]))
    numbered = [line for line in lines if line.startswith("      ") and ". " in line]
    assert len(numbered) >= len(regressions)
    assert numbered[0] == f"      1. {regressions[0].message}"
    assert not any("more" in line for line in lines)
