"""`vllm-profile history [--history PATH_OR_URL]`: the series of the run history and their change
points (text or --json); `--gate` makes it the nightly gate (exit 1 on a slowdown that still
holds); `--import-jsonl FILE` imports a 0.1 JSON Lines history first.

Exit codes: 0 listed (gate passed), 1 gate failed, 2 the history cannot be read or a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..history import (
    HistoryError,
    Series,
    SeriesChange,
    current_slowdowns,
    detect,
    import_jsonl,
    metric_label,
    open_history,
)
from ..history.gate import DEFAULT_GATE_WINDOW, DEFAULT_MIN_CHANGE
from ..setting_defaults import DEFAULT_HISTORY_FILE
from .output import emit

HISTORY_ENV = "VLLM_PROFILE_HISTORY"  # the history when --history is not given


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `history` on the `vllm-profile` command's subparsers."""
    p = subparsers.add_parser(
        "history",
        help="list the run history's series and their change points; --gate: the nightly gate",
        description="Read the history database the plugin appends every profiled run to, find change points "
        "in each metric's series (E-divisive means with a permutation test) and list them.",
    )
    p.add_argument(
        "--history",
        default=None,
        metavar="PATH_OR_URL",
        help=f"SQLite file or postgresql:// URL (default ${HISTORY_ENV}, else {DEFAULT_HISTORY_FILE})",
    )
    p.add_argument("--test", default=None, metavar="NODEID", help="only this test's series")
    p.add_argument(
        "--metric", default=None, metavar="PREFIX", help="only metrics whose name starts with this, e.g. step.decode"
    )
    p.add_argument("--gpu", default=None, help="only runs on this GPU")
    p.add_argument(
        "--min-change",
        type=float,
        default=DEFAULT_MIN_CHANGE,
        metavar="FRACTION",
        help="smallest level change reported (default %(default)s)",
    )
    p.add_argument(
        "--window",
        type=int,
        default=DEFAULT_GATE_WINDOW,
        metavar="RUNS",
        help="--gate fails on a slowdown that starts within the newest RUNS runs (default %(default)s)",
    )
    p.add_argument("--gate", action="store_true", help="exit 1 when a slowdown still holds")
    p.add_argument("--changes-only", action="store_true", help="list only series with a change point")
    p.add_argument(
        "--import-jsonl",
        default=None,
        metavar="FILE",
        help="import a 0.1 JSON Lines history into the database first (runs already there are kept once)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def _change_json(c: SeriesChange) -> dict[str, Any]:
    run = c.run
    return {
        "index": c.point.index,
        "run": run.id,
        "created": run.created,
        "commit": run.commit,
        "vllm_version": run.vllm_version,
        "mean_before": c.point.mean_before,
        "mean_after": c.point.mean_after,
        "relative_change": c.point.relative_change,
        "pvalue": c.point.pvalue,
        "qhat": c.point.qhat,
        "slowdown": c.is_slowdown,
        "description": c.describe(),
    }


def _series_json(s: Series, changes: list[SeriesChange]) -> dict[str, Any]:
    return {
        "gpu": s.gpu,
        "test": s.nodeid,
        "metric": s.metric,
        "label": metric_label(s.metric),
        "unit": s.unit,
        "runs": [r.id for r in s.runs],
        "values": s.values,
        "change_points": [_change_json(c) for c in changes],
    }


def _fmt(value: float, unit: str) -> str:
    return f"{value / 1000:.3f} ms" if unit == "us" else f"{value:g} {unit}" if unit != "value" else f"{value:g}"


def run(args: argparse.Namespace) -> int:
    location = args.history or os.environ.get(HISTORY_ENV) or DEFAULT_HISTORY_FILE
    if args.window < 1 or args.min_change < 0:
        print("vllm-profile history: error: --window must be >= 1 and --min-change >= 0", file=sys.stderr)
        return 2
    try:
        with open_history(location) as store:
            imported = import_jsonl(store, args.import_jsonl) if args.import_jsonl else None
            series = store.series(nodeid=args.test, metric=args.metric, gpu=args.gpu)
            n_runs, version, where = len(store.runs()), store.schema_version(), store.location
    except HistoryError as exc:
        print(f"vllm-profile history: error: {exc}", file=sys.stderr)
        return 2
    changes = detect(series, min_change=args.min_change)
    by_series: dict[int, list[SeriesChange]] = {}
    for c in changes:
        by_series.setdefault(id(c.series), []).append(c)
    failing = current_slowdowns(changes, args.window)
    shown = [s for s in series if by_series.get(id(s)) or not args.changes_only]
    if args.json:
        doc = {
            "history": where,
            "schema_version": version,
            "runs": n_runs,
            "imported": None if imported is None else {"runs": imported[0], "already_there": imported[1]},
            "series": [_series_json(s, by_series.get(id(s), [])) for s in shown],
            "gate": {
                "window": args.window,
                "passed": not failing,
                "slowdowns": [
                    {
                        "test": c.series.nodeid,
                        "gpu": c.series.gpu,
                        "metric": c.series.metric,
                        "description": c.describe(),
                    }
                    for c in failing
                ],
            },
        }
        emit(json.dumps(doc, indent=2))
    else:
        lines = [
            f"history: {where} (schema {version}): {n_runs} run(s), {len(series)} series, "
            f"{len(changes)} change point(s)"
        ]
        if imported is not None:
            lines.append(f"imported {imported[0]} run(s) from {args.import_jsonl} ({imported[1]} already there)")
        for s in shown:
            lines.append(
                f"{s.nodeid} [{s.gpu or 'unknown GPU'}] {s.metric}: {len(s.values)} run(s), "
                f"last {_fmt(s.values[-1], s.unit)}"
            )
            lines.extend(f"    {c.describe()}" for c in by_series.get(id(s), []))
        if args.gate:
            lines.append("gate: " + ("passed" if not failing else f"FAILED, {len(failing)} slowdown(s) still hold:"))
            lines.extend(f"    {c.series.nodeid}: {c.describe()}" for c in failing)
        emit("\n".join(lines))
    return 1 if args.gate and failing else 0
