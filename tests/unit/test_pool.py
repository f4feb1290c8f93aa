"""ServerPool and its pure helpers (GPU sets and ports per xdist worker, capture lock)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from pytest_vllm_profile.errors import LauncherError
from pytest_vllm_profile.launchers.base import Launcher, RunningServer, ServerSpec
from pytest_vllm_profile.launchers.url import UrlLauncher
from pytest_vllm_profile.locks import exclusive_lock
from pytest_vllm_profile.pool import (
    PoolSettings,
    ServerPool,
    gpu_assignment,
    port_range,
    worker_index,
)
from pytest_vllm_profile.workload import Workload
from support.vllm_double import DOUBLE_MODEL, RecordedTraceDouble


def _served(spec: ServerSpec) -> RunningServer:
    """What a launcher double returns from start(): a server on the spec's port (nothing listens)."""
    return RunningServer(
        base_url=f"http://127.0.0.1:{spec.port}",
        trace_dir=spec.trace_dir,
        log_path=None,
        profiler=spec.profiler,
        model_name=spec.model,
    )


# ---- pure helpers ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, None), ({"PYTEST_XDIST_WORKER": "gw0"}, 0), ({"PYTEST_XDIST_WORKER": "gw13"}, 13)],
)
def test_worker_index_from_xdist_env(env: dict[str, str], expected: int | None) -> None:
    assert worker_index(env) == expected


def test_worker_index_rejects_odd_names() -> None:
    with pytest.raises(LauncherError, match="gwx"):
        worker_index({"PYTEST_XDIST_WORKER": "gwx"})


@pytest.mark.parametrize(
    ("worker", "tp", "visible", "count", "expected"),
    [
        (None, 1, None, 8, ("0",)),
        (None, 2, None, 8, ("0", "1")),
        (0, 1, None, 8, ("0",)),
        (3, 1, None, 8, ("3",)),
        (1, 2, None, 8, ("2", "3")),
        (3, 2, None, 8, ("6", "7")),
        (1, 2, "4,5,6,7", None, ("6", "7")),  # CUDA_VISIBLE_DEVICES wins over the count
        (0, 1, "GPU-abc,GPU-def", None, ("GPU-abc",)),  # UUIDs pass through
        (1, 1, None, None, None),  # nothing known: leave the environment alone
    ],
)
def test_gpu_assignment_gives_each_worker_its_own_slice(worker, tp, visible, count, expected) -> None:
    assert gpu_assignment(worker, tp, visible, count) == expected


def test_gpu_assignment_names_the_shortage() -> None:
    with pytest.raises(LauncherError, match=r"gw2 needs GPUs 4\.\.5 .* only 4 are visible"):
        gpu_assignment(2, 2, None, 4)


def test_workers_get_disjoint_port_ranges() -> None:
    ranges = [set(port_range(w)) for w in (None, 1, 2, 3)]
    assert all(len(r) > 0 for r in ranges)
    assert all(ranges[i].isdisjoint(ranges[j]) for i in range(4) for j in range(i + 1, 4))
    assert port_range(None) == port_range(0)


# ---- the pool -------------------------------------------------------------------------------
class RecordingLauncherDouble(Launcher):
    """A launcher double that records start/stop (booting vLLM here is not possible)."""

    log: list[str] = []

    def start(self) -> RunningServer:
        self.log.append(f"start {self.spec.model} port={self.spec.port}")
        if self.spec.model == "broken":
            raise LauncherError("server exited with code 1 (log tail: CUDA out of memory)")
        self.server = _served(self.spec)
        return self.server

    def stop(self) -> None:
        self.log.append(f"stop {self.spec.model}")


@pytest.fixture
def recording_pool(tmp_path: Path) -> ServerPool:
    RecordingLauncherDouble.log = []
    return ServerPool(PoolSettings(trace_root=tmp_path / "traces", max_live_servers=1), RecordingLauncherDouble)


def test_pool_reuses_one_server_per_server_key_launcher_double(recording_pool: ServerPool) -> None:
    a = Workload(model="m1", max_tokens=10)
    b = Workload(model="m1", max_tokens=5, prompts=("other",))  # same server, other request
    first = recording_pool.get(a)
    second = recording_pool.get(b)
    assert first is second
    assert recording_pool.started_count == 1
    assert RecordingLauncherDouble.log == [f"start m1 port={first.launcher.spec.port}"]
    assert first.launcher.spec.trace_dir.is_dir()


def test_pool_stops_the_oldest_server_before_booting_another_launcher_double(recording_pool: ServerPool) -> None:
    recording_pool.get(Workload(model="m1"))
    recording_pool.get(Workload(model="m1", server_args=("--enforce-eager",)))
    assert [e.split(" port")[0] for e in RecordingLauncherDouble.log] == ["start m1", "stop m1", "start m1"]
    recording_pool.stop_all()
    recording_pool.stop_all()  # idempotent
    assert RecordingLauncherDouble.log[-1] == "stop m1"
    assert RecordingLauncherDouble.log.count("stop m1") == 2


