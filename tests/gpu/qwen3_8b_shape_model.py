"""The GPU tests' model and server: a Qwen3-8B-shaped folder (config + an offline-trained
tokenizer, no weights: the server runs with `--load-format dummy`), written where
`VLLM_PROFILE_GPU_MODEL` points (default /tmp/qwen3-8b-shape) by tests/gpu/conftest.py.
"""

from __future__ import annotations

import os
from pathlib import Path

MODEL_DIR = Path(os.environ.get("VLLM_PROFILE_GPU_MODEL", "/tmp/qwen3-8b-shape"))
SERVED_NAME = "qwen3-8b-shape"

# Two servers on one GPU under `-n 2` need a lower share of GPU memory each.
GPU_MEMORY_UTILIZATION = os.environ.get("VLLM_PROFILE_GPU_MEMORY_UTILIZATION", "0.85")
SERVER_ARGS = ["--load-format", "dummy", "--max-model-len", "4096", "--gpu-memory-utilization", GPU_MEMORY_UTILIZATION]

# The Qwen3-8B architecture (36 decoder layers, hidden 4096, GQA 32/8, bf16).
QWEN3_8B_CONFIG = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 4096,
    "intermediate_size": 12288,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-06,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "use_cache": True,
    "use_sliding_window": False,
}
