"""A tiny Qwen3 model folder (random weights, offline-trained tokenizer) for CPU vLLM runs.

No download: the config, random bf16 weights (safetensors) and a byte-level BPE tokenizer
trained on two sentences are written locally in a few seconds. `make_tiny_qwen3` needs
torch, transformers and tokenizers, which live in the vLLM environment rather than the
plugin's, so this file is also a script:

    VLLM_VENV/bin/python src/pytest_vllm_profile/tiny_model.py DEST [--layers N]

or, from the plugin's environment, `vllm-profile tiny-model DEST --python VLLM_VENV/bin/python`
(`python -m pytest_vllm_profile.tiny_model` works where torch and the plugin are both installed)
and `build_tiny_model(python, dest)` runs that script with a given interpreter.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

# Files every usable model folder has after `make_tiny_qwen3`; checked by build_tiny_model.
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")

# A plain chat template, so /v1/chat/completions works on the tiny model (transformers has no
# default template; without one vLLM answers chat requests with HTTP 400).
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)

_TRAINING_TEXT = ["What is the capital of France?", "The quick brown fox jumps over the lazy dog."] * 50


def make_tiny_qwen3(dest: Path, layers: int = 4) -> Path:
    """Write a `layers`-deep Qwen3 (hidden 128, vocab 1024) with its tokenizer into `dest`."""
    # Imported here: these packages exist only in the vLLM environment.
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    if layers < 1:
        raise ValueError(f"layers={layers}: a model needs at least one decoder layer")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cfg = Qwen3Config(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        vocab_size=1024,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        torch_dtype="bfloat16",
        bos_token_id=0,
        eos_token_id=1,
    )
    torch.manual_seed(0)  # same weights every time, so traces of two builds are comparable
    model = Qwen3ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(dest, safe_serialization=True)

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        _TRAINING_TEXT,
        trainers.BpeTrainer(
            vocab_size=600,
            special_tokens=["<s>", "</s>", "<unk>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="</s>",
        chat_template=CHAT_TEMPLATE,
    ).save_pretrained(dest)
    return dest


def build_tiny_model(python: str, dest: Path, layers: int = 4, timeout_s: float = 300.0) -> Path:
    """Run this file as a script with `python` (an interpreter that has torch + transformers).

    Raises `LauncherError` with the script's output when it fails.
    """
    from .errors import LauncherError

    dest = Path(dest)
    cmd = [python, str(Path(__file__).resolve()), str(dest), "--layers", str(layers)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise LauncherError(f"cannot build the tiny model: interpreter {python!r} not found") from None
    except subprocess.TimeoutExpired:
        raise LauncherError(f"building the tiny model in {dest} with {python} took over {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise LauncherError(
            f"building the tiny model in {dest} with {python} failed (exit {proc.returncode}); "
            f"that interpreter needs torch, transformers and tokenizers (scripts/setup-vllm-cpu.sh):\n{tail}"
        )
    missing = [f for f in REQUIRED_FILES if not (dest / f).is_file()]
    if missing:
        raise LauncherError(f"tiny model build in {dest} finished but {', '.join(missing)} missing")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a tiny random Qwen3 model folder (no download).")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args(argv)
    try:
        out = make_tiny_qwen3(args.dest, layers=args.layers)
    except ImportError as exc:  # run in the plugin's environment, which has no torch
        print(
            f"tiny_model: error: {exc.name or exc} is not installed in {sys.executable}; run it with an "
            "interpreter that has torch and transformers:\n"
            f"    vllm-profile tiny-model {args.dest} --layers {args.layers} --python .venv-vllm-cpu/bin/python",
            file=sys.stderr,
        )
        return 1
    print(" ".join(sorted(p.name for p in out.iterdir())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
