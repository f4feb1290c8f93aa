"""Tensor parallelism on two GPUs: the seed workload with tensor_parallel_size=2.

vLLM writes one engine trace per rank; the summary holds per-rank summaries plus a combined
view (per-step time = the slowest rank's), with NCCL / custom all-reduce kernels in their
own "communication" class. Each rank still runs all 36 decoder layers (on half the heads).
Skipped unless two GPUs are visible. NVLink multicast stays off in the server's environment
(NCCL_NVLS_ENABLE=0 and friends), as the shared GPU hosts require.
"""

from __future__ import annotations

import os

import pytest
from qwen3_8b_shape_model import MODEL_DIR, SERVED_NAME, SERVER_ARGS

from pytest_vllm_profile.pool import nvidia_smi_gpu_count, visible_gpus

MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
# GPUs this session may use (CUDA_VISIBLE_DEVICES, else nvidia-smi), without touching CUDA.
VISIBLE_GPUS = visible_gpus(os.environ.get("CUDA_VISIBLE_DEVICES"), nvidia_smi_gpu_count()) or []


@pytest.mark.skipif(len(VISIBLE_GPUS) < 2, reason="tensor_parallel_size=2 needs two visible GPUs")
@pytest.mark.vllm_workload(
    model=str(MODEL_DIR),
    served_model_name=SERVED_NAME,
    max_tokens=10,
    prompts=["What is the capital of France?"],
    tensor_parallel_size=2,
    server_args=SERVER_ARGS,
    env=MULTICAST_OFF,
)
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
        assert step.op_time_us == pytest.approx(max(r.steps[i].op_time_us for r in summary.ranks))
    assert any(k.kernel_class == "communication" for k in summary.kernels)
