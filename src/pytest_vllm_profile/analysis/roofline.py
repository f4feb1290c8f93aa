"""Decode-step memory-bandwidth roofline and the numbers it needs.

A decode step of a dense model reads every weight once, so its time can be no shorter
than weight bytes / peak HBM bandwidth. Peaks are the vendors' datasheet figures (what
the memory can do at best, never measured here); a GPU missing from the table gives None.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import AnalysisError
from ..summary import Roofline

# Datasheet peak HBM/GDDR bandwidth, GB/s. Matched on the CUDA device name, most specific first.
PEAK_BANDWIDTH_GBPS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("GH200",), 4000.0),  # before H200: every GH200 name contains "H200"
    (("H200",), 4800.0),
    (("H100", "NVL"), 3900.0),
    (("H100", "PCIE"), 2000.0),
    (("H100",), 3350.0),  # SXM5 80GB HBM3
    (("H800",), 3350.0),
    (("B200",), 8000.0),
    (("A100", "80GB"), 2039.0),
    (("A100", "40GB"), 1555.0),
    (("A100",), 1555.0),
    (("A800",), 2039.0),
    (("L40S",), 864.0),
    (("L40",), 864.0),
    (("L4",), 300.0),
    (("A10G",), 600.0),
    (("A10",), 600.0),
    (("V100",), 900.0),
    (("T4",), 320.0),
    (("RTX 4090",), 1008.0),
    (("RTX 3090",), 936.0),
)


def peak_bandwidth_gbps(gpu_name: str | None) -> float | None:
    """Datasheet peak memory bandwidth of a GPU by its CUDA device name, or None when unknown."""
    if not gpu_name:
        return None
    upper = gpu_name.upper()
    for keys, gbps in PEAK_BANDWIDTH_GBPS:
        if all(k in upper for k in keys):  # L40/L40S come before L4, so L4 never takes them
            return gbps
    return None


def decode_roofline(weight_bytes: int, peak_gbps: float, decode_step_us: float) -> Roofline:
    """Fraction of the bandwidth roofline a decode step reaches: ideal time / measured time."""
    if decode_step_us <= 0 or peak_gbps <= 0:
        raise AnalysisError("roofline needs a positive decode step time and peak bandwidth")
    ideal_us = weight_bytes / (peak_gbps * 1e9) * 1e6
    return Roofline(
        weight_bytes=int(weight_bytes),
        peak_bandwidth_gbps=float(peak_gbps),
        decode_step_time_us=float(decode_step_us),
        fraction=float(ideal_us / decode_step_us),
    )


_DTYPE_BYTES = {
    "bfloat16": 2,
    "float16": 2,
    "half": 2,
    "float32": 4,
    "float": 4,
    "fp8": 1,
    "float8_e4m3fn": 1,
    "int8": 1,
}


def estimate_weight_bytes_from_config(config_path: str | Path) -> int:
    """Weight bytes of a dense decoder-only HF model from its config.json.

    embed + lm_head (once if tied) + layers x (q, k, v, o projections + gated MLP + 2 norms,
    + q/k norms when `head_dim` is given as for Qwen3) + final norm, times the dtype's bytes.
    Qwen3-8B in bf16 gives ~16.4 GB.
    """
    path = Path(config_path)
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise AnalysisError(f"{path}: model config not found") from None
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"{path}: not a readable JSON model config ({exc})") from None
    if isinstance(cfg.get("text_config"), dict):
        cfg = {**cfg, **cfg["text_config"]}
    try:
        hidden = int(cfg["hidden_size"])
        layers = int(cfg["num_hidden_layers"])
        inter = int(cfg["intermediate_size"])
        vocab = int(cfg["vocab_size"])
        heads = int(cfg["num_attention_heads"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AnalysisError(
            f"{path}: model config lacks {exc} (needs hidden_size, num_hidden_layers, "
            "intermediate_size, vocab_size, num_attention_heads)"
        ) from None
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16").replace("torch.", "")
    nbytes = _DTYPE_BYTES.get(dtype, 2)
    attn = hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
    if cfg.get("attention_bias"):
        attn += heads * head_dim + 2 * kv_heads * head_dim
    mlp = 3 * hidden * inter
    norms = 2 * hidden + (2 * head_dim if "head_dim" in cfg else 0)
    embed = vocab * hidden
    lm_head = 0 if cfg.get("tie_word_embeddings") else vocab * hidden
    params = embed + lm_head + layers * (attn + mlp + norms) + hidden
    return int(params * nbytes)
