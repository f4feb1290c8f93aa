"""One small interface for every way of getting a vLLM server: start -> wait healthy ->
base URL, trace dir, logs -> stop.

Implementations: `process.ProcessLauncher` (local `vllm serve`), `docker.DockerLauncher`
(container through the docker SDK, Docker or Podman socket), `url.UrlLauncher` (attach to
a running server). The profiler (torch or nsys) is part of the `ServerSpec`.
"""

from __future__ import annotations

import abc
import atexit
import os
import signal
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LauncherError
from ..redact import redact_text, secret_values
from ..setting_defaults import DEFAULT_HEALTH_TIMEOUT_S, DEFAULT_PROFILER


@dataclass
class ServerSpec:
    """Everything needed to boot one server. Equal specs can share one server."""

    model: str
    served_model_name: str | None = None
    server_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    profiler: str = DEFAULT_PROFILER  # "torch" or "nsys"
    trace_dir: Path | None = None  # where the profiler writes; launcher creates one if None
    host: str = "127.0.0.1"
    port: int | None = None  # None: pick a free port
    gpus: tuple[int, ...] | None = None  # CUDA_VISIBLE_DEVICES for this server; None: leave as is
    tensor_parallel_size: int = 1
    health_timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S
    log_path: Path | None = None
    # torch_profiler_with_stack: off unless a test asks (issue 12; CPU builds keep stacks,
    # launchers.vllm_args.resolve_profiler says why)
    with_stack: bool = False


@dataclass
class RunningServer:
    """What a started server offers to the capture step."""

    base_url: str  # e.g. http://127.0.0.1:8011
    trace_dir: Path  # folder (on this machine) where trace files appear
    log_path: Path | None
    profiler: str  # "torch" or "nsys"
    model_name: str  # name to put in requests
    vllm_version: str | None = None


class ServerDied(LauncherError):
    """The server (or one of its processes) died while a test waited on it or before it was reused."""


class Launcher(abc.ABC):
    """Start and stop one vLLM server. Use as a context manager."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.server: RunningServer | None = None

    @abc.abstractmethod
    def start(self) -> RunningServer:
        """Boot (or attach), wait until it serves requests (`readiness.wait_until_ready`), and
        return the running server.

        Raises LauncherError with the log tail when the server dies or never gets healthy.
        """

    @abc.abstractmethod
    def stop(self) -> None:
        """Tear down; idempotent; leaves no orphan process or container."""

    def log_tail(self, lines: int = 60) -> str:
        """Last lines of the server log (for error messages)."""
        return ""

    def redact(self, text: str) -> str:
        """`text` without the secret values of this server's env and arguments (for messages and logs)."""
        return redact_text(text, secret_values(self.spec.env, self.spec.server_args))

    def kill_now(self) -> None:
        """Stop at once (the session is being terminated): no graceful shutdown. Default: stop()."""
        self.stop()

    def check_alive(self) -> None:  # noqa: B027 - optional: launchers without a process keep the default
        """Raise `ServerDied` (exit code, log tail) when the server this launcher started is gone.

        Called while a capture waits on the server and before a pooled server is reused. Default:
        nothing to watch (a server someone else runs)."""

    def collect_traces(self) -> Path:
        """Post-process after /stop_profile if needed (nsys export) and return the trace location."""
        assert self.server is not None
        return self.server.trace_dir

    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it; the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def url_host(host: str) -> str:
    """How to write the server's listen `host` in a URL we connect to."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"  # the server listens everywhere; we talk to it locally
    return f"[{host}]" if ":" in host else host


# ---- safety net: every live launcher is stopped at exit / on SIGTERM ----------------------
_LIVE: set[Launcher] = set()
_LIVE_LOCK = threading.Lock()
_SAFETY_NET_INSTALLED = False


def _stop_all_live(kill: bool = False) -> None:
    with _LIVE_LOCK:
        launchers = list(_LIVE)
    for launcher in launchers:
        try:
            launcher.kill_now() if kill else launcher.stop()
        except Exception:  # noqa: BLE001 - best effort at exit; the next one must still be stopped
            pass


def _on_sigterm(signum: int, frame: object) -> None:
    # Killed, not stopped: a graceful vLLM shutdown during /stop_profile takes ~40 s, longer than
    # the 10 s a CI runner / systemd / Kubernetes waits before SIGKILL (issue 17).
    _stop_all_live(kill=True)
    # Then die the way SIGTERM would have killed us.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def track_live(launcher: Launcher) -> None:
    """Stop `launcher` at interpreter exit or on SIGTERM unless it is stopped before (untrack_live)."""
    global _SAFETY_NET_INSTALLED
    with _LIVE_LOCK:
        _LIVE.add(launcher)
        if _SAFETY_NET_INSTALLED:
            return
        _SAFETY_NET_INSTALLED = True
    atexit.register(_stop_all_live)
    # Ctrl-C arrives as KeyboardInterrupt and is handled by start()/stop(); SIGTERM would kill
    # us without atexit, so take it over -- only where nobody else did.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def untrack_live(launcher: Launcher) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(launcher)
