"""A server log's tail, and the likely root cause of a failed vLLM boot anywhere in the log.

A vLLM server that dies at startup usually ends its log with the API server's generic
wrapper ("RuntimeError: Engine core initialization failed. See root cause above. Failed core
proc(s): {}") and its traceback, while the real reason (a free-memory ValueError from the
EngineCore process, "Error in memory profiling ...", CUDA out of memory, an argparse error)
was printed much earlier. A log tail alone cuts it off, so launchers add these lines to
their errors.

No pytest imports.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

LOG_TAIL_LINES = 40  # what a launcher error quotes of the log's end
MAX_CAUSE_LINES = 8
# Boot logs of big models run to megabytes; on failure we read at most this much of it
# (its start and its end, where causes are).
MAX_LOG_BYTES = 16 * 1024 * 1024

# "(EngineCore_DP0 pid=1234) " / "(APIServer pid=1)" prefixes vLLM puts on multi-process output.
_PROCESS_PREFIX = re.compile(r"^\([\w.\-]+ pid=\d+\) ?")
# vLLM's logger header: "ERROR 07-15 10:01:02 [core.py:700] " (the date and file vary by version).
# Exactly one space is eaten after it: the indentation of a logged traceback line must survive.
_LOGGER_HEADER = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+\d\d-\d\d\s+[\d:.]+ (\[[^\]]*\] ?)?")
_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception)\b.*:")
_FRAME_LINE = re.compile(r'^\s*File ".*", line \d+')
# Generic wrappers that only point elsewhere ("see root cause above").
_WRAPPERS = ("Engine core initialization failed",)


def _body(line: str) -> tuple[str, str | None]:
    """The line without vLLM's process prefix and logger header, and the logger level if any."""
    rest = _PROCESS_PREFIX.sub("", line, count=1)
    header = _LOGGER_HEADER.match(rest)
    if header:
        return rest[header.end() :], header.group(1)
    return rest, None


def _is_cause(line: str) -> bool:
    body, level = _body(line)
    if not body.strip() or _FRAME_LINE.match(body) or any(w in body for w in _WRAPPERS):
        return False
    if body.startswith(("Traceback", " ", "\t")):
        # vLLM prefixes every line of a logged traceback with its ERROR header: the indented
        # lines are frames and source, not causes.
        return False
    if level in ("ERROR", "CRITICAL"):
        return True
    if level is not None:
        # What vLLM logs below ERROR is not why it died, even when it names an error: every boot
        # on the CI machine warns "Found ulimit of 20000 and failed to automatically increase
        # with error ... fd limit errors like `OSError: [Errno 24] ...`", which led the likely
        # causes of a worker's SIGILL before this check.
        return False
    return bool(_EXCEPTION_LINE.match(body)) or " ERROR " in line or "Error:" in body or ": error: " in body


def root_cause_lines(text: str, limit: int = MAX_CAUSE_LINES) -> list[str]:
    """Up to `limit` distinct error/exception lines of `text`, earliest first.

    Python traceback frames and generic wrapper errors are left out; lines that differ only
    in their process prefix or timestamp count once.
    """
    found: list[str] = []
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.rstrip()
        if not _is_cause(line):
            continue
        key = _body(line)[0].strip()
        if key in seen:
            continue
        seen.add(key)
        found.append(line)
        if len(found) >= limit:
            break
    return found


def read_log_for_causes(path: Path | None) -> str:
    """The text of the log at `path` (its first and last MAX_LOG_BYTES/2 when bigger); '' if absent."""
    if path is None or not Path(path).is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(0)
        if size <= MAX_LOG_BYTES:
            data = fh.read()
        else:
            half = MAX_LOG_BYTES // 2
            data = fh.read(half) + b"\n...\n"
            fh.seek(size - half)
            data += fh.read()
    return data.decode("utf-8", errors="replace")


def cause_section(text: str) -> str:
    """'likely cause (from the whole log):' and its lines, ending in a newline; '' when none."""
    lines = root_cause_lines(text)
    if not lines:
        return ""
    return "likely cause (from the whole log):\n" + "\n".join(f"  {line}" for line in lines) + "\n"


def read_log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of the log at `path` ("" when there is none)."""
    if path is None or not Path(path).is_file():
        return ""
    with open(path, "rb") as fh:
        # Read only the end: boot logs of big models can be megabytes long.
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 256 * 1024))
        text = fh.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])
