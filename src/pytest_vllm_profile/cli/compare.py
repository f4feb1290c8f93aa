"""`vllm-profile compare BASELINE CANDIDATE`: each side a trace (file or folder), a summary JSON
or a baseline file; the verdict is the exit code (0 pass, 1 regression, 2 unusable input).

The engine is `comparator.compare_summaries`; this module reads the two sides and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..codec import encode_json
from ..comparator import KernelDelta, Tolerances, compare_summaries, kernel_deltas, validate_step_kinds
from ..comparison import Comparison
from ..errors import VllmProfileError
from ..repeats import RepeatSpread
from ..summary import ProfileSummary
from .output import emit


class CompareInputError(VllmProfileError):
    """A `vllm-profile compare` argument cannot be read as a trace, summary or baseline file."""


@dataclass
class CompareSide:
    summary: ProfileSummary
    spread: RepeatSpread | None
    label: str  # what was read, for messages


def _peek_json(path: Path) -> dict[str, Any] | None:
    """The parsed JSON object if `path` is a small plain-JSON summary/baseline, else None (a trace)."""
    name = path.name.lower()
    if name.endswith(".gz") or ".pt.trace" in name or not name.endswith(".json"):
        return None
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise CompareInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"traceEvents" in head:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CompareInputError(
            f"{path}: not valid JSON ({exc}); expected a trace, a summary JSON or a baseline file"
        ) from None
    if not isinstance(data, dict):
        raise CompareInputError(
            f"{path}: JSON top level is {type(data).__name__}, expected an object (a summary or a baseline file)"
        )
    if "traceEvents" in data:
        return None
    return data


def load_compare_side(arg: str, gpu: str | None = None, vllm_version: str | None = None) -> CompareSide:
    """Read one side of `vllm-profile compare`: a trace (file or folder), a summary JSON or a baseline file."""
    from ..baseline import entries_of, read_baseline_file
    from ..codec import ModelDecodeError, from_builtins
    from ..errors import BaselineError
    from ..schema_v1 import upgrade_summary
    from ..schemas import SchemaValidationError, validate_summary

    path = Path(arg)
    if not path.exists():
        raise CompareInputError(f"{arg}: no such file or folder")
    data = _peek_json(path) if path.is_file() else None
    if data is None:
        try:
            from ..analysis import summarize_path  # analysis is heavy: import only for traces
        except ImportError as exc:
            raise CompareInputError(
                f"{arg}: cannot summarize traces: the analysis module is unavailable ({exc})"
            ) from None
        return CompareSide(summarize_path(path), None, f"trace {path}")
    if "entries" in data and "test" in data:
        try:
            document = read_baseline_file(path)
        except BaselineError as exc:
            raise CompareInputError(str(exc)) from None
        entries = entries_of(document, path)
        listing = ", ".join(f"--gpu {e.gpu!r} --vllm-version {e.vllm_version!r}" for e in entries) or "none"
        chosen = [
            e
            for e in entries
            if (gpu is None or e.gpu == gpu) and (vllm_version is None or e.vllm_version == vllm_version)
        ]
        if not chosen:
            raise CompareInputError(
                f"{path}: no baseline entry matches --gpu {gpu!r} --vllm-version {vllm_version!r}; entries: {listing}"
            )
        if len(chosen) > 1:
            raise CompareInputError(f"{path}: holds {len(chosen)} baseline entries; pick one with {listing}")
        entry = chosen[0]
        return CompareSide(
            entry.summary,
            entry.spread,
            f"baseline {path} [{entry.gpu}, vLLM {entry.vllm_version}, {entry.repeats} repeat(s)]",
        )
    try:
        data = upgrade_summary(data)  # a 0.1.0 summary (schema_version 1) is checked in the current layout
        validate_summary(data, str(path))
        summary = from_builtins(data, ProfileSummary, str(path))
    except (SchemaValidationError, ModelDecodeError) as exc:
        raise CompareInputError(f"{path}: neither a baseline file nor a valid summary JSON: {exc}") from None
    return CompareSide(summary, None, f"summary {path}")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `compare` on the `vllm-profile` command's subparsers."""
    defaults = Tolerances()
    p = subparsers.add_parser(
        "compare",
        help="compare a candidate profile with a baseline (exit 1 on regression)",
        description="Compare CANDIDATE with BASELINE. Each is a trace (file or folder), a summary JSON "
        "(ProfileSummary) or a baseline file. Exit 0: no regression; 1: regression; 2: bad input.",
    )
    p.add_argument("baseline", metavar="BASELINE")
    p.add_argument("candidate", metavar="CANDIDATE")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument(
        "--rel-tol",
        type=float,
        default=None,
        help=f"relative time tolerance (default {defaults.rel_time}); when given, also the smallest "
        f"shift the statistical rule counts (default {defaults.min_effect})",
    )
    p.add_argument(
        "--abs-floor-us",
        type=float,
        default=defaults.abs_floor_us,
        help=f"absolute floor for per-kernel / per-layer times in µs (default {defaults.abs_floor_us})",
    )
    p.add_argument("--no-fail-on-drift", action="store_true", help="report new / missing kernels without failing")
    p.add_argument("--gpu", default=None, help="baseline-file entry to use: GPU key")
    p.add_argument("--vllm-version", default=None, help="baseline-file entry to use: vLLM version key")
    p.add_argument("--top", type=int, default=10, help="kernel rows in the text table (default 10)")
    p.add_argument(
        "--step-kinds",
        default=None,
        metavar="KINDS",
        help="compare only these step kinds' per-step metrics, comma-separated (e.g. decode)",
    )
    return p


