"""`vllm-profile report RESULTS.json --out DIR [--history PATH_OR_URL] [--append-history] [--job-summary FILE]`:
re-render the HTML report (and job summary / history) from a results file, offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import VllmProfileError
from ..history import open_history
from ..report import load_results, write_html_report, write_job_summary
from .output import emit


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `report` on the `vllm-profile` command's subparsers."""
    p = subparsers.add_parser(
        "report",
        help="render the HTML report (and job summary / history) from a results file, offline",
        description="Render index.html + PNG plots from the results file written by "
        "`pytest --vllm-profile --vllm-results PATH`.",
    )
    p.add_argument("results", type=Path, help="results JSON written by the plugin (--vllm-results)")
    p.add_argument("--out", type=Path, required=True, help="folder for index.html and its plots")
    p.add_argument(
        "--history",
        default=None,
        metavar="PATH_OR_URL",
        help="history database (SQLite file or postgresql:// URL) to plot the series and change points from",
    )
    p.add_argument(
        "--append-history",
        action="store_true",
        help="append this run to --history first (when the plugin did not: it appends by default)",
    )
    p.add_argument(
        "--job-summary",
        type=Path,
        default=None,
        help='append the Markdown job summary to this file (e.g. "$GITHUB_STEP_SUMMARY")',
    )
    return p


def run(args: argparse.Namespace) -> int:
    """Exit code 0 when the report was written, 1 when the input cannot be rendered, 2 on a
    usage error (the cli's convention); the message on stderr says why."""
    if args.append_history and args.history is None:
        print("vllm-profile report: error: --append-history needs --history PATH_OR_URL", file=sys.stderr)
        return 2
    try:
        results = load_results(args.results)
        if args.append_history:
            with open_history(args.history) as store:
                store.append_run(results)
        index = write_html_report(
            results, args.out, history=args.history, trace_base=Path(args.results).resolve().parent
        )
        if args.job_summary is not None:
            write_job_summary(results, args.job_summary, append=True)
    except VllmProfileError as exc:
        print(f"vllm-profile report: error: {exc}", file=sys.stderr)
        return 1
    emit(f"vllm-profile report: wrote {index}")
    return 0
