"""The session folders under the trace root (`<trace root>/<stamp>/<worker>/`): their names,
and the retention rule that deletes the oldest (`SessionSettings.keep_sessions`).

A stamp is `<UTC time %Y%m%dT%H%M%SZ>-<pid>-<count>`, so names sort by start time. Only folders named
like a stamp are ever deleted (anything else under the trace root is the user's), and never
one whose process is still running (another session on this host using the same root).
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

STAMP = re.compile(r"^(\d{8}T\d{6}Z)-(\d+)(?:-\d+)?$")  # the count is absent in names of 0.1.0


_stamps_made = 0


def new_stamp() -> str:
    """The name of a new session folder: its start time (UTC), this process's id and a count, so
    two sessions of one process in one second (pytester runs in-process) get their own folders."""
    global _stamps_made
    _stamps_made += 1
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}-{_stamps_made}"


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running
        return True
    return True


def prune_sessions(trace_root: Path, keep: int, current: str | None = None) -> list[Path]:
    """Delete the oldest session folders so that `keep` remain counting the current one (which
    may not exist yet); `keep` 0 deletes nothing. Returns the deleted folders, oldest first."""
    if keep <= 0 or not trace_root.is_dir():
        return []
    try:
        names = sorted(p.name for p in trace_root.iterdir() if p.is_dir() and STAMP.match(p.name))
    except OSError:
        return []
    others = [n for n in names if n != current]
    room = keep - 1 if current is not None else keep
    deleted = []
    for name in others[: max(0, len(others) - room)]:
        match = STAMP.match(name)
        assert match is not None
        if _running(int(match.group(2))):
            continue
        path = trace_root / name
        shutil.rmtree(path, ignore_errors=True)
        deleted.append(path)
    return deleted