def test_pool_remembers_a_failed_boot_and_fails_fast_launcher_double(recording_pool: ServerPool) -> None:
    with pytest.raises(LauncherError, match="CUDA out of memory"):
        recording_pool.get(Workload(model="broken"))
    with pytest.raises(LauncherError, match="failed to start earlier in this session .*CUDA out of memory"):
        recording_pool.get(Workload(model="broken", max_tokens=3))
    starts = [e for e in RecordingLauncherDouble.log if e.startswith("start")]
    assert len(starts) == 1  # not re-booted
    assert recording_pool.failure_reason(Workload(model="broken")) is not None


def test_pool_spec_carries_extra_args_and_worker_gpus_launcher_double(tmp_path: Path) -> None:
    pool = ServerPool(
        PoolSettings(
            trace_root=tmp_path, extra_server_args=("--attention-backend=TRITON_ATTN",), worker=1, gpu_count=4
        ),
        RecordingLauncherDouble,
    )
    workload = Workload(model="m", server_args=("--enforce-eager",), tensor_parallel_size=2)
    spec = pool.spec_for(workload, pool.key_for(workload))
    assert spec.server_args == ("--enforce-eager", "--attention-backend=TRITON_ATTN")
    assert spec.gpus == (2, 3)
    assert spec.port in port_range(1)


def test_pool_attaches_to_a_real_http_server_through_the_url_launcher(tmp_path: Path) -> None:
    """recorded_trace_double: a real HTTP server speaking vLLM's endpoints."""
    with RecordedTraceDouble(tmp_path / "server-traces") as double:
        pool = ServerPool(
            PoolSettings(launcher="url", fixed_trace_dir=double.trace_dir),
            lambda spec: UrlLauncher(spec, url=double.url),
        )
        pooled = pool.get(Workload(model=DOUBLE_MODEL))
        assert pooled.server.base_url == double.url
        assert pooled.server.vllm_version == "0.26.0"
        assert pooled.server.trace_dir == double.trace_dir.absolute()
        pool.stop_all()


def test_pool_url_launcher_failure_is_remembered(tmp_path: Path) -> None:
    calls: list[ServerSpec] = []

    def factory(spec: ServerSpec) -> Launcher:
        calls.append(spec)
        return UrlLauncher(spec, url="http://127.0.0.1:9", health_timeout_s=0.5)  # port 9: nothing listens

    trace_dir = tmp_path / "t"
    trace_dir.mkdir()
    pool = ServerPool(PoolSettings(launcher="url", fixed_trace_dir=trace_dir), factory)
    with pytest.raises(LauncherError, match="not reachable"):
        pool.get(Workload(model="m"))
    with pytest.raises(LauncherError, match="earlier in this session"):
        pool.get(Workload(model="m"))
    assert len(calls) == 1


def _hold_lock(path: str, seconds: float, started: multiprocessing.synchronize.Event) -> None:
    with exclusive_lock(Path(path)):
        started.set()
        time.sleep(seconds)
        Path(path + ".released").write_text("x")  # written while still holding the lock


