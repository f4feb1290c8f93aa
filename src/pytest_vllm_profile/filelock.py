"""One inter-process lock helper: an exclusive `fcntl` lock on a file, one holder at a time.

Used for baseline read-modify-write (xdist workers writing one baseline file), for captures
on a shared server and for boots of servers sharing a GPU.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import VllmProfileError


@contextmanager
def exclusive_lock(path: Path, error: type[VllmProfileError] = VllmProfileError,
                   what: str = "lock file") -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed); `error` names a failure to create it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise error(f"{path}: cannot create the {what}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
