"""The nsys reader on REAL Nsight Systems 2025.3.1 exports of vLLM 0.26 on an H200.

tests/data/README.md says how they were made: a Qwen3-8B-shaped model with 4 layers, one
completion of max_tokens=8 (1 prefill + 7 decode steps), once with vLLM's cuda profiler
driving the capture range and once in an nsys interactive session without it.
"""

from __future__ import annotations

from pathlib import Path

from pytest_vllm_profile.analysis import summarize_path
from pytest_vllm_profile.comparator import Tolerances, compare_summaries


def test_real_h200_cuda_profiler_export_has_8_steps_of_4_layers(data_dir: Path) -> None:
    summary = summarize_path(data_dir / "nsys-gpu-2025.3-cuda-range-rep1.sqlite")
    assert summary.runtime.profiler == "nsys"
    assert summary.device.name == "NVIDIA H200" and summary.device.sm_count == 132
    assert summary.step_method == "annotation"  # vLLM's step NVTX ranges are in the capture range
    assert (summary.token_steps, summary.layer_count) == (8, 4)
    assert [s.kind for s in summary.steps] == ["prefill"] + ["decode"] * 7


def test_real_h200_session_export_without_vllm_profiler_finds_steps_from_gpu_activity(data_dir: Path) -> None:
    summary = summarize_path(data_dir / "nsys-gpu-2025.3-session-rep1.sqlite")
    assert summary.step_method == "gpu_activity"  # no vLLM profiler, so no step ranges
    assert (summary.token_steps, summary.layer_count) == (8, 4)


def test_real_h200_nsys_repeats_of_one_server_compare_as_a_pass(data_dir: Path) -> None:
    first = summarize_path(data_dir / "nsys-gpu-2025.3-cuda-range-rep1.sqlite")
    second = summarize_path(data_dir / "nsys-gpu-2025.3-cuda-range-rep2.sqlite")
    comparison = compare_summaries(first, second, Tolerances())
    assert comparison.verdict == "pass", comparison.explain()
    decode = next(st for st in comparison.step_times if st.kind == "decode")
    assert abs(decode.delta_pct) < 1.0  # 546.8 -> 547.8 µs when recorded
