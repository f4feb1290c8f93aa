"""Kernel names, classes and statistics."""

from __future__ import annotations

import pytest

from pytest_vllm_profile.analysis import kernel_class, short_kernel_name, summarize_trace
from pytest_vllm_profile.trace.torch_reader import read_torch_trace

FA3 = (
    "void cutlass::device_kernel<flash::enable_sm90_or_later<flash::FlashAttnFwdSm90<flash::"
    "CollectiveMainloopFwdSm90<2, cute::tuple<cute::C<1>, cute::C<1>, cute::C<1> >, 128> > > >"
    "(flash::enable_sm90_or_later<flash::FlashAttnFwdSm90<int> >::Params)"
)


@pytest.mark.parametrize(
    "full, short, cls",
    [
        (FA3, "flash::FlashAttnFwdSm90", "attention"),
        (
            "std::enable_if<(((8)>(0)))&&vllm::_typeConvert<c10::BFloat16>::exists, void>::type "
            "vllm::fused_add_rms_norm_kernel<c10::BFloat16, 8, true>(c10::BFloat16*, long)",
            "vllm::fused_add_rms_norm_kernel",
            "norm",
        ),
        ("nvjet_sm90_tst_64x8_64x16_2x1_v_bz_splitK_TNT", "nvjet_sm90_tst_64x8_64x16_2x1_v_bz_splitK_TNT", "gemm"),
        (
            "void (anonymous namespace)::elementwise_kernel_with_index<int, long>(int, long)",
            "anon::elementwise_kernel_with_index",
            "elementwise",
        ),
        ("Memcpy HtoD (Pinned -> Device)", "Memcpy HtoD (Pinned -> Device)", "memory"),
        (
            "ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)",
            "ncclDevKernel_AllReduce_Sum_bf16_RING_LL",
            "communication",
        ),
        (
            "void vllm::cross_device_reduce_1stage<__nv_bfloat16, 2>(vllm::RankData*, int)",
            "vllm::cross_device_reduce_1stage",
            "communication",
        ),
        ("_gumbel_sample_kernel", "_gumbel_sample_kernel", "other"),
    ],
)
def test_short_name_and_class(full, short, cls):
    assert short_kernel_name(full) == short
    assert kernel_class(full) == cls


@pytest.fixture(scope="module")
def base0_summary(data_dir):
    return summarize_trace(read_torch_trace(data_dir / "base-rep0.pt.trace.json.gz"))


def test_kernel_statistics_of_attention(base0_summary):
    fa = base0_summary.kernel("flash::FlashAttnFwdSm90")
    assert fa is not None and fa.kernel_class == "attention"
    assert fa.count == 360
    assert fa.min_us <= fa.median_us <= fa.p90_us <= fa.max_us
    assert fa.mean_us == pytest.approx(fa.total_us / fa.count)
    assert fa.per_step_kind["decode"].count == 9 * 36
    assert fa.per_step_kind["prefill"].count == 36


def test_kernel_shares_and_order(base0_summary):
    ks = base0_summary.kernels
    assert sum(k.share for k in ks) == pytest.approx(1.0)
    totals = [k.total_us for k in ks]
    assert totals == sorted(totals, reverse=True)
    assert ks[0].kernel_class == "gemm"  # decode of an 8B model is weight-GEMM bound
    assert {k.kernel_class for k in ks if k.name.startswith("Memcpy")} == {"memory"}


def test_step_kind_stats(base0_summary):
    decode = base0_summary.step_kinds["decode"]
    assert decode.count == 9
    assert decode.min_op_time_us <= decode.median_op_time_us <= decode.max_op_time_us
    assert len(decode.median_layer_time_us) == 36
    fa_name = base0_summary.kernel("flash::FlashAttnFwdSm90").name
    assert decode.kernels_per_step[fa_name] == 36
