"""The REAL vLLM CPU server under the REAL nsys (Debian's 2022.4.2.1, scripts/setup-nsys.sh).

One server for the module, booted by `ProcessLauncher(profiler="nsys")`: the CPU build has no
cuda profiler, so the mode chosen for it is an interactive session (`nsys launch`, then
`nsys start` / `nsys stop` around each workload). Two captures on that one server, each with
its own report, exported to SQLite and read.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_vllm_profile.capture import CaptureResult, NsysSessionCapture, make_capture
from pytest_vllm_profile.launchers import nsys_tool
from pytest_vllm_profile.launchers.base import RunningServer
from pytest_vllm_profile.launchers.process import SERVER_MARK_ENV, ProcessLauncher, process_group_members
from pytest_vllm_profile.launchers.procfs import marked_pids
from pytest_vllm_profile.trace.nsys_reader import read_nsys_sqlite
from pytest_vllm_profile.workload import Workload
from support.cpu_vllm import tiny_server_spec

pytestmark = pytest.mark.cpu_vllm

CAPTURES = 2


def descendants(pid: int) -> set[int]:
    """`pid` and every live process below it (from /proc): nsys launch runs the server in a group of its own."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rfind(")") + 2 :].split()[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, []))
    return found


@pytest.fixture(scope="module")
def nsys_cpu_server(
    cpu_vllm_python: str, tiny_qwen3_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ProcessLauncher, RunningServer]]:
    if nsys_tool.find_nsys() is None:
        pytest.skip("no nsys on this machine: run scripts/setup-nsys.sh (Debian's nsight-systems 2022.4)")
    traces = tmp_path_factory.mktemp("nsys-cpu-traces")
    launcher = ProcessLauncher(
        tiny_server_spec(tiny_qwen3_model, traces, profiler="nsys"), python=cpu_vllm_python, nsys_report_timeout_s=300
    )
    server = launcher.start()
    below: set[int] = set()
    try:
        below = descendants(launcher.pgid) if launcher.pgid else set()
        yield launcher, server
    finally:
        below |= descendants(launcher.pgid) if launcher.pgid else set()
        launcher.stop()
        left = process_group_members(launcher.pgid) if launcher.pgid else []
        assert not left, f"processes {left} of the nsys-wrapped server survived stop() (pgid {launcher.pgid})"
        alive = sorted(p for p in below if Path(f"/proc/{p}").is_dir() and "Z" not in _state(p))
        assert not alive, f"processes {alive} started below nsys launch survived stop()"
        assert launcher.server_mark is not None  # what readiness and stop() know nsys's processes by
        marked = marked_pids(SERVER_MARK_ENV, launcher.server_mark)
        assert not marked, f"processes {marked} carrying this server's mark survived stop()"


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "Z"
    return stat[stat.rfind(")") + 2 :].split()[0]


@pytest.fixture(scope="module")
def captures(nsys_cpu_server: tuple[ProcessLauncher, RunningServer]) -> list[tuple[CaptureResult, float]]:
    launcher, server = nsys_cpu_server
    workload = Workload(
        model=server.model_name, prompts=("What is the capital of France?",), max_tokens=8, warmup_requests=1
    )
    results = []
    for _ in range(CAPTURES):
        capture = make_capture(server, workload, launcher=launcher, timeout_s=300)
        assert isinstance(capture, NsysSessionCapture)
        t0 = time.perf_counter()
        result = capture.run()
        results.append((result, time.perf_counter() - t0))
    return results


def test_cpu_build_is_captured_in_an_nsys_session(nsys_cpu_server: tuple[ProcessLauncher, RunningServer]):
    launcher, _ = nsys_cpu_server
    assert launcher.command[1] == "launch" and launcher.command[2].startswith("--session-new=")
    assert "--" not in launcher.command[: launcher.command.index(launcher.spec.model)]  # 2022.4: no separator
    assert "--profiler-config" not in launcher.command
    assert launcher.nsys_control is not None and launcher.nsys_control.describe().startswith("session, nsys 20")


def test_each_capture_has_its_own_report_exported_and_read(captures: list[tuple[CaptureResult, float]]):
    folders = [result.trace_root for result, _ in captures]
    assert len(set(folders)) == CAPTURES
    for n, (result, _) in enumerate(captures, start=1):
        names = sorted(p.name for p in result.trace_files)
        assert names == [f"vllm-nsys.{n}.nsys-rep", f"vllm-nsys.{n}.sqlite"], names
        assert all(r.completion_tokens == 8 for r in result.requests)


def test_capture_window_covers_the_workload_and_not_much_more(captures: list[tuple[CaptureResult, float]]):
    for result, wall_s in captures:
        sqlite = next(p for p in result.trace_files if p.suffix == ".sqlite")
        trace = read_nsys_sqlite(sqlite, require_kernels=False)
        assert trace.metadata.runtime.nsys_version is not None and trace.metadata.runtime.nsys_version.startswith("20")
        window_s = trace.metadata.extra["capture_duration_ns"] / 1e9
        # nsys start returned before the requests were sent, nsys stop was called after they came back
        assert window_s >= result.workload_s
        assert window_s <= result.start_profile_s + result.workload_s + result.stop_profile_s + 1.0 <= wall_s + 1.0


def test_capture_recorded_the_servers_own_os_runtime_calls(
    nsys_cpu_server: tuple[ProcessLauncher, RunningServer], captures: list[tuple[CaptureResult, float]]
):
    launcher, _ = nsys_cpu_server
    server_pids = descendants(launcher.pgid) if launcher.pgid else set()
    for result, _ in captures:
        sqlite = next(p for p in result.trace_files if p.suffix == ".sqlite")
        with sqlite3.connect(f"file:{sqlite}?mode=ro", uri=True) as con:
            pids = {row[0] for row in con.execute('SELECT DISTINCT (globalTid >> 24) & 16777215 FROM "OSRT_API"')}
        assert pids & server_pids, f"{sqlite}: no OS runtime call of the server's processes {sorted(server_pids)}"
