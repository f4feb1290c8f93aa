"""Summaries BUILT in the tests to a known shape (every number is chosen here, nothing is
claimed to be measured), and the decode-slowdown transform applied to real summaries.

- `built_summary`: 1 prefill + 9 decode steps, `BUILT_LAYERS` layers, the three `BUILT_KERNELS`;
  `scale` multiplies times per step kind. The comparator's, the model's and the CLI's tests.
- `scaled_decode`: a (real) summary with every decode-step time multiplied by a factor.
- `built_one_kernel_summary`: nine decode steps of one GEMM, with a device and a vLLM version:
  what the baseline store keys entries by (`BASELINE_NODEID` is the test id they are saved under).
"""

from __future__ import annotations

import copy

from pytest_vllm_profile.summary import (
    DeviceInfo,
    KernelKindStats,
    KernelSummary,
    LayerTiming,
    ProfileSummary,
    RuntimeInfo,
    StepKindStats,
    StepSummary,
)

BUILT_KERNELS = {  # name -> (short, class, launches per step, µs per launch in prefill, in decode)
    "void flash::attn_fwd<128>(Params)": ("attn_fwd", "attention", 4, 50.0, 20.0),
    "nvjet_gemm_64x8_TNT": ("nvjet_gemm_64x8_TNT", "gemm", 8, 200.0, 120.0),
    "triton_red_fused_rms_norm_0": ("triton_red_fused_rms_norm_0", "norm", 8, 6.0, 5.0),
}
BUILT_LAYERS = 4


def built_summary(
    scale: dict[str, float] | None = None,
    layers: int = BUILT_LAYERS,
    domain: str = "gpu",
    kernels: dict[str, tuple[str, str, int, float, float]] | None = None,
) -> ProfileSummary:
    """A self-consistent summary; `scale` multiplies times per step kind (e.g. {"decode": 1.03})."""
    scale = scale or {}
    kernels = BUILT_KERNELS if kernels is None else kernels
    step_count = {"prefill": 1, "decode": 9}
    per_launch_index = {"prefill": 3, "decode": 4}
    step_time = {
        kind: sum(n * spec[per_launch_index[kind]] for (_, _, n, *_), spec in ((v, v) for v in kernels.values()))
        * scale.get(kind, 1.0)
        for kind in step_count
    }
    launches = sum(v[2] for v in kernels.values())
    steps = []
    t = 0.0
    for i in range(10):
        kind = "prefill" if i == 0 else "decode"
        steps.append(
            StepSummary(
                index=i,
                kind=kind,
                name=f"step{i}",
                start_us=t,
                wall_time_us=step_time[kind] * 1.1,
                op_time_us=step_time[kind],
                kernel_count=launches,
                layers=[LayerTiming(j, step_time[kind] / layers, launches // layers) for j in range(layers)],
            )
        )
        t += step_time[kind] * 1.2
    summaries = []
    total = sum(step_time[k] * step_count[k] for k in step_count)
    for name, (short, cls, n, pre_us, dec_us) in kernels.items():
        per_kind = {}
        for kind, us in (("prefill", pre_us), ("decode", dec_us)):
            count = n * step_count[kind]
            kt = us * scale.get(kind, 1.0) * count
            per_kind[kind] = KernelKindStats(count=count, total_us=kt, mean_us=kt / count)
        ktotal = sum(s.total_us for s in per_kind.values())
        kcount = sum(s.count for s in per_kind.values())
        summaries.append(
            KernelSummary(
                name=name,
                short_name=short,
                kernel_class=cls,
                count=kcount,
                total_us=ktotal,
                mean_us=ktotal / kcount,
                median_us=dec_us,
                p90_us=pre_us,
                min_us=dec_us,
                max_us=pre_us,
                share=ktotal / total,
                per_step_kind=per_kind,
            )
        )
    step_kinds = {
        kind: StepKindStats(
            count=step_count[kind],
            median_op_time_us=step_time[kind],
            mean_op_time_us=step_time[kind],
            min_op_time_us=step_time[kind],
            max_op_time_us=step_time[kind],
            median_layer_time_us=[step_time[kind] / layers] * layers,
            kernels_per_step={name: float(v[2]) for name, v in kernels.items()},
        )
        for kind in step_count
    }
    return ProfileSummary(
        schema_version=2,
        source=["built-in-test"],
        timing_domain=domain,
        step_method="annotation",
        layer_method="kernel_pattern",
        token_steps=10,
        layer_count=layers,
        total_kernel_us=total,
        steps=steps,
        kernels=summaries,
        step_kinds=step_kinds,
    )


def slower_decode_steps(summary: ProfileSummary, factor: float) -> ProfileSummary:
    """`summary` with every decode step (and its layers) `factor` times slower and the decode median
    with them; kernels untouched (`scaled_decode` scales those too)."""
    out = copy.deepcopy(summary)
    for step in out.steps:
        if step.kind == "decode":
            step.op_time_us *= factor
            for layer in step.layers:
                layer.time_us *= factor
    out.step_kinds["decode"].median_op_time_us *= factor
    return out


def scaled_decode(summary: ProfileSummary, factor: float) -> ProfileSummary:
    """`summary` with every decode-step kernel time multiplied by `factor` (and the sums that include them)."""
    out = copy.deepcopy(summary)
    added = 0.0
    for k in out.kernels:
        stats = k.per_step_kind.get("decode")
        if stats is None:
            continue
        extra = stats.total_us * (factor - 1)
        added += extra
        stats.total_us *= factor
        stats.mean_us *= factor
        k.total_us += extra
        k.mean_us = k.total_us / k.count if k.count else k.mean_us
    out.total_kernel_us += added
    for s in out.steps:
        if s.kind == "decode":
            s.op_time_us *= factor
            for layer in s.layers:
                layer.time_us *= factor
    d = out.step_kinds["decode"]
    d.median_op_time_us *= factor
    d.mean_op_time_us *= factor
    d.min_op_time_us *= factor
    d.max_op_time_us *= factor
    d.median_layer_time_us = [t * factor for t in d.median_layer_time_us]
    return out


BASELINE_NODEID = "tests/perf/test_qwen.py::test_decode[bs1-max_tokens=10]"


def built_one_kernel_summary(
    decode_us: float = 6000.0, gpu: str | None = "NVIDIA H100 80GB HBM3", vllm: str | None = "0.26.0"
) -> ProfileSummary:
    """A small summary built in the test (numbers chosen here, not measured)."""
    kernel = KernelSummary(
        name="nvjet_gemm",
        short_name="nvjet_gemm",
        kernel_class="gemm",
        count=9,
        total_us=9 * decode_us,
        mean_us=decode_us,
        median_us=decode_us,
        p90_us=decode_us,
        min_us=decode_us,
        max_us=decode_us,
        share=1.0,
        per_step_kind={"decode": KernelKindStats(count=9, total_us=9 * decode_us, mean_us=decode_us)},
    )
    return ProfileSummary(
        schema_version=2,
        source=["built"],
        timing_domain="gpu" if gpu else "cpu",
        step_method="annotation",
        layer_method=None,
        token_steps=9,
        layer_count=0,
        total_kernel_us=9 * decode_us,
        device=DeviceInfo(name=gpu),
        runtime=RuntimeInfo(vllm_version=vllm),
        steps=[StepSummary(i, "decode", f"s{i}", i * 7000.0, decode_us, decode_us, 1) for i in range(9)],
        kernels=[kernel],
        step_kinds={"decode": StepKindStats(9, decode_us, decode_us, decode_us, decode_us, [], {"nvjet_gemm": 1.0})},
    )
