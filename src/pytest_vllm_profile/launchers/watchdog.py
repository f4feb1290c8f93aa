"""A watchdog process per local server: kills the server's process group when its owner is gone.

The owner (the pytest process, or one xdist worker) holds the write end of a pipe whose read
end is the watchdog's stdin. However the owner ends -- SIGTERM, SIGKILL, a crash, a normal
exit that forgot to stop the server -- the kernel closes the pipe, the watchdog reads EOF and
sends SIGTERM to the server's group, then SIGKILL after `KILL_GRACE_S`. Under xdist it also
watches the controller (the worker's parent): a controller killed alone takes its workers'
servers with it within a second or two.

The watchdog runs in its own session, so a signal to the pytest process group does not reach
it, and it ignores SIGINT/SIGTERM/SIGHUP; it exits once the server's group is gone. It is a
standalone script (`python -I -c WATCHDOG_SOURCE`): it needs no import of this package in the
child, which may run under another interpreter's path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

# SIGTERM to the group, then this long before SIGKILL: vLLM needs ~40 s for a graceful
# shutdown during /stop_profile, far past a CI runner's usual 10 s grace, so the owner being
# gone means "kill now", not "shut down cleanly".
KILL_GRACE_S = 2.0

WATCHDOG_SOURCE = r"""
import os, select, signal, sys, time
pgid, grace, parent = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
def group_alive():
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
def parent_alive():
    if parent <= 0:
        return True
    try:
        os.kill(parent, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
while group_alive():
    ready, _, _ = select.select([0], [], [], 0.5)
    if ready and not os.read(0, 4096):
        break  # owner gone (EOF)
    if not parent_alive():
        break  # xdist controller gone
else:
    sys.exit(0)  # the server was stopped by its owner
try:
    os.killpg(pgid, signal.SIGTERM)
except ProcessLookupError:
    sys.exit(0)
deadline = time.monotonic() + grace
while time.monotonic() < deadline and group_alive():
    time.sleep(0.05)
try:
    os.killpg(pgid, signal.SIGKILL)
except ProcessLookupError:
    pass
"""


def start_watchdog(
    pgid: int, grace_s: float = KILL_GRACE_S, also_watch_pid: int | None = None
) -> subprocess.Popen[bytes]:
    """Start the watchdog of process group `pgid`; keep the returned Popen (its stdin is the pipe)
    until the group is stopped, then `stop_watchdog` it."""
    return subprocess.Popen(
        [sys.executable, "-I", "-c", WATCHDOG_SOURCE, str(pgid), str(grace_s), str(also_watch_pid or 0)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_watchdog(watchdog: subprocess.Popen[bytes] | None) -> None:
    """Close the pipe (the group is gone already, so the watchdog just exits) and reap it."""
    if watchdog is None:
        return
    if watchdog.stdin is not None:
        try:
            watchdog.stdin.close()
        except OSError:
            pass
    try:
        watchdog.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.kill(watchdog.pid, signal.SIGKILL)
        watchdog.wait()


def xdist_controller_pid() -> int | None:
    """The controller's pid when this process is a pytest-xdist worker (its parent), else None."""
    return os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else None
