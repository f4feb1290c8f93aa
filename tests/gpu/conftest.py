"""GPU end-to-end tests: real vLLM on a real GPU, through the plugin (`pytest --vllm-profile`).

Without --vllm-profile every test here is skipped by the plugin with its reason. With it,
the Qwen3-8B-shaped model folder of qwen3_8b_shape_model.py is written once when missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qwen3_8b_shape_model import MODEL_DIR, QWEN3_8B_CONFIG


def write_qwen3_8b_shape(dest: Path) -> None:
    """Config + a byte-level BPE tokenizer trained here on a few sentences (no downloads)."""
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import PreTrainedTokenizerFast
    except ImportError as exc:
        raise RuntimeError(
            f"writing the GPU tests' model folder needs tokenizers + transformers in this "
            f"environment: pip install -e '.[gpu]' ({exc})"
        ) from None

    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.json").write_text(json.dumps(QWEN3_8B_CONFIG, indent=1))
    text = [
        "What is the capital of France?",
        "The quick brown fox jumps over the lazy dog.",
        "Profiling a vLLM inference server on a GPU shows token peaks and layer peaks.",
    ] * 50
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        text,
        trainers.BpeTrainer(
            vocab_size=1000,
            special_tokens=["<s>", "</s>", "<unk>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    ).save_pretrained(dest)


@pytest.fixture(scope="session", autouse=True)
def qwen3_8b_shape_model(request: pytest.FixtureRequest) -> Path:
    if request.config.getoption("vllm_profile", default=False) and not (MODEL_DIR / "config.json").exists():
        write_qwen3_8b_shape(MODEL_DIR)
    return MODEL_DIR
