"""Tensor parallelism on two GPUs: the seed workload with tensor_parallel_size=2.

vLLM writes one engine trace per rank; the summary holds per-rank summaries plus a combined
view (per-step time = the slowest rank's), with NCCL / custom all-reduce kernels in their
own "communication" class. Each rank still runs all 36 decoder layers (on half the heads).
Skipped unless two GPUs are visible. NVLink multicast stays off in the server's environment
(NCCL_NVLS_ENABLE=0 and friends), as the shared GPU hosts require.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

MODEL_DIR = Path(os.environ.get("VLLM_PROFILE_GPU_MODEL", "/tmp/qwen3-8b-shape"))
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def _visible_gpu_count() -> int:
    """GPUs this session may use (CUDA_VISIBLE_DEVICES, else nvidia-smi), without touching CUDA."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


@pytest.mark.skipif(_visible_gpu_count() < 2, reason="tensor_parallel_size=2 needs two visible GPUs")
@pytest.mark.vllm_workload(model=str(MODEL_DIR), served_model_name="qwen3-8b-shape", max_tokens=10,
                           prompts=["What is the capital of France?"], tensor_parallel_size=2,
                           server_args=["--load-format", "dummy", "--max-model-len", "4096",
                                        "--gpu-memory-utilization", "0.85"],
                           env=MULTICAST_OFF)
def test_seed_workload_tensor_parallel_2(vllm_profile):
    summary = vllm_profile.summary
    assert summary.world_size == 2
    assert len(summary.ranks) == 2
    for rank in summary.ranks:
        assert rank.token_steps == 10
        assert rank.layer_count == 36
    assert vllm_profile.token_steps == 10
    assert vllm_profile.layer_count == 36
    # Per-step time of the combined view is the slowest rank's.
    for i, step in enumerate(summary.steps):
        assert step.gpu_time_us == pytest.approx(max(r.steps[i].gpu_time_us for r in summary.ranks))
    assert any(k.kernel_class == "communication" for k in summary.kernels)
