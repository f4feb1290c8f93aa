"""Realistic `RunResults` for the report tests, built from REAL summaries of tests/data traces.

base-rep0 / base-rep1 are two real profiles of one workload on one H100 server. Compared with
the default tolerances they pass; compared with a 0.1 % tolerance (no floors) their real
run-to-run noise becomes real regressions — a failing comparison without invented numbers.
The drift case removes one kernel from rep1's summary (so: simulated, and named so).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

from pytest_vllm_profile.analysis import summarize_path
from pytest_vllm_profile.comparator import Tolerances, compare_summaries
from pytest_vllm_profile.results import RequestResult, RunResults, TestResult
from pytest_vllm_profile.summary import ProfileSummary
from support.paths import DATA

REP0 = DATA / "base-rep0.pt.trace.json.gz"
REP1 = DATA / "base-rep1.pt.trace.json.gz"
TIGHT = Tolerances(
    rel_time=0.001,
    abs_floor_us=0.0,
    step_abs_floor_us=0.0,
    total_abs_floor_us=0.0,
    kernel_step_share=0.0,
    min_effect=0.001,
    sample_noise_multiplier=0.0,
)

FAIL_ID = "tests/gpu/test_qwen3.py::test_decode[tight<0.1%>|x]"
PASS_ID = "tests/gpu/test_qwen3.py::test_decode[default]"
DRIFT_ID = "tests/gpu/test_qwen3.py::test_decode[simulated_missing_kernel]"
NEW_ID = "tests/gpu/test_qwen3.py::test_new_workload"
ERROR_ID = "tests/gpu/test_qwen3.py::test_server_failed"


@functools.lru_cache(maxsize=1)
def real_summaries() -> tuple[ProfileSummary, ProfileSummary]:
    return summarize_path(REP0), summarize_path(REP1)


def without_kernel(summary: ProfileSummary, short_name: str) -> ProfileSummary:
    """A copy of `summary` missing one kernel (simulated kernel-set drift)."""
    out = copy.deepcopy(summary)
    out.kernels = [k for k in out.kernels if k.short_name != short_name]
    return out


def dropped_kernel() -> str:
    base, _ = real_summaries()
    return base.kernels[3].short_name  # a gemm carrying several % of the step


def real_results(trace_dir: Path | None = None) -> RunResults:
    """Five tests: failing (tight tolerance), passing, drift, no baseline, server error.

    `trace_dir`: where the tests' trace files are copied so links can be checked.
    """
    base, cur = real_summaries()
    traces: list[str] = []
    if trace_dir is not None:
        trace_dir.mkdir(parents=True, exist_ok=True)
        dest = trace_dir / REP1.name
        dest.write_bytes(REP1.read_bytes())
        traces = [str(dest)]
    workload = {
        "model": "/tmp/qwen3-8b-shape",
        "max_tokens": 10,
        "prompts": ["What is the capital of France?"],
        "repeats": 1,
    }
    requests = [RequestResult(latency_s=0.081, prompt_tokens=7, completion_tokens=10)]
    failing = compare_summaries(base, cur, TIGHT)
    passing = compare_summaries(base, cur)
    drifted = without_kernel(cur, dropped_kernel())
    drift = compare_summaries(base, drifted)
    tests = [
        TestResult(
            FAIL_ID,
            "failed",
            "fail",
            failing.explain(),
            workload,
            cur,
            base,
            failing,
            requests,
            traces,
            None,
            False,
            41.5,
        ),
        TestResult(PASS_ID, "passed", "pass", "", workload, cur, base, passing, requests, traces, None, False, 40.2),
        TestResult(
            DRIFT_ID, "failed", "fail", drift.explain(), workload, drifted, base, drift, requests, [], None, False, 40.9
        ),
        TestResult(
            NEW_ID,
            "passed",
            "no-baseline",
            "no baseline yet; run with --update-baselines",
            workload,
            cur,
            None,
            None,
            requests,
            traces,
        ),
        TestResult(
            ERROR_ID, "error", None, "LauncherError: vllm serve exited with code 1 before it was healthy", workload
        ),
    ]
    return RunResults(
        created="2026-01-05T03:17:00Z",
        commit="0123456789abcdef",
        gpu="NVIDIA H100 80GB HBM3",
        vllm_version="0.26.0",
        launcher="process",
        profiler="torch",
        tests=tests,
    )
