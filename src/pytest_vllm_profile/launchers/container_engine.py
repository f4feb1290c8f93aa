"""The container engine (Docker, or Podman's Docker-compatible API) behind the docker launcher.

Which engine to talk to (explicit option > DOCKER_HOST > a Podman socket found > Docker's
default), a docker SDK client for it with a clear error when it is unreachable, which engine
it is, and the labels our containers carry, by which leftovers of a crashed run (owner process
gone, on this host) are found and removed.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import LauncherError

# Labels every container of ours carries (leftover cleanup filters on the first one).
LABEL = "pytest-vllm-profile"
LABEL_SESSION = "pytest-vllm-profile.session"
LABEL_OWNER_PID = "pytest-vllm-profile.owner-pid"
LABEL_OWNER_HOST = "pytest-vllm-profile.owner-host"

DOCKER_DEFAULT_URL = "unix:///var/run/docker.sock"


def podman_socket_candidates(uid: int | None = None, environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where a Podman API socket usually lives, most specific first (rootless, then rootful)."""
    environ = os.environ if environ is None else environ
    uid = os.getuid() if uid is None else uid
    paths: list[Path] = []
    if environ.get("XDG_RUNTIME_DIR"):
        paths.append(Path(environ["XDG_RUNTIME_DIR"]) / "podman" / "podman.sock")
    paths.append(Path("/run/podman/podman.sock"))
    paths.append(Path(f"/run/user/{uid}/podman/podman.sock"))
    return list(dict.fromkeys(paths))


def resolve_engine_url(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The engine URL: explicit option > DOCKER_HOST > a Podman socket found > Docker's default."""
    environ = os.environ if environ is None else environ
    if explicit:
        return explicit
    if environ.get("DOCKER_HOST"):
        return environ["DOCKER_HOST"]
    for path in podman_socket_candidates(environ=environ):
        if path.is_socket():
            return f"unix://{path}"
    return DOCKER_DEFAULT_URL


def engine_of(version: Mapping[str, Any]) -> str:
    """'podman' or 'docker', from the engine's /version answer (Podman names itself there)."""
    names = [str(c.get("Name", "")) for c in version.get("Components") or []]
    names.append(str((version.get("Platform") or {}).get("Name", "")))
    return "podman" if any("podman" in n.lower() for n in names) else "docker"


def pid_is_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def cleanup_leftovers(client: Any, hostname: str | None = None) -> list[str]:
    """Remove our containers whose owner process (on this host) is gone; return their names.

    Containers of live owners (a parallel run) and of other hosts (a shared engine) stay.
    """
    hostname = hostname or socket.gethostname()
    removed: list[str] = []
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
        labels = container.labels or {}
        if labels.get(LABEL_OWNER_HOST, hostname) != hostname:
            continue
        try:
            pid = int(labels.get(LABEL_OWNER_PID, "0"))
        except ValueError:
            pid = 0
        if pid_is_alive(pid):
            continue
        try:
            container.remove(force=True)
        except Exception as exc:  # noqa: BLE001 - the engine's NotFound/APIError; removal raced
            if "no such container" not in str(exc).lower() and "not found" not in str(exc).lower():
                raise LauncherError(f"could not remove leftover container {container.name}: {exc}") from None
        removed.append(container.name)
    return removed


def connect(base_url: str | None = None) -> Any:
    """A docker SDK client for the resolved engine URL, with a clear error when unreachable."""
    try:
        import docker
    except ImportError:
        raise LauncherError(
            "the container launcher needs the docker SDK: pip install 'pytest-vllm-profile[docker]'"
        ) from None
    url = resolve_engine_url(base_url)
    try:
        client = docker.DockerClient(base_url=url)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - DockerException/requests errors
        raise LauncherError(
            f"cannot reach a container engine at {url}: {short_error(exc)}; start Docker, or Podman's API "
            f"(`podman system service --time=0 unix:///run/podman/podman.sock`), or set DOCKER_HOST"
        ) from None
    return client


def short_error(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return text if len(text) < 2000 else text[-2000:]
