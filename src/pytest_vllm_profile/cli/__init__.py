"""`vllm-profile` command line: the one place every subcommand is registered.

Each subcommand is a module of this package with the same two functions:

* `add_parser(subparsers) -> argparse.ArgumentParser` registers the subcommand and its options,
* `run(args) -> int` does the work and returns the exit code.

`SUBCOMMANDS` lists those modules; adding a subcommand is one module and one entry there.
The cli sits on top of the library: no library module imports this package.

Exit codes: 0 ok, 1 the input could not be analysed (message on stderr), 2 usage error;
`compare`: 0 pass, 1 regression, 2 unusable input; `history --gate`: 0 pass, 1 slowdown, 2 unreadable history.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from ..errors import VllmProfileError
from . import compare, history, report, summarize, tiny_model
from .output import detach_closed_stdout

SUBCOMMANDS: tuple[ModuleType, ...] = (summarize, compare, report, history, tiny_model)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vllm-profile", description="Analyse vLLM torch-profiler traces.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in SUBCOMMANDS:
        command.add_parser(sub).set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on usage errors
    try:
        return int(args.run(args))
    except VllmProfileError as exc:
        print(f"vllm-profile {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Output piped into `head` and closed early, in a subcommand whose exit code is not a
        # verdict (those write through `output.emit` and keep their code): not an error.
        detach_closed_stdout()
        return 0
    except OSError as exc:  # unreadable file, bad gzip, ...
        print(f"vllm-profile {args.command}: error: {exc}", file=sys.stderr)
        return 1
