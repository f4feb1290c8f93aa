"""The statistical decision rule (significance.py) and how the comparison uses it.

Synthetic draws test the rule's stated error rate; the real traces (tests/data H100 pairs, the
six real vLLM CPU repeats in tests/data/cpu-reps) test the verdicts people get.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from pytest_vllm_profile.analysis import summarize_path
from pytest_vllm_profile.codec import decode_json, encode_json
from pytest_vllm_profile.comparator import Tolerances, compare_summaries
from pytest_vllm_profile.repeats import RepeatSpread, combine_repeats
from pytest_vllm_profile.significance import DecisionRule, RepeatSamples, compare_samples, relative_noise
from pytest_vllm_profile.summary import ProfileSummary
from support.summaries import slower_decode_steps

RNG_SEED = 20261202


def _draw(rng: np.random.Generator, level: float, sigma: float, repeats: int = 3, steps: int = 9) -> RepeatSamples:
    return RepeatSamples([rng.normal(level, sigma * level, steps) for _ in range(repeats)])


def test_a_known_3_percent_shift_is_a_regression_with_its_estimate_and_interval() -> None:
    rng = np.random.default_rng(RNG_SEED)
    base, cand = _draw(rng, 6000.0, 0.002), _draw(rng, 6000.0 * 1.03, 0.002)
    decision = compare_samples(base, cand)
    assert decision.outcome == "regression"
    assert decision.estimate == pytest.approx(0.03, abs=0.002)
    assert decision.low is not None and decision.high is not None
    assert decision.low < decision.estimate < decision.high and decision.low > 0.02
    assert decision.threshold == pytest.approx(0.01) and decision.p_value is not None and decision.p_value < 1e-6
    assert (decision.baseline_n, decision.candidate_n, decision.baseline_repeats) == (27, 27, 3)
    faster = compare_samples(cand, base)
    assert faster.outcome == "improvement" and faster.estimate is not None and faster.estimate < 0


def test_a_shift_below_the_minimum_effect_is_no_change_even_when_significant() -> None:
    rng = np.random.default_rng(RNG_SEED)
    base, cand = _draw(rng, 6000.0, 0.001), _draw(rng, 6000.0 * 1.005, 0.001)
    assert compare_samples(base, cand).outcome == "no-change"  # +0.5 % < 1 %
    strict = compare_samples(base, cand, DecisionRule(min_effect=0.002))
    assert strict.outcome == "regression"


def test_identical_distributions_are_flagged_at_most_at_the_stated_rate() -> None:
    # min effect and noise threshold off, so only the significance test stands between noise and a
    # verdict: over 300 seeded draws it may fire at about alpha, not more.
    rng = np.random.default_rng(RNG_SEED)
    rule = DecisionRule(alpha=0.05, min_effect=0.0, noise_multiplier=0.0, resamples=200)
    flagged = sum(
        compare_samples(_draw(rng, 100.0, 0.05), _draw(rng, 100.0, 0.05), rule).outcome != "no-change"
        for _ in range(300)
    )
    assert flagged / 300 <= 0.08, flagged
    # the defaults (1 % minimum effect, 4 sigma of noise) never fire on 5 %-noisy identical draws
    assert not any(
        compare_samples(_draw(rng, 100.0, 0.05), _draw(rng, 100.0, 0.05)).outcome != "no-change" for _ in range(100)
    )


def test_too_few_samples_is_its_own_outcome() -> None:
    decision = compare_samples([100.0, 101.0, 99.0, 100.0], [150.0] * 9)
    assert decision.outcome == "too-few-samples" and decision.estimate is None
    assert "4 vs 9 samples" in decision.interval_words()


def test_the_verdict_is_deterministic() -> None:
    rng = np.random.default_rng(RNG_SEED)
    base, cand = _draw(rng, 1000.0, 0.05), _draw(rng, 1080.0, 0.05)
    assert compare_samples(base, cand) == compare_samples(base, cand)


def test_run_to_run_level_shifts_widen_the_interval_through_the_repeats() -> None:
    # Same pooled values; as three repeats whose levels differ the two-level bootstrap sees that noise.
    rng = np.random.default_rng(RNG_SEED)
    groups = [rng.normal(level, 1.0, 9) for level in (95.0, 100.0, 105.0)]
    cand = RepeatSamples([g + 3.0 for g in groups])
    rule = DecisionRule(noise_multiplier=0.0, min_effect=0.0)
    as_repeats = compare_samples(RepeatSamples(groups), cand, rule)
    pooled = compare_samples([v for g in groups for v in g], list(cand), rule)
    assert as_repeats.low is not None and pooled.low is not None
    assert as_repeats.high - as_repeats.low > pooled.high - pooled.low  # type: ignore[operator]


def test_noise_in_the_samples_raises_the_threshold_cpu_versus_gpu() -> None:
    rng = np.random.default_rng(RNG_SEED)
    gpu = compare_samples(_draw(rng, 6000.0, 0.001), _draw(rng, 6000.0, 0.001))
    cpu = compare_samples(_draw(rng, 1300.0, 0.07), _draw(rng, 1300.0, 0.07))
    assert gpu.threshold == pytest.approx(0.01)  # the minimum effect rules on a quiet GPU
    assert cpu.threshold > 0.2  # ~4 x 7 %
    assert relative_noise(RepeatSamples([[1.0, 1.0, 1.0]])) == 0.0


def test_bad_samples_and_rules_are_refused_with_the_cause() -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        compare_samples([1.0] * 5 + [float("nan")], [1.0] * 6)
    with pytest.raises(ValueError, match="alpha"):
        DecisionRule(alpha=1.5)


# ------------------------------------------------------------------ comparisons of real traces
@pytest.fixture(scope="module")
def cpu_reps(data_dir: Path) -> list[ProfileSummary]:
    return [ProfileSummary.load(data_dir / "cpu-reps" / f"cpu-rep{i}.summary.json") for i in range(6)]


@pytest.fixture(scope="module")
def h100_seed(data_dir: Path) -> tuple[ProfileSummary, ProfileSummary]:
    return (
        summarize_path(data_dir / "h100-seed-rep0.rank0.pt.trace.json.gz"),
        summarize_path(data_dir / "h100-seed-rep1.rank0.pt.trace.json.gz"),
    )


def test_real_unchanged_cpu_reruns_pass_with_three_repeats_a_side(cpu_reps: list[ProfileSummary]) -> None:
    # The CPU case: the median decode step of these six real unchanged runs spans 1248-1535 µs
    # (23 %); the samples' own noise sets the threshold, no tolerance is hand-set.
    base, base_spread = combine_repeats(cpu_reps[:3])
    cand, cand_spread = combine_repeats(cpu_reps[3:])
    result = compare_summaries(base, cand, Tolerances(), base_spread, cand_spread)
    assert result.verdict == "pass", result.explain()
    # prefill: one step per repeat, 3 vs 3 samples: reported as undecided, never a silent pass or fail
    assert result.too_few_samples == ["step.prefill.op_time_us", "total_kernel_us"]
    assert "UNDECIDED (too few samples): step.prefill.op_time_us" in result.explain()
    # a real 50 % slowdown of the candidate's decode steps is beyond that noise and fails
    slow, slow_spread = combine_repeats([slower_decode_steps(s, 1.5) for s in cpu_reps[3:]])
    failed = compare_summaries(base, slow, Tolerances(), base_spread, slow_spread)
    step = next(f for f in failed.regressions if f.metric == "step.decode.op_time_us")
    assert step.estimate_pct is not None and step.estimate_pct > 30 and step.threshold_pct > 10  # type: ignore[operator]


def test_real_h100_3_percent_decode_slowdown_fails_with_estimate_interval_and_threshold(
    h100_seed: tuple[ProfileSummary, ProfileSummary],
) -> None:
    rep0, rep1 = h100_seed
    assert compare_summaries(rep0, rep1).verdict == "pass"
    result = compare_summaries(rep0, slower_decode_steps(rep1, 1.03))
    assert result.verdict == "fail"
    step = result.regressions[0]
    assert step.metric == "step.decode.op_time_us"
    assert step.estimate_pct == pytest.approx(3.0, abs=0.2)
    assert step.interval_pct is not None and step.interval_pct[0] > 2.5 and step.interval_pct[1] < 3.5
    assert step.threshold_pct == pytest.approx(1.0) and step.samples == [9, 9]
    assert f"shift {step.estimate_pct:+.2f}%" in step.message and "99% interval +2." in step.message
    assert "threshold ±1.00%" in step.message


def test_real_combined_baseline_keeps_every_repeats_samples_and_round_trips(
    h100_seed: tuple[ProfileSummary, ProfileSummary],
) -> None:
    _, spread = combine_repeats(list(h100_seed))
    assert isinstance(spread.step_samples_us, dict) and [len(r) for r in spread.step_samples_us["decode"]] == [9, 9]
    assert isinstance(spread.layer_samples_us, dict) and len(spread.layer_samples_us["decode"][0][0]) == 36
    assert decode_json(encode_json(spread), RepeatSpread) == spread


def test_real_baseline_without_samples_falls_back_to_the_tolerance_with_a_note(
    h100_seed: tuple[ProfileSummary, ProfileSummary],
) -> None:
    median, spread = combine_repeats(list(h100_seed))
    old = msgspec.structs.replace(spread, step_samples_us=msgspec.UNSET, layer_samples_us=msgspec.UNSET)
    assert "step_samples_us" not in encode_json(old)  # what a 0.1.0 baseline looks like
    result = compare_summaries(median, slower_decode_steps(h100_seed[1], 1.03), Tolerances(), baseline_spread=old)
    assert result.verdict == "fail"
    assert result.regressions[0].metric == "step.decode.op_time_us"
    assert result.regressions[0].estimate_pct is msgspec.UNSET and "allowed ±2.0%" in result.regressions[0].message
    assert any("no per-step samples" in n for n in result.notes)


def test_comparer_time_judges_latency_samples_through_the_shared_signature(
    h100_seed: tuple[ProfileSummary, ProfileSummary],
) -> None:
    # The contract helper "wire" calls for latency metrics: _Comparer.time(..., baseline_samples=,
    # candidate_samples=). Real-shaped per-request TPOT samples (ms), the candidate delayed by 5 %.
    from pytest_vllm_profile.comparator import _Comparer

    rng = np.random.default_rng(RNG_SEED)
    base = list(rng.normal(12.0, 0.1, 24))
    comparer = _Comparer(h100_seed[0], h100_seed[1], Tolerances(), None, None)
    comparer.time(
        "latency.tpot_ms.median",
        "TPOT median",
        float(np.median(base)),
        float(np.median(base)) * 1.05,
        0.0,
        0.0,
        unit="ms",
        baseline_samples=base,
        candidate_samples=[v * 1.05 for v in base],
    )
    finding = comparer.regressions[-1]
    assert finding.metric == "latency.tpot_ms.median" and finding.samples == [24, 24]
    assert finding.estimate_pct == pytest.approx(5.0, abs=0.5) and "TPOT median" in finding.message
    comparer.time(
        "latency.ttft_ms.median",
        "TTFT median",
        50.0,
        80.0,
        0.0,
        0.0,
        unit="ms",
        baseline_samples=[50.0, 51.0],
        candidate_samples=[80.0, 81.0],
    )
    assert comparer.too_few_samples == ["latency.ttft_ms.median"]  # reported, not failed
    assert not any(f.metric == "latency.ttft_ms.median" for f in comparer.regressions)
