"""`vllm-profile summarize TRACE_OR_DIR [--latest] [--json] [--model-bytes N | --model-config config.json]`.

A folder holding several traces of one rank is an error listing them (issue 15: a folder of
three unrelated traces silently gave the summary of one, its choice only in a note at the
bottom); `--latest` reads each rank's newest, as the plugin does with a server's trace folder.

Without TRACE_OR_DIR it runs on the embedded example: a real vLLM 0.26 H100 trace of
Qwen3-8B (dummy weights, CUDA graphs), max_tokens=10, shipped in the package.
"""

from __future__ import annotations

import argparse
import io
import sys
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from ..analysis.roofline import estimate_weight_bytes_from_config
from ..analysis.summarize import summarize_path
from ..codec import encode_json
from ..errors import TraceError
from ..summary import ProfileSummary
from .output import emit

EMBEDDED_EXAMPLE = "base-rep0.pt.trace.json.gz"
# The config.json of the model the embedded example served (Qwen3-8B shape, bf16),
# shipped beside it so the roofline is estimated from it like for any user's model.
EMBEDDED_MODEL_CONFIG = "base-rep0.model-config.json"


def embedded_example_path() -> Path:
    return Path(str(resources.files("pytest_vllm_profile") / "data" / EMBEDDED_EXAMPLE))


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `summarize` on the `vllm-profile` command's subparsers."""
    p = subparsers.add_parser(
        "summarize",
        help="steps, layers and kernels of a profile",
        description="Summarize a vLLM torch-profiler trace file or profile directory "
        "(no argument: the embedded example trace).",
    )
    p.add_argument("trace", nargs="?", help="trace file (*.pt.trace.json[.gz]) or vLLM profile directory")
    p.add_argument(
        "--latest",
        action="store_true",
        help="a folder with several traces of one rank: read the newest (default: an error listing them)",
    )
    p.add_argument("--json", action="store_true", help="print the ProfileSummary as JSON")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--model-bytes", type=int, metavar="N", help="model weight bytes, for the decode roofline")
    size.add_argument("--model-config", metavar="CONFIG_JSON", help="HF config.json to estimate weight bytes from")
    p.add_argument("--top", type=int, default=10, metavar="K", help="kernels to list in the table (default 10)")
    return p


def run(args: argparse.Namespace) -> int:
    """Exit code 0 when the summary was printed (also when the reader closed stdout early),
    1 when the trace cannot be analysed (raised, the cli prints it), 2 on a bad --model-bytes."""
    weight_bytes = args.model_bytes
    if weight_bytes is not None and weight_bytes <= 0:
        print(f"vllm-profile summarize: error: --model-bytes must be positive, got {weight_bytes}", file=sys.stderr)
        return 2
    if args.model_config:
        weight_bytes = estimate_weight_bytes_from_config(args.model_config)
    embedded = args.trace is None
    path = embedded_example_path() if embedded else Path(args.trace)
    if embedded and weight_bytes is None:
        weight_bytes = estimate_weight_bytes_from_config(embedded_example_path().with_name(EMBEDDED_MODEL_CONFIG))
    try:
        summary = summarize_path(path, model_weight_bytes=weight_bytes, session="latest" if args.latest else "only")
    except TraceError as exc:
        if "profile sessions for rank" not in exc.problem:
            raise
        problem = exc.problem.replace("pass session='latest'", "pass --latest to read the newest")
        raise TraceError(exc.path, problem) from None
    if embedded:
        summary.notes.insert(
            0,
            f"embedded example trace {EMBEDDED_EXAMPLE}: real vLLM 0.26 H100 profile, "
            "Qwen3-8B shape, max_tokens=10 (pass a trace path to analyse your own)",
        )
    if args.json:
        emit(encode_json(summary))
    else:
        table = io.StringIO()
        print_table(summary, table, top=args.top, embedded=embedded)
        emit(table.getvalue().rstrip("\n"))
    return 0


def _ms(us: float) -> str:
    return f"{us / 1000:.3f} ms"


def print_table(summary: ProfileSummary, out: TextIO, *, top: int = 10, embedded: bool = False) -> None:
    w = out.write
    if embedded:
        w(f"Embedded example: {EMBEDDED_EXAMPLE} (a real vLLM trace shipped with pytest-vllm-profile)\n")
    w(f"Source: {', '.join(summary.source)}\n")
    dev = summary.device
    if dev.name:
        bw = f", datasheet peak {dev.peak_memory_bandwidth_gbps:g} GB/s" if dev.peak_memory_bandwidth_gbps else ""
        w(f"Device: {dev.name} ({dev.sm_count} SMs, CC {dev.compute_capability}{bw})\n")
    clock = "GPU kernel" if summary.timing_domain == "gpu" else "CPU op"
    w(
        f"Token steps: {summary.token_steps} (method: {summary.step_method}); layers per step: "
        f"{summary.layer_count} (method: {summary.layer_method}); total {clock} time: {_ms(summary.total_kernel_us)}\n"
    )
    if summary.world_size > 1:
        w(f"Ranks: {summary.world_size} (per-step time = slowest rank)\n")
    w("\nSteps\n")
    w(f"  {'#':>3}  {'kind':<8} {'requests':>9} {'tokens':>7} {clock + ' time':>16} {'wall':>11} {'layers':>6}\n")
    for s in summary.steps:
        reqs = "-" if s.prefill_requests is None else f"{s.prefill_requests}+{s.decode_requests}"
        toks = "-" if s.prefill_tokens is None else f"{(s.prefill_tokens or 0) + (s.decode_tokens or 0)}"
        w(
            f"  {s.index:>3}  {s.kind:<8} {reqs:>9} {toks:>7} {_ms(s.op_time_us):>16} {_ms(s.wall_time_us):>11} "
            f"{len(s.layers):>6}\n"
        )
    w(f"\nTop kernels by total time ({min(top, len(summary.kernels))} of {len(summary.kernels)})\n")
    w(f"  {'name':<48} {'class':<13} {'count':>6} {'total':>11} {'share':>6}\n")
    for k in summary.kernels[:top]:
        name = k.short_name if len(k.short_name) <= 48 else k.short_name[:45] + "..."
        w(f"  {name:<48} {k.kernel_class:<13} {k.count:>6} {_ms(k.total_us):>11} {k.share * 100:>5.1f}%\n")
    decode = summary.step_kinds.get("decode")
    if decode is not None:
        w(f"\nDecode steps: {decode.count}, median {clock} time {_ms(decode.median_op_time_us)}\n")
        if decode.median_layer_time_us:
            layers = decode.median_layer_time_us
            w("  median time per layer (us): " + " ".join(f"{i}:{t:.1f}" for i, t in enumerate(layers)) + "\n")
    if summary.roofline is not None:
        r = summary.roofline
        w(
            f"\nDecode roofline: {r.weight_bytes / 1e9:.2f} GB weights / {_ms(r.decode_step_time_us)} / "
            f"{r.peak_bandwidth_gbps:g} GB/s peak = {r.fraction * 100:.1f}% of the memory-bandwidth bound\n"
        )
    if summary.notes:
        w("\nNotes\n")
        for n in summary.notes:
            w(f"  - {n}\n")
