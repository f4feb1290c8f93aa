"""GPU end-to-end tests: real vLLM on a real GPU, through the plugin (`pytest --vllm-profile`).

Without --vllm-profile every test here is skipped by the plugin with its reason. With it,
a Qwen3-8B-shaped model folder (config + an offline-trained tokenizer, no weights: the
server runs with `--load-format dummy`) is written once per session where
`VLLM_PROFILE_GPU_MODEL` points (default /tmp/qwen3-8b-shape).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

MODEL_DIR = Path(os.environ.get("VLLM_PROFILE_GPU_MODEL", "/tmp/qwen3-8b-shape"))

# The Qwen3-8B architecture (36 decoder layers, hidden 4096, GQA 32/8, bf16).
QWEN3_8B_CONFIG = {
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
    "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 151936, "max_position_embeddings": 40960, "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-06, "hidden_act": "silu", "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 0, "eos_token_id": 1, "use_cache": True, "use_sliding_window": False,
}


def write_qwen3_8b_shape(dest: Path) -> None:
    """Config + a byte-level BPE tokenizer trained here on a few sentences (no downloads)."""
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast
    except ImportError as exc:
        raise RuntimeError(f"writing the GPU tests' model folder needs tokenizers + transformers in this "
                           f"environment: pip install -e '.[gpu]' ({exc})") from None

    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text(json.dumps(QWEN3_8B_CONFIG, indent=1))
    text = ["What is the capital of France?", "The quick brown fox jumps over the lazy dog.",
            "Profiling a vLLM inference server on a GPU shows token peaks and layer peaks."] * 50
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(text, trainers.BpeTrainer(
        vocab_size=1000, special_tokens=["<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>", pad_token="</s>").save_pretrained(dest)


@pytest.fixture(scope="session", autouse=True)
def qwen3_8b_shape_model(request: pytest.FixtureRequest) -> Path:
    if request.config.getoption("vllm_profile", default=False) and not (MODEL_DIR / "config.json").exists():
        write_qwen3_8b_shape(MODEL_DIR)
    return MODEL_DIR
