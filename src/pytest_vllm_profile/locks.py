"""Every inter-process lock of the project: exclusive `fcntl` locks on files, one holder at a time.

Three uses, one mechanism (flock on a lock file):

* `exclusive_lock(path)`: wait for the lock, hold it for a `with` block -- baseline
  read-modify-write (xdist workers writing one baseline file; its lock file lives in the
  host's lock folder, `file_lock_path`, not beside the baseline, where it would be committed)
  and boots of servers sharing a GPU (`ServerPool.boot_lock_paths`);
* `capture_lock(trace_dir)`: the same around one capture on a server, whose profiler does one
  thing at a time and whose trace folder is shared by every worker capturing from it;
* `try_lock(path)`: take the lock now or not at all, held until `HeldLock.release()` -- the
  reservation of a port for as long as the server on it lives (`reserve_port`).

A flock belongs to the open file description, so it dies with the process: a crashed
session never leaves a lock held (the lock files themselves stay; they are empty).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from .errors import LauncherError, VllmProfileError

# Lock file in a server's trace folder, taken around each capture on that server.
CAPTURE_LOCK_NAME = ".pytest-vllm-profile.lock"


class HeldLock:
    """A lock taken by `try_lock`; held until `release()` (or until this process exits)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock; idempotent. Closing the descriptor drops its flock."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __repr__(self) -> str:
        return f"HeldLock({str(self.path)!r}, held={self.held})"


def _open_lock_file(path: Path, mode: int) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, mode)


@contextmanager
def exclusive_lock(
    path: Path, error: type[VllmProfileError] = VllmProfileError, what: str = "lock file"
) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed), waiting for other holders.

    A lock file that cannot be created raises `error` naming `path` and `what` it is.
    """
    try:
        fd = _open_lock_file(path, 0o644)
    except OSError as exc:
        raise error(f"{path}: cannot create the {what}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def capture_lock(trace_dir: Path) -> AbstractContextManager[None]:
    """Hold the capture lock of the server writing into `trace_dir` (one capture at a time)."""
    return exclusive_lock(Path(trace_dir) / CAPTURE_LOCK_NAME, LauncherError, "capture lock file")


def try_lock(path: Path, mode: int = 0o644) -> HeldLock | None:
    """Take the exclusive lock on `path` if nobody holds it; None if someone does or the lock
    file cannot be created (both mean: not ours to use)."""
    try:
        fd = _open_lock_file(path, mode)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return HeldLock(path, fd)


def lock_folder() -> Path:
    """This user's folder of lock files on this host (in the system temp folder)."""
    return Path(tempfile.gettempdir()) / f"pytest-vllm-profile-locks-{os.getuid()}"


def file_lock_path(guarded: Path) -> Path:
    """The lock file guarding `guarded`, in `lock_folder()`: one per absolute path, so every
    process on the host that writes that file takes the same lock, and the folder holding the
    file (a baselines/ folder under version control) gets no lock files."""
    absolute = os.path.abspath(guarded)
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:24]
    folder = lock_folder()
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{Path(absolute).name}.{digest}.lock"


def port_lock_path(port: int) -> Path:
    """The host-wide reservation file of TCP `port` (in the system temp folder)."""
    return Path(tempfile.gettempdir()) / f"pytest-vllm-profile-port-{port}.lock"


def reserve_port(port: int) -> HeldLock | None:
    """This host's reservation of `port` (non-blocking), or None if another process holds it.

    A booting vLLM binds its port only at the end of its boot, so a port that is free now can
    still be taken by another session's booting server: sessions reserve it here first.
    """
    # 0o666: sessions of other users on the host must be able to open (and so lock) it too.
    return try_lock(port_lock_path(port), mode=0o666)
