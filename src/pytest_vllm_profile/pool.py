"""`ServerPool`: one vLLM server per distinct server identity, shared by every test that needs it.

A session (or one pytest-xdist worker) owns one pool. Workloads whose `Workload.server_key()`
match share a server; the profiler and the launcher settings are part of the identity too.
Booting a vLLM server takes minutes, so the pool

* keeps servers alive across tests (at most `max_live_servers` at once; the least recently
  used one is stopped first, because two servers on one GPU set would fight for memory),
* remembers a server that failed to boot and fails every later request for it at once with
  the same reason (instead of spending another health timeout on it),
* stops everything on `stop_all()` (idempotent; the plugin calls it at session end, on
  KeyboardInterrupt and at interpreter exit).

Under pytest-xdist each worker gets its own GPU set and port range, derived from the worker
index by the pure functions `worker_index`, `gpu_assignment` and `port_range`.

No pytest imports.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LauncherError
from .launchers.base import Launcher, RunningServer, ServerDied, ServerSpec
from .locks import HeldLock, exclusive_lock, reserve_port
from .setting_defaults import (
    DEFAULT_HEALTH_TIMEOUT_S,
    DEFAULT_LAUNCHER,
    DEFAULT_MAX_SERVERS,
    DEFAULT_PROFILER,
    DEFAULT_WORKERS_PER_GPU,
)
from .workload import Workload

LauncherFactory = Callable[[ServerSpec], Launcher]

DEFAULT_BASE_PORT = 8100
PORTS_PER_WORKER = 50


def worker_index(env: Mapping[str, str] | None = None) -> int | None:
    """The pytest-xdist worker number from `PYTEST_XDIST_WORKER` ("gw3" -> 3); None outside xdist."""
    env = os.environ if env is None else env
    name = env.get("PYTEST_XDIST_WORKER", "")
    if not name:
        return None
    digits = name[2:] if name.startswith("gw") else name
    if not digits.isdigit():
        raise LauncherError(f"PYTEST_XDIST_WORKER={name!r}: expected a worker name like 'gw0'")
    return int(digits)


def nvidia_smi_gpu_count() -> int | None:
    """GPUs on this machine (nvidia-smi, without touching CUDA), for per-worker GPU sets; None when unknown."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def visible_gpus(cuda_visible_devices: str | None, gpu_count: int | None) -> list[str] | None:
    """The GPU ids this process may use: `CUDA_VISIBLE_DEVICES` if set, else 0..gpu_count-1.

    None when neither is known (no GPU information: leave the server's environment alone).
    """
    if cuda_visible_devices is not None:
        ids = [d.strip() for d in cuda_visible_devices.split(",") if d.strip()]
        return ids
    if gpu_count is not None:
        return [str(i) for i in range(gpu_count)]
    return None


