"""combine_repeats on REAL repeated H100 profiles (vLLM 0.26, Qwen3-8B shape, tests/data/h100-*).

The step structure must match exactly across repeats; kernels may legitimately differ (copy
placement, cuBLAS tiles chosen by a token count that depends on how vLLM split a batch), and
are then combined over the union and listed as unstable, not rejected.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from pytest_vllm_profile.codec import decode_json, encode_json, from_builtins
from pytest_vllm_profile.errors import AnalysisError
from pytest_vllm_profile.repeats import RepeatSpread, combine_repeats, find_unstable_kernels, kernel_us_per_step
from pytest_vllm_profile.summary import ProfileSummary

DTOH = "Memcpy DtoH (Device -> Pinned)"


def _pair(data_dir: Path, stem: str) -> tuple[ProfileSummary, ProfileSummary]:
    from pytest_vllm_profile.analysis import summarize_path

    return tuple(summarize_path(data_dir / f"{stem}-rep{i}.rank0.pt.trace.json.gz") for i in (0, 1))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def seed_pair(data_dir: Path) -> tuple[ProfileSummary, ProfileSummary]:
    return _pair(data_dir, "h100-seed")


@pytest.fixture(scope="module")
def batch_pair(data_dir: Path) -> tuple[ProfileSummary, ProfileSummary]:
    return _pair(data_dir, "h100-batch4")


def test_real_seed_pair_differs_only_in_copy_placement_and_combines(seed_pair) -> None:
    rep0, rep1 = seed_pair
    # the real difference that used to reject this pair: DtoH copies inside decode steps
    assert rep0.kernel(DTOH).per_step_kind["decode"].count != rep1.kernel(DTOH).per_step_kind["decode"].count
    median, spread = combine_repeats([rep0, rep1])
    assert median.token_steps == 10 and median.layer_count == 36
    assert [s.kind for s in median.steps] == ["prefill"] + ["decode"] * 9
    assert median.step_kinds["decode"].median_op_time_us == pytest.approx(6072.46, abs=0.5)
    assert median.step_kinds["decode"].median_op_time_us == pytest.approx(
        (rep0.step_kinds["decode"].median_op_time_us + rep1.step_kinds["decode"].median_op_time_us) / 2
    )
    # a memory op's changed placement is not an unstable kernel; its counts still combine
    assert spread.unstable_kernels == []
    dtoh = median.kernel(DTOH)
    assert dtoh.count == 20
    assert dtoh.per_step_kind["decode"].count == 13  # median of 14 and 12
    assert 0 < spread.step_op_time_us["decode"] < 0.001
    assert median.notes[-1] == "median of 2 repeats"


def test_real_batch_pair_combines_over_the_union_and_lists_unstable_kernels(batch_pair) -> None:
    rep0, rep1 = batch_pair
    assert [(s.prefill_requests, s.decode_requests) for s in rep0.steps[:2]] == [(2, 0), (2, 2)]
    assert [(s.prefill_requests, s.decode_requests) for s in rep1.steps[:2]] == [(3, 0), (1, 3)]
    median, spread = combine_repeats([rep0, rep1])
    assert median.token_steps == 11 and median.layer_count == 36
    assert [s.kind for s in median.steps] == ["prefill", "mixed"] + ["decode"] * 9

    only0 = {k.name for k in rep0.kernels} - {k.name for k in rep1.kernels}
    only1 = {k.name for k in rep1.kernels} - {k.name for k in rep0.kernels}
    assert len(only0) == 3 and len(only1) == 9
    unstable = set(spread.unstable_kernels)
    assert only0 | only1 <= unstable
    split_k = next(n for n in unstable if "splitKreduce" in n)  # in both, 36 vs 72 launches per mixed step
    assert split_k not in only0 | only1
    assert len(unstable) == 14
    assert all(median.kernel(n) is None or median.kernel(n).kernel_class != "memory" for n in unstable)
    # a kernel present in one repeat of two counts 0 in the other: half its launches and time
    gemm = next(n for n in only1 if n.startswith("nvjet_sm90_tst_192x32"))
    assert median.kernel(gemm).count == 18
    assert median.kernel(gemm).total_us == pytest.approx(rep1.kernel(gemm).total_us / 2)
    assert spread.kernel_us_per_step["prefill"][gemm] == pytest.approx(2.0)
    note = next(n for n in median.notes if "differ between the 2 repeats" in n)
    assert note.startswith("14 kernel(s)")
    # decode steps hold the same kernels in both repeats: their medians are plain medians
    decode0, decode1 = kernel_us_per_step(rep0, "decode"), kernel_us_per_step(rep1, "decode")
    decode = kernel_us_per_step(median, "decode")
    assert set(decode) == set(decode0) == set(decode1)
    assert median.step_kinds["decode"].median_op_time_us == pytest.approx(
        (rep0.step_kinds["decode"].median_op_time_us + rep1.step_kinds["decode"].median_op_time_us) / 2
    )
    assert median.total_kernel_us == pytest.approx((rep0.total_kernel_us + rep1.total_kernel_us) / 2)


def test_find_unstable_kernels_is_empty_for_identical_repeats(batch_pair) -> None:
    assert find_unstable_kernels([batch_pair[0], copy.deepcopy(batch_pair[0])]) == []


def test_real_repeats_with_a_different_step_kind_sequence_are_rejected(batch_pair) -> None:
    rep0, _ = batch_pair
    changed = copy.deepcopy(rep0)
    changed.steps[1].kind = "decode"  # same token steps and layers, different kinds
    with pytest.raises(AnalysisError, match=r"differ in step kinds: \['prefill', 'mixed'.* not deterministic"):
        combine_repeats([rep0, changed])


def test_real_repeats_of_different_workloads_are_rejected_by_token_steps(seed_pair, batch_pair) -> None:
    with pytest.raises(AnalysisError, match="token_steps: 10 vs 11") as info:
        combine_repeats([seed_pair[0], batch_pair[0]])
    assert "h100-seed-rep0" in str(info.value) and "h100-batch4-rep0" in str(info.value)


def test_real_repeats_with_different_layer_counts_are_rejected(seed_pair) -> None:
    changed = copy.deepcopy(seed_pair[1])
    changed.layer_count = 35
    with pytest.raises(AnalysisError, match="layer_count: 36 vs 35"):
        combine_repeats([seed_pair[0], changed])


def test_spread_unstable_kernels_round_trip_through_json(batch_pair) -> None:
    _, spread = combine_repeats(list(batch_pair))
    again = decode_json(encode_json(spread), RepeatSpread)
    assert again == spread and len(again.unstable_kernels) == 14
    assert from_builtins({"repeats": 1}, RepeatSpread).unstable_kernels == []  # older baseline files


def test_real_batch_baseline_with_unstable_kernels_is_saved_and_loaded(tmp_path: Path, batch_pair) -> None:
    from pytest_vllm_profile.baseline import BaselineStore, keys_for_summary

    median, spread = combine_repeats(list(batch_pair))
    gpu, vllm = keys_for_summary(median)
    store = BaselineStore(tmp_path)
    nodeid = "tests/gpu/test_qwen3_8b_shape.py::test_batched_four_prompts"
    assert store.save(nodeid, gpu, vllm, median, repeats=2, spread=spread, workload={"max_tokens": 10}) is True
    entry = store.load(nodeid, gpu, vllm)  # validated against baseline.schema.json on the way in
    assert entry is not None and entry.spread == spread and entry.summary == median


def test_compare_step_kinds_lets_repeats_differ_outside_the_compared_steps(data_dir):
    # Real H100 traces whose prefill/mixed structure differs (11 vs 10 token steps) while both
    # have 9 decode steps of 36 layers: with step_kinds=("decode",) they combine; without, not.
    from pytest_vllm_profile.analysis import summarize_path
    from pytest_vllm_profile.errors import AnalysisError
    from pytest_vllm_profile.repeats import combine_repeats

    batch = summarize_path(data_dir / "h100-batch4-rep0.rank0.pt.trace.json.gz")
    seed = summarize_path(data_dir / "h100-seed-rep0.rank0.pt.trace.json.gz")
    assert (batch.token_steps, seed.token_steps) == (11, 10)
    with pytest.raises(AnalysisError, match="token_steps"):
        combine_repeats([batch, seed])
    combined, spread = combine_repeats([batch, seed, batch], step_kinds=("decode",))
    assert combined.token_steps == 11  # the most common structure's step list
    assert spread.repeats == 3
    assert any("step structure differs" in n for n in combined.notes)
    decode_medians = sorted(
        [batch.step_kinds["decode"].median_op_time_us] * 2 + [seed.step_kinds["decode"].median_op_time_us]
    )
    assert combined.step_kinds["decode"].median_op_time_us == pytest.approx(decode_medians[1])
