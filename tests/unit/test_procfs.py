"""The readiness proof that a port's listener is the launcher's own server (launchers/procfs.py),
on real processes and this machine's /proc."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pytest_vllm_profile.launchers.base import free_port
from pytest_vllm_profile.launchers.process import SERVER_MARK_ENV
from pytest_vllm_profile.launchers.procfs import (
    listening_pids,
    marked_pids,
    port_owned_by,
    port_owned_by_marked,
    process_group_members,
)

LISTENER = """
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
time.sleep(60)
"""


@pytest.fixture
def listener_in_another_session() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """A process that listens on a free port from its own session (as nsys starts a server), its
    environment carrying SERVER_MARK_ENV=mark-1."""
    port = free_port("127.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, "-c", LISTENER, str(port)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, SERVER_MARK_ENV: "mark-1"},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
    yield port, proc
    proc.kill()
    proc.wait()


def test_a_listener_outside_the_group_is_proved_by_its_environment_mark(
    listener_in_another_session: tuple[int, subprocess.Popen[str]],
) -> None:
    port, proc = listener_in_another_session
    assert listening_pids(port) == [proc.pid]
    # The process-group proof cannot see it (it leads its own group, like a server nsys starts) ...
    assert port_owned_by(port, process_group_members(os.getpgid(0))) is False
    assert port_owned_by(port, process_group_members(proc.pid)) is True
    # ... the mark in its environment can, and only the right mark.
    assert port_owned_by_marked(port, SERVER_MARK_ENV, "mark-1") is True
    assert port_owned_by_marked(port, SERVER_MARK_ENV, "mark-2") is False
    assert port_owned_by_marked(port, "SOME_OTHER_KEY", "mark-1") is False
    # How stop() finds what nsys started outside the group.
    assert marked_pids(SERVER_MARK_ENV, "mark-1") == [proc.pid]
    assert marked_pids(SERVER_MARK_ENV, "mark-2") == []
    proc.kill()
    proc.wait()
    assert marked_pids(SERVER_MARK_ENV, "mark-1") == []


def test_no_listener_is_no_proof() -> None:
    port = free_port("127.0.0.1")
    assert listening_pids(port) == []
    assert port_owned_by_marked(port, SERVER_MARK_ENV, "mark-1") is False
