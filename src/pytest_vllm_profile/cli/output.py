"""Writing a subcommand's output to stdout when the reader may close the pipe early.

`vllm-profile compare ... | head -3`: `head` exits after three lines and the next write fails
with BrokenPipeError (Python ignores SIGPIPE). The output is then unread, but the exit code
still has to be the verdict's, so a regression piped into `head` still fails a CI step.
"""

from __future__ import annotations

import os
import sys


def detach_closed_stdout() -> None:
    """Point stdout's descriptor at /dev/null, so the interpreter's final flush of what is
    left in the buffer does not fail again (which would print "Exception ignored" and exit 120)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def emit(text: str) -> bool:
    """Write `text` and a newline to stdout now (flushed); False when the reader had closed it."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        detach_closed_stdout()
        return False
    return True