def test_capture_lock_excludes_other_processes(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    started = multiprocessing.get_context("fork").Event()
    holder = multiprocessing.get_context("fork").Process(target=_hold_lock, args=(str(lock), 0.5, started))
    holder.start()
    assert started.wait(10)
    with exclusive_lock(lock):
        # Only reachable once the other process let go, i.e. after it wrote its file.
        assert (tmp_path / "lock.released").is_file()
    holder.join(5)
    assert holder.exitcode == 0


def test_workers_per_gpu_lets_two_workers_share_one_gpu():
    # -n 2 on a one-GPU machine: without sharing gw1 has no GPU, with 2 workers per GPU both use GPU 0.
    from pytest_vllm_profile.errors import LauncherError
    from pytest_vllm_profile.pool import gpu_assignment

    with pytest.raises(LauncherError, match="--vllm-workers-per-gpu"):
        gpu_assignment(1, 1, None, 1)
    assert gpu_assignment(0, 1, None, 1, workers_per_gpu=2) == ("0",)
    assert gpu_assignment(1, 1, None, 1, workers_per_gpu=2) == ("0",)
    # 4 GPUs, tp=2, 2 workers per GPU set: gw0/gw1 -> 0,1 and gw2/gw3 -> 2,3
    assert gpu_assignment(3, 2, "0,1,2,3", None, workers_per_gpu=2) == ("2", "3")


# ---- boot serialization on a shared GPU -----------------------------------------------------
class BootTimingLauncherDouble(Launcher):
    """Records when its start() ran, and whether another boot was under way meanwhile.

    A stand-in for a vLLM boot (no GPU here): start() marks itself booting in a shared
    folder, waits up to PEER_WAIT_S for another booting marker, then unmarks itself. Two
    unserialized boots see each other at once; serialized boots never do.
    """

    PEER_WAIT_S = 1.0

    def __init__(self, spec: ServerSpec, folder: Path, name: str) -> None:
        super().__init__(spec)
        self.folder, self.name = folder, name

    def start(self) -> RunningServer:
        began = time.monotonic()
        marker = self.folder / f"booting-{self.name}"
        marker.write_text("")
        saw_peer = False
        deadline = began + self.PEER_WAIT_S
        while time.monotonic() < deadline and not saw_peer:
            saw_peer = any(p != marker for p in self.folder.glob("booting-*"))
            time.sleep(0.02)
        marker.unlink()
        ended = time.monotonic()
        (self.folder / f"record-{self.name}").write_text(f"{began} {ended} {saw_peer}")
        self.server = _served(self.spec)
        return self.server

    def stop(self) -> None:
        pass


def _boot_in_pool(
    folder: str, worker: int, gpu_count: int, workers_per_gpu: int, go: multiprocessing.synchronize.Event
) -> None:
    root = Path(folder)
    settings = PoolSettings(
        trace_root=root / f"traces-{worker}",
        worker=worker,
        gpu_count=gpu_count,
        workers_per_gpu=workers_per_gpu,
        lock_dir=root,
    )
    pool = ServerPool(settings, lambda spec: BootTimingLauncherDouble(spec, root, f"gw{worker}"))
    go.wait(10)
    pooled = pool.get(Workload(model="m"))
    (root / f"boot_s-gw{worker}").write_text(str(pooled.boot_s))
    pool.stop_all()


def _boot_two_workers(
    tmp_path: Path, workers: tuple[int, int], gpu_count: int, workers_per_gpu: int
) -> list[tuple[float, float, bool]]:
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    procs = [
        ctx.Process(target=_boot_in_pool, args=(str(tmp_path), w, gpu_count, workers_per_gpu, go)) for w in workers
    ]
    for proc in procs:
        proc.start()
    go.set()  # both processes call get() together, as two xdist workers at session start do
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    records = []
    for w in workers:
        began, ended, saw_peer = (tmp_path / f"record-gw{w}").read_text().split()
        records.append((float(began), float(ended), saw_peer == "True"))
    return records


def test_servers_sharing_a_gpu_boot_one_at_a_time_launcher_double(tmp_path: Path) -> None:
    # gw0 and gw1 with 2 workers per GPU on a 1-GPU machine: both servers go on GPU 0.
    (a_start, a_end, a_saw), (b_start, b_end, b_saw) = _boot_two_workers(tmp_path, (0, 1), 1, 2)
    assert not a_saw and not b_saw
    assert a_end <= b_start or b_end <= a_start  # intervals do not overlap
    # Each boot takes PEER_WAIT_S; the one that waited for the lock still reports its own boot
    # time (start to healthy), not the wait on top of it.
    boot_s = [float((tmp_path / f"boot_s-gw{w}").read_text()) for w in (0, 1)]
    peer_wait_s = BootTimingLauncherDouble.PEER_WAIT_S
    assert all(peer_wait_s <= b < 1.5 * peer_wait_s for b in boot_s), boot_s
    assert [p.name for p in tmp_path.glob("*.boot.lock")] == ["pytest-vllm-profile-gpu-0.boot.lock"]


@pytest.mark.parametrize(
    ("workers", "gpu_count", "workers_per_gpu"),
    [
        ((0, 2), 2, 2),  # 2 workers per GPU but gw0 is on GPU 0, gw2 on GPU 1
        ((0, 1), 2, 1),
    ],  # one worker per GPU: nothing shared
)
def test_servers_on_different_gpus_boot_together_launcher_double(
    tmp_path: Path, workers, gpu_count, workers_per_gpu
) -> None:
    (a_start, a_end, a_saw), (b_start, b_end, b_saw) = _boot_two_workers(tmp_path, workers, gpu_count, workers_per_gpu)
    assert a_saw and b_saw  # each boot saw the other under way
    assert a_start < b_end and b_start < a_end


def test_boot_locks_cover_every_shared_gpu_sorted(tmp_path: Path) -> None:
    pool = ServerPool(
        PoolSettings(worker=3, cuda_visible_devices="4,5,6,7", workers_per_gpu=2, lock_dir=tmp_path),
        RecordingLauncherDouble,
    )
    assert [p.name for p in pool.boot_lock_paths(Workload(model="m", tensor_parallel_size=2))] == [
        "pytest-vllm-profile-gpu-6.boot.lock",
        "pytest-vllm-profile-gpu-7.boot.lock",
    ]
    alone = ServerPool(PoolSettings(worker=1, gpu_count=2, lock_dir=tmp_path), RecordingLauncherDouble)
    assert alone.boot_lock_paths(Workload(model="m")) == []
    cpu = ServerPool(PoolSettings(worker=1, workers_per_gpu=2, lock_dir=tmp_path), RecordingLauncherDouble)
    assert cpu.boot_lock_paths(Workload(model="m")) == []  # no GPU information: nothing to share
