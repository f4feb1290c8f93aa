"""The default tolerances on real H200 data: five fresh boots of one config, and two real regressions.

tests/data/h200-seed-reps (README): the seed test (Qwen3-8B shape, 36 layers, 7-token prompt,
max_tokens=10) run by the plugin on one H200 with vLLM 0.26.0, a fresh server each run: three
profiled repeats (the rank0 traces) and three timed repeats (the timed pass) per run. run1 recorded
the baseline, run2 is the re-run that failed on TTFT (+25.3 %) under the 1 ms latency floor.
The eager and triton runs (--enforce-eager, --attention-backend=TRITON_ATTN) kept only their
results file: their combined summary and timed pass. Compared as the plugin compares a test
(workload_profile.check_baseline): the repeats combined (`combine_repeats`), then
`compare_summaries` with both timed passes.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from typing import Any

import msgspec
import pytest

from pytest_vllm_profile.analysis import summarize_path
from pytest_vllm_profile.codec import from_builtins
from pytest_vllm_profile.comparator import Tolerances, compare_summaries
from pytest_vllm_profile.comparison import Comparison
from pytest_vllm_profile.errors import VllmProfileError
from pytest_vllm_profile.latency import TimedPassResult
from pytest_vllm_profile.repeats import RepeatSpread, combine_repeats
from pytest_vllm_profile.summary import ProfileSummary
from support.paths import H200_SEED_RUNS

Run = tuple[ProfileSummary, RepeatSpread | None, TimedPassResult]


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return json.loads((H200_SEED_RUNS / "h200-seed-runs.json").read_text())


@pytest.fixture(scope="module")
def runs(recorded: dict[str, Any]) -> list[Run]:
    """Each same-config run as the plugin holds it: combined summary, spread, timed pass."""
    out: list[Run] = []
    for run in recorded["runs"]:
        reps = [summarize_path(H200_SEED_RUNS / name) for name in sorted(run["traces"])]
        summary, spread = combine_repeats(reps)
        out.append((summary, spread, from_builtins(run["timed_pass"], TimedPassResult)))
    return out


def regression_run(recorded: dict[str, Any], name: str) -> tuple[ProfileSummary, TimedPassResult]:
    d = recorded["detection"][name]
    return from_builtins(d["summary"], ProfileSummary), from_builtins(d["timed_pass"], TimedPassResult)


def compare(base: Run, cand: Run | tuple[ProfileSummary, TimedPassResult], tol: Tolerances) -> Comparison:
    if len(cand) == 2:
        c_summary, c_spread, c_timed = cand[0], None, cand[1]
    else:
        c_summary, c_spread, c_timed = cand
    return compare_summaries(base[0], c_summary, tol, base[1], c_spread, None, base[2], c_timed)


def regressed(comparison: Comparison) -> set[str]:
    return {f.metric for f in comparison.regressions}


def test_the_data_is_five_runs_of_three_repeats(recorded: dict[str, Any], runs: list[Run]) -> None:
    assert [r["step"] for r in recorded["runs"]] == ["torch-record", "torch-rerun", "calib1", "calib2", "calib3"]
    for summary, _, timed in runs:
        assert summary.token_steps == 10 and summary.layer_count == 36 and summary.timing_domain == "gpu"
        assert len(timed.runs) == 3


def test_record_to_rerun_passes_the_default_tolerances(runs: list[Run]) -> None:
    comparison = compare(runs[0], runs[1], Tolerances())
    assert comparison.verdict == "pass", comparison.explain()
    # ... and TTFT was judged (not skipped): it moved +25.3 % at p50, inside the host floor
    ttft = runs[1][2].distribution("ttft_ms")
    base_ttft = runs[0][2].distribution("ttft_ms")
    assert ttft is not None and base_ttft is not None
    assert ttft.percentile(50) - base_ttft.percentile(50) == pytest.approx(4.13, abs=0.01)


def test_without_the_host_floor_the_rerun_is_the_false_alarm_seen_on_the_gpu(runs: list[Run]) -> None:
    # The rule before latency_host_floor_ms: TTFT/e2e held to the 1 ms floor like TPOT.
    old = replace(Tolerances(), latency_host_floor_ms=0.0)
    comparison = compare(runs[0], runs[1], old)
    assert comparison.verdict == "fail"
    assert regressed(comparison) == {"latency.ttft_ms.p50", "latency.ttft_ms.p90"}
    message = next(f.message for f in comparison.regressions if f.metric == "latency.ttft_ms.p50")
    assert message.startswith("TTFT p50 16.3 ms -> 20.5 ms (+25.31%")


def test_every_ordered_pair_of_the_five_boots_passes(runs: list[Run]) -> None:
    failed = {
        (i + 1, j + 1): comparison.explain()
        for i, j in itertools.permutations(range(len(runs)), 2)
        if (comparison := compare(runs[i], runs[j], Tolerances())).verdict == "fail"
    }
    assert failed == {}


def test_eager_run_fails_on_tpot_and_ttft_against_every_boot(recorded: dict[str, Any], runs: list[Run]) -> None:
    eager = regression_run(recorded, "eager")
    for base in runs:
        comparison = compare(base, eager, Tolerances())
        metrics = regressed(comparison)
        assert {"latency.tpot_ms.p50", "latency.ttft_ms.p50", "latency.e2e_ms.p50"} <= metrics
        assert "step.decode.wall_us" in metrics  # the host between kernels, seen in the profile too
        tpot = next(f for f in comparison.regressions if f.metric == "latency.tpot_ms.p50")
        assert tpot.message.startswith("TPOT p50") and (tpot.delta_pct or 0) > 200


def test_triton_attention_fails_on_its_kernels_and_ttft(recorded: dict[str, Any], runs: list[Run]) -> None:
    triton = regression_run(recorded, "triton")
    record = compare(runs[0], triton, Tolerances())
    assert any("FlashAttnFwdSm90" in k for k in record.missing_kernel_names)
    assert any("kernel_unified_attention" in k for k in record.new_kernel_names)
    # TTFT +18.3 ms (+112 %) is far past the 8 ms host floor; TPOT got faster (4.79 vs 5.06 ms)
    assert {"latency.ttft_ms.p50", "latency.e2e_ms.p50"} <= regressed(record)
    assert "latency.tpot_ms.p50" not in regressed(record)
    for base in runs:  # the profile fails against every boot, the attention kernels named
        assert compare(base, triton, Tolerances()).verdict == "fail"


def test_host_floor_spares_tpot_on_run1_with_its_tpot_slowed(runs: list[Run]) -> None:
    # TPOT keeps the 1 ms floor: run1's own timed pass with every TPOT/ITL 1.5 ms longer (+30 %)
    # fails even under a 100 ms host floor, which TTFT and e2e (left as measured) do not reach.
    base = runs[0]
    timed = base[2]
    slower_runs = tuple(with_slower_tokens(run, 1.5) for run in timed.runs)
    slower = TimedPassResult(shape=timed.shape, runs=slower_runs, prompt_tokens=timed.prompt_tokens)
    comparison = compare(base, (base[0], base[1], slower), Tolerances(latency_host_floor_ms=100.0))
    assert "latency.tpot_ms.p50" in regressed(comparison)
    assert not {m for m in regressed(comparison) if m.startswith(("latency.ttft", "latency.e2e"))}


def with_slower_tokens(run: Any, extra_ms: float) -> Any:
    requests = tuple(
        msgspec.structs.replace(r, tpot_ms=r.tpot_ms + extra_ms, itl_ms=tuple(v + extra_ms for v in r.itl_ms))
        for r in run.requests
    )
    return msgspec.structs.replace(run, requests=requests)


def test_a_negative_host_floor_is_refused() -> None:
    with pytest.raises(VllmProfileError, match="latency_host_floor_ms"):
        Tolerances(latency_host_floor_ms=-1.0)