def _kernel_table(rows: list[KernelDelta], top: int) -> list[str]:
    rows = [r for r in rows if r.delta_us != 0][:top]
    if not rows:
        return []
    out = [
        "",
        "top kernel changes (µs per step):",
        f"  {'step':<8} {'baseline':>10} {'candidate':>10} {'delta':>9} {'%':>8}  kernel",
    ]
    for r in rows:
        b = f"{r.baseline_us:.1f}" if r.baseline_us is not None else "-"
        c = f"{r.candidate_us:.1f}" if r.candidate_us is not None else "-"
        pct = f"{100 * r.delta_us / r.baseline_us:+.2f}" if r.baseline_us else "new"
        out.append(f"  {r.step_kind:<8} {b:>10} {c:>10} {r.delta_us:>+9.1f} {pct:>8}  {r.short_name}")
    return out


def comparison_json(comparison: Comparison, deltas: list[KernelDelta]) -> str:
    """The Comparison's JSON plus `kernel_deltas`: every kernel's µs per step on both sides, the
    rows of the text output's kernel table (largest change first), all of them."""
    rows = [
        {
            "name": d.name,
            "short_name": d.short_name,
            "step_kind": d.step_kind,
            "baseline_us": d.baseline_us,
            "candidate_us": d.candidate_us,
            "delta_us": d.delta_us,
        }
        for d in deltas
    ]
    return encode_json({**json.loads(encode_json(comparison)), "kernel_deltas": rows})


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 pass, 1 regression, 2 unusable input (message on stderr). A reader that closes
    stdout early (`| head`) does not change it: the verdict is the exit code, the output only explains it."""
    try:
        tol = Tolerances.from_options(
            rel_time=args.rel_tol, abs_floor_us=args.abs_floor_us, fail_on_drift=not args.no_fail_on_drift
        )
        base = load_compare_side(args.baseline, args.gpu, args.vllm_version)
        cand = load_compare_side(args.candidate, args.gpu, args.vllm_version)
        step_kinds = None
        if getattr(args, "step_kinds", None) is not None:
            step_kinds = validate_step_kinds(
                [k.strip() for k in args.step_kinds.split(",") if k.strip()], "--step-kinds"
            )
        comparison = compare_summaries(base.summary, cand.summary, tol, base.spread, cand.spread, step_kinds)
    except VllmProfileError as exc:
        print(f"vllm-profile compare: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unreadable file, bad gzip: still "unusable input", not a regression
        print(f"vllm-profile compare: error: {exc}", file=sys.stderr)
        return 2
    exit_code = 0 if comparison.passed else 1
    if args.json:
        emit(comparison_json(comparison, kernel_deltas(base.summary, cand.summary)))
    else:
        lines = [f"baseline:  {base.label}", f"candidate: {cand.label}", comparison.explain()]
        if comparison.improvements:
            largest = comparison.improvements[0].message
            lines.append(f"  {len(comparison.improvements)} improvement(s), largest: {largest}")
        lines.extend(_kernel_table(kernel_deltas(base.summary, cand.summary), args.top))
        emit("\n".join(lines))
    return exit_code
