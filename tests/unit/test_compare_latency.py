"""The verdict on latency, throughput and step overhead (issue 12), on built inputs.

Timed passes are built from made-up client timestamps through `latency.run_latency` (the same
path the real timed pass takes); summaries are the real H100 seed traces' (tests/data), with
their step overhead scaled where a test needs a host-side slowdown.
"""

from __future__ import annotations

import msgspec
import pytest

from pytest_vllm_profile.analysis import summarize_path
from pytest_vllm_profile.comparator import Tolerances, compare_summaries
from pytest_vllm_profile.latency import LoadShape, RequestTiming, TimedPassResult, run_latency
from pytest_vllm_profile.summary import ProfileSummary
from support.paths import DATA


def timed(ttft_ms: float, gap_ms: float, tokens: int = 10, repeats: int = 3, jitter: float = 0.01) -> TimedPassResult:
    """A timed pass of one request per repeat: TTFT, then `tokens - 1` gaps; repeat i is (1 + i*jitter) slower."""
    runs = []
    for i in range(repeats):
        f = 1 + i * jitter
        chunks = [ttft_ms * f / 1e3 + k * gap_ms * f / 1e3 for k in range(tokens)]
        timing = RequestTiming(sent_s=0.0, token_chunk_s=tuple(chunks), prompt_tokens=7, output_tokens=tokens)
        runs.append(run_latency(i, [timing], duration_s=chunks[-1] + 0.001))
    return TimedPassResult(shape=LoadShape(max_tokens=tokens, repeats=repeats), runs=tuple(runs))


@pytest.fixture(scope="module")
def seed() -> ProfileSummary:
    return summarize_path(DATA / "h100-seed-rep0.rank0.pt.trace.json.gz")


def with_decode_overhead(summary: ProfileSummary, add_us: float) -> ProfileSummary:
    """The summary with `add_us` more host time per decode step: wall and period grow, idle grows, busy stays."""
    over = dict(summary.overhead_by_kind())
    d = over["decode"]
    wall = d.median_wall_us + add_us
    over["decode"] = msgspec.structs.replace(
        d,
        median_wall_us=wall,
        median_period_us=(d.median_period_us or 0) + add_us,
        median_gpu_idle_us=(d.median_gpu_idle_us or 0) + add_us,
        gpu_idle_fraction=((d.median_gpu_idle_us or 0) + add_us) / wall,
    )
    # ... and in each decode step, which the comparison judges from (a real overhead shows in every step)
    steps = [
        s
        if s.kind != "decode"
        else msgspec.structs.replace(
            s,
            wall_time_us=s.wall_time_us + add_us,
            period_us=None if s.period_us is None else s.period_us + add_us,
            gpu_idle_us=None if s.gpu_idle_us is None else s.gpu_idle_us + add_us,
        )
        for s in summary.steps
    ]
    return msgspec.structs.replace(summary, step_overhead=over, steps=steps)


def test_same_latency_passes_and_is_compared(seed: ProfileSummary) -> None:
    result = compare_summaries(seed, seed, Tolerances(), baseline_timed=timed(50, 7), candidate_timed=timed(50, 7.05))
    assert result.verdict == "pass", result.explain()
    assert not [n for n in result.notes if "latency not compared" in n]


def test_slower_tokens_fail_naming_tpot_itl_and_throughput_with_baseline_candidate_and_noise(
    seed: ProfileSummary,
) -> None:
    candidate = with_decode_overhead(seed, 3000.0)  # +3 ms of host time per decode step
    result = compare_summaries(
        seed, candidate, Tolerances(), baseline_timed=timed(50, 7), candidate_timed=timed(50, 10)
    )
    assert result.verdict == "fail"
    by_metric = {f.metric: f for f in result.regressions}
    for metric in (
        "latency.tpot_ms.p50",
        "latency.tpot_ms.p90",
        "latency.itl_ms.p50",
        "latency.e2e_ms.p50",
        "throughput.output_tokens_per_s",
        "step.decode.wall_us",
        "step.decode.period_us",
        "step.decode.gpu_idle_us",
    ):
        assert metric in by_metric, (metric, sorted(by_metric))
    tpot = by_metric["latency.tpot_ms.p50"]
    assert tpot.baseline == pytest.approx(7, rel=0.03) and tpot.candidate == pytest.approx(10, rel=0.03)
    assert tpot.message.startswith("TPOT p50 7.") and "ms" in tpot.message
    assert "noise 2.0%" in tpot.allowed  # run-to-run spread of the run medians: 1 % jitter x 2 steps
    throughput = by_metric["throughput.output_tokens_per_s"]
    assert throughput.candidate < throughput.baseline and "tok/s" in throughput.message
    assert "latency.ttft_ms.p50" not in by_metric  # TTFT did not move
    # the trace attributes it: GPU kernel time per step unchanged, the period grew -> the host
    attribution = [n for n in result.notes if n.startswith("attribution: ")]
    assert len(attribution) == 1
    assert "GPU kernel time per decode step +0.0 %" in attribution[0]
    assert "the time went to the CPU between kernels" in attribution[0]


