"""`vllm-profile tiny-model DEST [--layers N] [--python PYTHON]`: write the tiny random Qwen3
model folder (`tiny_model.make_tiny_qwen3`) with an interpreter that has torch + transformers.

Issue 15: `python -m pytest_vllm_profile.tiny_model` is no command a user can run -- the
plugin's environment has no torch and the vLLM environment does not have the plugin. This
runs the module's script with `--python` (the vLLM environment's interpreter), from here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..tiny_model import build_tiny_model
from .output import emit


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `tiny-model` on the `vllm-profile` command's subparsers."""
    p = subparsers.add_parser(
        "tiny-model",
        help="write a tiny random Qwen3 model folder for CPU vLLM runs (no download)",
        description="Write a tiny Qwen3 model folder (config, random weights, tokenizer) into DEST, using an "
        "interpreter that has torch, transformers and tokenizers (e.g. the vLLM environment's).",
    )
    p.add_argument("dest", type=Path, help="folder to write the model into")
    p.add_argument("--layers", type=int, default=4, help="decoder layers (default 4)")
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter with torch + transformers, e.g. .venv-vllm-cpu/bin/python (default: this one)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    """Exit code 0 when the folder was written, 1 when the build failed (the cli prints why), 2 on bad --layers."""
    if args.layers < 1:
        print(f"vllm-profile tiny-model: error: --layers must be >= 1, got {args.layers}", file=sys.stderr)
        return 2
    dest = build_tiny_model(args.python, args.dest, layers=args.layers)
    emit(f"vllm-profile tiny-model: wrote {dest} ({args.layers} layers)")
    return 0
