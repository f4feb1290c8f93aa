"""locks: real `fcntl` locks contended by real processes (fork), no doubles."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from pytest_vllm_profile.errors import BaselineError, LauncherError
from pytest_vllm_profile.locks import (
    CAPTURE_LOCK_NAME,
    capture_lock,
    exclusive_lock,
    port_lock_path,
    reserve_port,
    try_lock,
)

FORK = multiprocessing.get_context("fork")


def _hold_then_mark(path: str, seconds: float, taken: multiprocessing.synchronize.Event) -> None:
    with exclusive_lock(Path(path)):
        taken.set()
        time.sleep(seconds)
        Path(path + ".released").write_text("x")  # written while still holding the lock


def _hold_with_try_lock(
    path: str, taken: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event
) -> None:
    held = try_lock(Path(path))
    assert held is not None
    taken.set()
    release.wait(30)
    held.release()


def test_exclusive_lock_waits_for_the_other_process(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    taken = FORK.Event()
    holder = FORK.Process(target=_hold_then_mark, args=(str(lock), 0.5, taken))
    holder.start()
    assert taken.wait(10)
    started = time.monotonic()
    with exclusive_lock(lock):
        # Reachable only once the other process let go, i.e. after it wrote its mark.
        assert (tmp_path / "lock.released").is_file()
        assert time.monotonic() - started > 0.2
    holder.join(5)
    assert holder.exitcode == 0


def test_try_lock_refuses_while_another_process_holds_it_and_succeeds_after(tmp_path: Path) -> None:
    lock = tmp_path / "port.lock"
    taken, release = FORK.Event(), FORK.Event()
    holder = FORK.Process(target=_hold_with_try_lock, args=(str(lock), taken, release))
    holder.start()
    try:
        assert taken.wait(10)
        assert try_lock(lock) is None
    finally:
        release.set()
        holder.join(10)
    assert holder.exitcode == 0
    mine = try_lock(lock)
    assert mine is not None and mine.held
    mine.release()
    mine.release()  # idempotent
    assert not mine.held


def test_a_killed_holder_leaves_the_lock_free(tmp_path: Path) -> None:
    # flock dies with the process: a crashed session never keeps a port or a baseline locked.
    lock = tmp_path / "lock"
    taken, release = FORK.Event(), FORK.Event()
    holder = FORK.Process(target=_hold_with_try_lock, args=(str(lock), taken, release))
    holder.start()
    assert taken.wait(10)
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    assert holder.exitcode == -signal.SIGKILL
    held = try_lock(lock)
    assert held is not None
    held.release()


def test_exclusive_lock_excludes_a_second_holder_in_the_same_process_too(tmp_path: Path) -> None:
    # Each exclusive_lock opens its own file description, so flock excludes even within one process.
    lock = tmp_path / "lock"
    with exclusive_lock(lock):
        assert try_lock(lock) is None
    held = try_lock(lock)
    assert held is not None
    held.release()


def test_lock_file_that_cannot_be_created_names_the_path_and_what_it_is(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / ".baseline.json.lock"
    with pytest.raises(
        BaselineError,
        match=r"no-such-folder/\.baseline\.json\.lock: cannot create the baseline lock "
        r"file: No such file or directory",
    ):
        with exclusive_lock(missing, BaselineError, "baseline lock file"):
            pass
    with pytest.raises(LauncherError, match="cannot create the capture lock file"):
        with capture_lock(tmp_path / "no-such-trace-dir"):
            pass
    assert try_lock(missing) is None


def test_capture_lock_is_the_lock_file_in_the_trace_folder(tmp_path: Path) -> None:
    with capture_lock(tmp_path):
        assert (tmp_path / CAPTURE_LOCK_NAME).is_file()
        assert try_lock(tmp_path / CAPTURE_LOCK_NAME) is None


def test_reserve_port_is_exclusive_per_port_until_released() -> None:
    port = 65000 + os.getpid() % 500  # a port number only this test process uses for its lock name
    first = reserve_port(port)
    assert first is not None and first.path == port_lock_path(port)
    try:
        assert reserve_port(port) is None
        other = reserve_port(port + 1)
        assert other is not None
        other.release()
    finally:
        first.release()
    again = reserve_port(port)
    assert again is not None
    again.release()
