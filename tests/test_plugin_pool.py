"""ServerPool and its pure helpers (GPU sets and ports per xdist worker, capture lock)."""
from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from pytest_vllm_profile.errors import LauncherError
from pytest_vllm_profile.launchers.base import Launcher, RunningServer, ServerSpec
from pytest_vllm_profile.launchers.url import UrlLauncher
from pytest_vllm_profile.pool import (
    PoolSettings,
    ServerPool,
    exclusive_lock,
    gpu_assignment,
    port_range,
    worker_index,
)
from pytest_vllm_profile.workload import Workload

from vllm_double import DOUBLE_MODEL, RecordedTraceDouble


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
        self.server = RunningServer(base_url=f"http://127.0.0.1:{self.spec.port}", trace_dir=self.spec.trace_dir,
                                    log_path=None, profiler=self.spec.profiler, model_name=self.spec.model)
        return self.server

    def stop(self) -> None:
        self.log.append(f"stop {self.spec.model}")


@pytest.fixture
def recording_pool(tmp_path: Path) -> ServerPool:
    RecordingLauncherDouble.log = []
    return ServerPool(PoolSettings(trace_root=tmp_path / "traces", max_live_servers=1), RecordingLauncherDouble)


def test_pool_reuses_one_server_per_server_key(recording_pool: ServerPool) -> None:
    a = Workload(model="m1", max_tokens=10)
    b = Workload(model="m1", max_tokens=5, prompts=("other",))  # same server, other request
    first = recording_pool.get(a)
    second = recording_pool.get(b)
    assert first is second
    assert recording_pool.started_count == 1
    assert RecordingLauncherDouble.log == [f"start m1 port={first.launcher.spec.port}"]
    assert first.launcher.spec.trace_dir.is_dir()


def test_pool_stops_the_oldest_server_before_booting_another(recording_pool: ServerPool) -> None:
    recording_pool.get(Workload(model="m1"))
    recording_pool.get(Workload(model="m1", server_args=("--enforce-eager",)))
    assert [e.split(" port")[0] for e in RecordingLauncherDouble.log] == ["start m1", "stop m1", "start m1"]
    recording_pool.stop_all()
    recording_pool.stop_all()  # idempotent
    assert RecordingLauncherDouble.log[-1] == "stop m1"
    assert RecordingLauncherDouble.log.count("stop m1") == 2


def test_pool_remembers_a_failed_boot_and_fails_fast(recording_pool: ServerPool) -> None:
    with pytest.raises(LauncherError, match="CUDA out of memory"):
        recording_pool.get(Workload(model="broken"))
    with pytest.raises(LauncherError, match="failed to start earlier in this session .*CUDA out of memory"):
        recording_pool.get(Workload(model="broken", max_tokens=3))
    starts = [e for e in RecordingLauncherDouble.log if e.startswith("start")]
    assert len(starts) == 1  # not re-booted
    assert recording_pool.failure_reason(Workload(model="broken")) is not None


def test_pool_spec_carries_extra_args_and_worker_gpus(tmp_path: Path) -> None:
    pool = ServerPool(PoolSettings(trace_root=tmp_path, extra_server_args=("--attention-backend=TRITON_ATTN",),
                                   worker=1, gpu_count=4), RecordingLauncherDouble)
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


def _hold_lock(path: str, seconds: float, started: "multiprocessing.synchronize.Event") -> None:
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
