"""`summarize` on real traces: GPU, CPU-only, and two ranks."""

from __future__ import annotations

import json

import pytest

from pytest_vllm_profile.analysis import estimate_weight_bytes_from_config, summarize, summarize_path
from pytest_vllm_profile.analysis.roofline import peak_bandwidth_gbps
from pytest_vllm_profile.codec import encode_json, from_builtins
from pytest_vllm_profile.errors import AnalysisError
from pytest_vllm_profile.events import TraceSet
from pytest_vllm_profile.summary import ProfileSummary
from pytest_vllm_profile.trace.torch_reader import read_torch_trace

QWEN3_8B_BYTES = 16_381_470_720  # estimate_weight_bytes_from_config on the published Qwen3-8B config


@pytest.fixture(scope="module")
def base0(data_dir):
    return summarize_path(data_dir / "base-rep0.pt.trace.json.gz", model_weight_bytes=QWEN3_8B_BYTES)


def test_gpu_summary_top_level(base0):
    assert base0.timing_domain == "gpu"
    assert base0.step_method == "annotation" and base0.layer_method == "kernel_pattern"
    assert base0.token_steps == 10 and base0.layer_count == 36
    assert base0.total_kernel_us == pytest.approx(65_559, rel=1e-3)  # shared/traces/README.md: 65.56 ms
    assert [s.kind for s in base0.steps].count("decode") == 9
    assert all(len(s.layers) == 36 for s in base0.steps)
    assert base0.step_kinds["decode"].median_op_time_us == pytest.approx(
        6070, rel=0.01
    )  # shared/traces/README.md: ~6.07 ms


def test_device_and_runtime(base0):
    assert base0.device.name == "NVIDIA H100 80GB HBM3"
    assert base0.device.sm_count == 132 and base0.device.compute_capability == "9.0"
    assert base0.device.peak_memory_bandwidth_gbps == 3350.0
    assert base0.runtime.cupti_version == 130001
    assert any("datasheet" in n for n in base0.notes)


def test_decode_roofline_about_80_percent(base0):
    r = base0.roofline
    assert r is not None
    assert r.fraction == pytest.approx(QWEN3_8B_BYTES / 3350e9 / (r.decode_step_time_us / 1e6))
    assert 0.78 < r.fraction < 0.83


@pytest.mark.parametrize(
    ("gpu", "gbps"),
    [
        ("NVIDIA H100 80GB HBM3", 3350.0),
        ("NVIDIA H100 NVL", 3900.0),
        ("NVIDIA H100 PCIe", 2000.0),
        ("NVIDIA H200", 4800.0),
        ("NVIDIA GH200 480GB", 4000.0),  # GH200 is not taken for an H200
        ("NVIDIA L4", 300.0),
        ("NVIDIA L40S", 864.0),
        ("NVIDIA A100-SXM4-80GB", 2039.0),
        ("Some Future GPU", None),
        (None, None),
    ],
)
def test_datasheet_bandwidth_by_device_name(gpu, gbps):
    assert peak_bandwidth_gbps(gpu) == gbps


def test_no_roofline_without_model_size(data_dir):
    s = summarize_path(data_dir / "base-rep1.pt.trace.json.gz")
    assert s.roofline is None and s.token_steps == 10 and s.layer_count == 36


def test_json_round_trip(base0):
    data = json.loads(encode_json(base0))
    assert isinstance(data["token_steps"], int) and isinstance(data["total_kernel_us"], float)
    assert {"kind", "op_time_us", "layers"} <= set(data["steps"][0])
    again = from_builtins(data, ProfileSummary)
    assert again == base0


def test_weight_bytes_from_qwen3_8b_config(tmp_path):
    # the published Qwen3-8B config.json values (no model download here)
    cfg = {
        "architectures": ["Qwen3ForCausalLM"],
        "hidden_size": 4096,
        "num_hidden_layers": 36,
        "intermediate_size": 12288,
        "vocab_size": 151936,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "torch_dtype": "bfloat16",
        "tie_word_embeddings": False,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    n = estimate_weight_bytes_from_config(path)
    assert n == QWEN3_8B_BYTES
    assert 16.3e9 < n < 16.5e9


def test_weight_bytes_from_bad_config_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(AnalysisError, match="config.json.*num_hidden_layers"):
        estimate_weight_bytes_from_config(path)


def test_cpu_only_trace_summary(data_dir):
    s = summarize_path(data_dir / "cpu-eager-tiny4.rank0.pt.trace.json.gz", model_weight_bytes=10_000)
    assert s.timing_domain == "cpu"
    assert s.token_steps == 10 and s.layer_count == 4 and s.layer_method == "module"
    assert s.roofline is None and any("CPU" in n for n in s.notes)
    # self times partition the top-level op time: sum of op totals == total == sum of step times
    # plus ops outside steps
    assert sum(k.total_us for k in s.kernels) == pytest.approx(s.total_kernel_us)
    assert sum(st.op_time_us for st in s.steps) <= s.total_kernel_us + 1e-6
    for st in s.steps:
        assert sum(layer.time_us for layer in st.layers) < st.op_time_us


def test_two_single_gpu_traces_standing_in_for_two_ranks(data_dir):
    r0 = read_torch_trace(data_dir / "base-rep0.pt.trace.json.gz", rank=0)
    r1 = read_torch_trace(data_dir / "base-rep1.pt.trace.json.gz", rank=1)
    s = summarize(TraceSet(ranks={0: r0, 1: r1}))
    assert s.world_size == 2 and [r.rank for r in s.ranks] == [0, 1]
    assert s.token_steps == 10 and s.layer_count == 36
    for i, step in enumerate(s.steps):
        assert step.op_time_us == max(r.steps[i].op_time_us for r in s.ranks)
    assert s.total_kernel_us == pytest.approx(sum(r.total_kernel_us for r in s.ranks))
    fa = s.kernel("flash::FlashAttnFwdSm90")
    assert fa.count == 720  # pooled over both ranks
    assert s.step_kinds["decode"].kernels_per_step[fa.name] == 36  # per rank


def test_empty_trace_set_is_an_error():
    from pytest_vllm_profile.errors import TraceError

    with pytest.raises(TraceError, match="no engine-rank traces"):
        summarize(TraceSet(ranks={}))
