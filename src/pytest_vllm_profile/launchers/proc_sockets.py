"""Which process listens on a TCP port, from /proc (Linux): the proof that the server answering
on a launcher's port is the launcher's own.

A port can be taken by another server between picking it and binding it (another session,
a leftover server): the issue saw a launcher report "healthy" after 0.35 s while talking to a
foreign server, its own vLLM child having exited with "Address already in use". Readiness
therefore requires the listening socket to be held by a process of the launcher's own
process group: `/proc/net/tcp{,6}` maps the port to socket inodes, `/proc/<pid>/fd` of the
group's members holds `socket:[inode]` links.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def listening_inodes(port: int, proc: Path = Path("/proc")) -> set[int] | None:
    """Socket inodes listening on `port` (IPv4 and IPv6); None when /proc/net/tcp is not readable."""
    found: set[int] = set()
    readable = False
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port:
                found.add(int(fields[9]))
    return found if readable else None


def socket_inodes_of(pid: int, proc: Path = Path("/proc")) -> set[int]:
    """Inodes of the sockets process `pid` holds open (empty when its fds are not readable)."""
    inodes: set[int] = set()
    fd_dir = proc / str(pid) / "fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(fd_dir / name)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def port_owned_by(port: int, pids: Iterable[int], proc: Path = Path("/proc")) -> bool | None:
    """True when one of `pids` holds a socket listening on `port`, False when none does, None when
    /proc cannot tell (not Linux, /proc/net hidden): then the caller cannot prove it either way."""
    listening = listening_inodes(port, proc)
    if listening is None:
        return None
    if not listening:
        return False
    return any(socket_inodes_of(pid, proc) & listening for pid in pids)
