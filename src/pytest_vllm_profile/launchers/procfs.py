"""What /proc (Linux) says about a launcher's processes: the members of its process group (what
teardown must reach), a process's parent, and which process listens on a TCP port — the proof
that the server answering on a launcher's port is the launcher's own.

A port can be taken by another server between picking it and binding it (another session,
a leftover server): the issue saw a launcher report "healthy" after 0.35 s while talking to a
foreign server, its own vLLM child having exited with "Address already in use". Readiness
therefore requires the listening socket to be held by a process of the launcher's own
process group: `/proc/net/tcp{,6}` maps the port to socket inodes, `/proc/<pid>/fd` of the
group's members holds `socket:[inode]` links.

A server that nsys starts is outside that group: `nsys launch` (2022.4) starts it from nsys's
daemon, and under `nsys profile` (2025.3 on an H200) the API server answering on the port was
in no process of the group either, so the launcher waited for its whole health timeout on a
healthy server. Such a server is recognised by a mark in its environment instead
(`port_owned_by_marked`), which nsys passes on to the application it starts.
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


def listening_pids(port: int, proc: Path = Path("/proc")) -> list[int] | None:
    """Processes holding a socket that listens on `port`; None when /proc cannot tell."""
    listening = listening_inodes(port, proc)
    if listening is None:
        return None
    if not listening:
        return []
    pids = (int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    return [pid for pid in pids if socket_inodes_of(pid, proc) & listening]


def environ_has(pid: int, key: str, value: str, proc: Path = Path("/proc")) -> bool | None:
    """Whether process `pid` was started with `key=value` in its environment; None when unreadable."""
    try:
        data = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    return f"{key}={value}".encode() in data.split(b"\0")


def marked_pids(key: str, value: str, proc: Path = Path("/proc")) -> list[int]:
    """Live processes started with `key=value` in their environment (readable ones only)."""
    if not proc.is_dir():
        return []
    found = []
    for entry in proc.iterdir():
        if entry.name.isdigit() and environ_has(int(entry.name), key, value, proc) and not _is_zombie(entry):
            found.append(int(entry.name))
    return found


def _stat_fields(stat_file: Path) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces): state ppid
    pgrp ...; None when the process is gone."""
    try:
        stat = stat_file.read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def _is_zombie(entry: Path) -> bool:
    fields = _stat_fields(entry / "stat")
    return fields is None or fields[:1] == ["Z"]  # gone counts as dead too


def port_owned_by_marked(port: int, key: str, value: str, proc: Path = Path("/proc")) -> bool | None:
    """True when a process started with `key=value` in its environment listens on `port`, False when
    the listeners' environments show no such mark, None when /proc cannot tell."""
    pids = listening_pids(port, proc)
    if pids is None:
        return None
    if not pids:
        return False
    marks = [environ_has(pid, key, value, proc) for pid in pids]
    if any(marks):
        return True
    return None if all(m is None for m in marks) else False


def process_group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`, from /proc (Linux)."""
    proc_root = Path("/proc")
    if not proc_root.is_dir():  # not Linux: ask the kernel whether the group exists at all
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry / "stat")
        if fields is not None and len(fields) >= 3 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def parent_of(pid: int) -> int | None:
    """The parent process of `pid`, from /proc/<pid>/stat; None when it is gone."""
    fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    return int(fields[1]) if fields is not None else None