def test_noisy_timed_repeats_widen_the_tolerance(seed: ProfileSummary) -> None:
    # repeats 20 % apart: 3 x 40 % spread tolerates the +30 % that fails with steady repeats
    steady = compare_summaries(seed, seed, Tolerances(), baseline_timed=timed(50, 7), candidate_timed=timed(50, 9.1))
    noisy = compare_summaries(
        seed, seed, Tolerances(), baseline_timed=timed(50, 7, jitter=0.2), candidate_timed=timed(50, 9.1, jitter=0.2)
    )
    assert "latency.tpot_ms.p50" in {f.metric for f in steady.regressions}
    assert "latency.tpot_ms.p50" not in {f.metric for f in noisy.regressions}


def test_gpu_slowdown_is_attributed_to_the_gpu_work(seed: ProfileSummary) -> None:
    candidate = msgspec.structs.replace(
        seed,
        step_kinds={
            k: msgspec.structs.replace(v, median_op_time_us=v.median_op_time_us * 1.4)
            for k, v in seed.step_kinds.items()
        },
    )
    candidate = with_decode_overhead(candidate, 0.4 * seed.step_kinds["decode"].median_op_time_us)
    result = compare_summaries(
        seed, candidate, Tolerances(), baseline_timed=timed(50, 7), candidate_timed=timed(50, 9.8)
    )
    attribution = next(n for n in result.notes if n.startswith("attribution: "))
    assert "GPU kernel time per decode step +40.0 %" in attribution
    assert "the GPU work per step grew with it" in attribution


def test_old_baseline_without_timed_pass_or_overhead_is_a_note_not_a_failure(seed: ProfileSummary) -> None:
    old = msgspec.structs.replace(seed, step_overhead=msgspec.UNSET)
    result = compare_summaries(old, seed, Tolerances(), baseline_timed=None, candidate_timed=timed(50, 7))
    assert result.verdict == "pass", result.explain()
    assert any("latency not compared: the baseline has no timed pass" in n for n in result.notes)
    assert any("step overhead" in n and "not compared" in n for n in result.notes)


def test_single_step_kinds_are_not_compared_for_overhead(seed: ProfileSummary) -> None:
    over = dict(seed.overhead_by_kind())
    over["prefill"] = msgspec.structs.replace(over["prefill"], median_period_us=over["prefill"].median_period_us * 3)
    result = compare_summaries(seed, msgspec.structs.replace(seed, step_overhead=over), Tolerances())
    assert result.verdict == "pass"
    assert any(n.startswith("prefill step overhead not compared: 1 step(s)") for n in result.notes)


def test_bunched_client_reads_skip_ttft_tpot_itl_but_not_e2e(seed: ProfileSummary) -> None:
    # baseline tokens all read at once (gaps 0.001 ms against a 6.8 ms decode step period); the
    # candidate's first token 40 ms later, which would fail TTFT if its time were a token's time
    result = compare_summaries(
        seed, seed, Tolerances(), baseline_timed=timed(50, 0.001), candidate_timed=timed(90, 3.0)
    )
    failed = {f.metric for f in result.regressions}
    assert not {m for m in failed if m.startswith(("latency.ttft", "latency.tpot", "latency.itl"))}, failed
    assert "latency.e2e_ms.p50" in failed  # 67 ms more per request is still judged
    assert any(
        n.startswith("token latency (TTFT, TPOT, ITL) not compared: the baseline's median ITL 0.00 ms")
        for n in result.notes
    ), result.notes


def test_the_same_ttft_rise_fails_when_tokens_were_read_one_by_one(seed: ProfileSummary) -> None:
    result = compare_summaries(seed, seed, Tolerances(), baseline_timed=timed(50, 6.8), candidate_timed=timed(90, 6.8))
    assert {"latency.ttft_ms.p50", "latency.ttft_ms.p90"} <= {f.metric for f in result.regressions}
    assert not any("not compared" in n and "TTFT" in n for n in result.notes), result.notes