def gpu_assignment(
    worker: int | None,
    tensor_parallel_size: int,
    cuda_visible_devices: str | None,
    gpu_count: int | None,
    workers_per_gpu: int = 1,
) -> tuple[str, ...] | None:
    """GPUs for the server of xdist worker `worker`: GPUs N*tp .. N*tp+tp-1 of the visible set.

    With `workers_per_gpu` W > 1, W consecutive workers share one GPU slice (worker N uses
    slice N // W): several small servers on one GPU, each started with a lower
    `--gpu-memory-utilization` by the test's own server args.
    Outside xdist (`worker` None) the first `tensor_parallel_size` visible GPUs. None when no
    GPU information is known (CPU servers, or a launcher that manages devices itself).
    Raises LauncherError when the worker's slice does not exist (too many workers for the GPUs).
    """
    if workers_per_gpu < 1:
        raise LauncherError(f"workers_per_gpu={workers_per_gpu}: must be >= 1")
    if tensor_parallel_size < 1:
        raise LauncherError(f"tensor_parallel_size={tensor_parallel_size}: must be >= 1")
    ids = visible_gpus(cuda_visible_devices, gpu_count)
    if ids is None:
        return None
    n = worker or 0
    first = (n // workers_per_gpu) * tensor_parallel_size
    chosen = ids[first : first + tensor_parallel_size]
    if len(chosen) < tensor_parallel_size:
        who = f"xdist worker gw{n}" if worker is not None else "this session"
        raise LauncherError(
            f"{who} needs GPUs {first}..{first + tensor_parallel_size - 1} (tensor_parallel_size="
            f"{tensor_parallel_size}) but only {len(ids)} are visible ({','.join(ids) or 'none'}); "
            f"use fewer xdist workers (-n), more GPUs, or --vllm-workers-per-gpu to share them"
        )
    return tuple(chosen)


def port_range(worker: int | None, base_port: int = DEFAULT_BASE_PORT, width: int = PORTS_PER_WORKER) -> range:
    """Ports this worker's servers may listen on, disjoint between xdist workers."""
    start = base_port + (worker or 0) * width
    return range(start, start + width)


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class PoolSettings:
    """Launcher-side configuration shared by every server of the pool."""

    launcher: str = DEFAULT_LAUNCHER  # "process", "docker" or "url"
    profiler: str = DEFAULT_PROFILER
    extra_server_args: tuple[str, ...] = ()  # appended to every server's arguments
    health_timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S
    trace_root: Path | None = None  # per-server trace dirs are made under it
    fixed_trace_dir: Path | None = None  # url launcher: the folder the attached server writes to
    log_root: Path | None = None
    host: str = "127.0.0.1"
    base_port: int = DEFAULT_BASE_PORT
    max_live_servers: int = DEFAULT_MAX_SERVERS
    worker: int | None = None
    cuda_visible_devices: str | None = None
    gpu_count: int | None = None
    workers_per_gpu: int = DEFAULT_WORKERS_PER_GPU
    lock_dir: Path | None = None  # where the GPU boot locks live; default: the system temp folder


@dataclass
class PooledServer:
    """A started server and the launcher that owns it (for `collect_traces` and logs)."""

    key: str
    launcher: Launcher
    server: RunningServer
    uses: int = 0
    boot_s: float | None = None  # start() to healthy, seconds


@dataclass
class ServerPool:
    settings: PoolSettings
    launcher_factory: LauncherFactory
    _live: OrderedDict[str, PooledServer] = field(default_factory=OrderedDict)
    _failed: dict[str, str] = field(default_factory=dict)  # server key -> why its boot failed
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_port: int | None = None
    _port_locks: dict[int, HeldLock] = field(default_factory=dict)  # port -> its reservation (locks.reserve_port)
    started_count: int = 0

    def key_for(self, workload: Workload) -> str:
        """Identity of the server `workload` needs under this pool's launcher settings."""
        s = self.settings
        extra = hashlib.sha256("\0".join(s.extra_server_args).encode()).hexdigest()[:8]
        return f"{workload.server_key()}:{s.launcher}:{s.profiler}:{extra}"

    def spec_for(self, workload: Workload, key: str) -> ServerSpec:
        s = self.settings
        safe = key.replace(":", "-")
        trace_dir: Path | None
        if s.fixed_trace_dir is not None:
            trace_dir = s.fixed_trace_dir
        else:
            trace_dir = s.trace_root / safe if s.trace_root is not None else None
            if trace_dir is not None:
                trace_dir.mkdir(parents=True, exist_ok=True)
        log_path = s.log_root / f"server-{safe}.log" if s.log_root is not None else None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        gpus = None
        if s.launcher != "url":
            assigned = gpu_assignment(
                s.worker, workload.tensor_parallel_size, s.cuda_visible_devices, s.gpu_count, s.workers_per_gpu
            )
            gpus = tuple(int(g) for g in assigned) if assigned and all(g.isdigit() for g in assigned) else None
        return ServerSpec(
            model=workload.model,
            served_model_name=workload.served_model_name,
            server_args=tuple(workload.server_args) + tuple(s.extra_server_args),
            env=dict(workload.env),
            profiler=s.profiler,
            trace_dir=trace_dir,
            host=s.host,
            port=self._free_port() if s.launcher != "url" else None,
            gpus=gpus,
            tensor_parallel_size=workload.tensor_parallel_size,
            health_timeout_s=s.health_timeout_s,
            log_path=log_path,
            with_stack=workload.with_stack,
        )

    def _free_port(self) -> int:
        ports = port_range(self.settings.worker, self.settings.base_port)
        start = self._next_port if self._next_port is not None and self._next_port in ports else ports.start
        ordered = [p for p in ports if p >= start] + [p for p in ports if p < start]
        for port in ordered:
            # A booting vLLM binds its port only at the end of its boot, so "free" alone lets two
            # pytest sessions on one host pick the same port and one then health-checks the
            # other's server. A per-port lock file held while the server lives reserves it.
            if port not in self._port_locks and _port_is_free(self.settings.host, port):
                reservation = reserve_port(port)
                if reservation is None:
                    continue
                self._port_locks[port] = reservation
                self._next_port = port + 1
                return port
        raise LauncherError(f"no free port in {ports.start}..{ports.stop - 1} on {self.settings.host}")

    def get(self, workload: Workload) -> PooledServer:
        """The running server for `workload`, booting it (and evicting the oldest) if needed.

        Raises LauncherError; a server that failed once fails again at once with its reason.
        """
        key = self.key_for(workload)
        with self._lock:
            if key in self._failed:
                reason = self._failed[key]
                if " died earlier: " in reason:
                    raise LauncherError(reason)
                raise LauncherError(
                    f"server for model {workload.model!r} failed to start earlier in this session "
                    f"(not retried): {reason}"
                )
            pooled = self._live.get(key)
            if pooled is not None:
                self._fail_if_died(key, pooled, workload)
                self._live.move_to_end(key)
                pooled.uses += 1
                return pooled
            while len(self._live) >= max(1, self.settings.max_live_servers):
                _, oldest = self._live.popitem(last=False)
                self._stop_one(oldest)
            spec = self.spec_for(workload, key)
            launcher = self.launcher_factory(spec)
            try:
                with self._boot_locks(workload):
                    # Timed from here: boot_s is start-to-healthy, not the wait for another
                    # worker's boot on a shared GPU.
                    started = time.monotonic()
                    server = launcher.start()
            except BaseException as exc:  # KeyboardInterrupt included: never leave a half-booted server
                try:
                    launcher.stop()
                except Exception:
                    pass
                self._release_port(spec.port)
                if not isinstance(exc, Exception):
                    raise
                # Redacted here too: a launcher's message may quote its command line or log tail.
                reason = launcher.redact(str(exc) or type(exc).__name__)
                self._failed[key] = reason
                if isinstance(exc, LauncherError):
                    raise LauncherError(reason) from None
                raise LauncherError(f"server for model {workload.model!r} failed to start: {reason}") from None
            self.started_count += 1
            pooled = PooledServer(
                key=key, launcher=launcher, server=server, uses=1, boot_s=round(time.monotonic() - started, 1)
            )
            self._live[key] = pooled
            return pooled

    def _fail_if_died(self, key: str, pooled: PooledServer, workload: Workload) -> None:
        """A pooled server that died since its last test fails this test, and every later one, with its
        exit code and log tail (not with the next request's "Connection refused")."""
        try:
            pooled.launcher.check_alive()
        except ServerDied as exc:
            self._live.pop(key, None)
            self._stop_one(pooled)
            self._failed[key] = f"server for model {workload.model!r} died earlier: {exc}"
            raise LauncherError(self._failed[key]) from None

    def boot_lock_paths(self, workload: Workload) -> list[Path]:
        """Lock files to hold while `workload`'s server boots: one per GPU it shares, sorted.

        Empty unless several xdist workers share the GPUs (`workers_per_gpu` > 1).
        """
        s = self.settings
        if s.workers_per_gpu <= 1 or s.launcher == "url":
            return []
        gpus = gpu_assignment(
            s.worker, workload.tensor_parallel_size, s.cuda_visible_devices, s.gpu_count, s.workers_per_gpu
        )
        if not gpus:
            return []
        folder = s.lock_dir if s.lock_dir is not None else Path(tempfile.gettempdir())
        # One lock per GPU (not per GPU set): servers of different tensor-parallel sizes can
        # share some GPUs without having equal sets. Sorted, so two boots never deadlock.
        safe = sorted({"".join(c if c.isalnum() or c in "-_" else "_" for c in g) for g in gpus})
        return [folder / f"pytest-vllm-profile-gpu-{g}.boot.lock" for g in safe]

    @contextmanager
    def _boot_locks(self, workload: Workload) -> Iterator[None]:
        # vLLM measures free GPU memory while it boots (startup memory profiling) and fails
        # ("Error in memory profiling ... other processes sharing the same container release
        # GPU memory while vLLM is profiling", or a free-memory ValueError) when another
        # process allocates or frees memory on that GPU meanwhile. Two servers booting at once
        # on one shared GPU do exactly that, so servers sharing a GPU boot one at a time:
        # the lock is held from start() until the server is healthy, then released.
        with ExitStack() as stack:
            for path in self.boot_lock_paths(workload):
                stack.enter_context(exclusive_lock(path, LauncherError, "GPU boot lock file"))
            yield

    def is_live(self, workload: Workload) -> bool:
        """Whether `workload`'s server is running now (so `get` will not boot one)."""
        return self.key_for(workload) in self._live

    def failure_reason(self, workload: Workload) -> str | None:
        return self._failed.get(self.key_for(workload))

    def _stop_one(self, pooled: PooledServer) -> None:
        try:
            pooled.launcher.stop()
        except Exception:  # stopping must go on for the other servers; the launcher logs its own failure
            pass
        self._release_port(pooled.launcher.spec.port)

    def _release_port(self, port: int | None) -> None:
        reservation = self._port_locks.pop(port, None) if port is not None else None
        if reservation is not None:
            reservation.release()

    def stop_all(self) -> None:
        """Stop every live server; idempotent."""
        while self._live:
            _, pooled = self._live.popitem(last=False)
            self._stop_one(pooled)
