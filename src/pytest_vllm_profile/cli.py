"""`vllm-profile` command line.

Each subcommand lives in its own module exposing `add_parser(subparsers)`, which registers
the subcommand and sets `func` (args -> exit code) as its default. Adding a subcommand is
one import and one entry in `SUBCOMMANDS`.

Exit codes: 0 ok, 1 the input could not be analysed (message on stderr), 2 usage error.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .errors import VllmProfileError
from .analysis.summarize_command import add_parser as add_summarize
from .comparator import add_compare_parser as add_compare
from .report import add_report_parser as add_report

SUBCOMMANDS = [add_summarize, add_compare, add_report]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vllm-profile", description="Analyse vLLM torch-profiler traces.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on usage errors
    try:
        return int(args.func(args))
    except VllmProfileError as exc:
        print(f"vllm-profile {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        # Point stdout at devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # unreadable file, bad gzip, ...
        print(f"vllm-profile {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
