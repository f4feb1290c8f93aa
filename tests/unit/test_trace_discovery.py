"""Finding one profile session in what vLLM wrote, on copies of real traces named as vLLM names them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pytest_vllm_profile.errors import TraceError
from pytest_vllm_profile.events import TraceSet
from pytest_vllm_profile.trace import read_trace_set

NS_OLD = 1790857026000000000
NS_NEW = 1790857099000000000


def _copy(src: Path, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / name
    shutil.copyfile(src, dst)
    return dst


@pytest.fixture()
def rep0(data_dir: Path) -> Path:
    return data_dir / "base-rep0.pt.trace.json.gz"


@pytest.fixture()
def rep1(data_dir: Path) -> Path:
    return data_dir / "base-rep1.pt.trace.json.gz"


@pytest.fixture()
def api_trace(data_dir: Path) -> Path:
    return data_dir / "graphs-mixed.async_llm.pt.trace.json.gz"


def test_single_file(rep0: Path) -> None:
    ts = read_trace_set(rep0)
    assert isinstance(ts, TraceSet)
    assert list(ts.ranks) == [0]
    assert (ts.ranks[0].events["category"] == "kernel").sum() == 5244
    assert ts.api_server is None


def test_vllm_session_folder(tmp_path: Path, rep0: Path, rep1: Path, api_trace: Path, data_dir: Path) -> None:
    # Two engine ranks, the API server's trace and a key-averages table, named as vLLM does.
    _copy(rep0, tmp_path, f"rank0.{NS_OLD}.pt.trace.json.gz")
    _copy(rep1, tmp_path, f"rank1.{NS_OLD + 5_000_000}.pt.trace.json.gz")
    _copy(api_trace, tmp_path, f"host_1.async_llm.{NS_OLD}.pt.trace.json.gz")
    _copy(data_dir / "graphs-mixed.profiler_out_0.txt", tmp_path, "profiler_out_0.txt")
    ts = read_trace_set(tmp_path)
    assert sorted(ts.ranks) == [0, 1]
    assert set(ts.ranks[1].events["rank"]) == {1}
    assert ts.ranks[1].metadata.rank == 1
    assert ts.api_server is not None
    assert not ts.api_server.has_gpu_events  # CPU-only, never counted as a rank
    assert [p.name for p in ts.profiler_tables] == ["profiler_out_0.txt"]
    assert ts.root == tmp_path


def test_prefix_rank_naming(tmp_path: Path, rep0: Path) -> None:
    _copy(rep0, tmp_path, "qwen3-8b.rank2.pt.trace.json.gz")
    ts = read_trace_set(tmp_path)
    assert list(ts.ranks) == [2]


def test_several_sessions_take_the_newest_and_say_so(tmp_path: Path, rep0: Path, rep1: Path) -> None:
    old = _copy(rep0, tmp_path, f"rank0.{NS_OLD}.pt.trace.json.gz")
    new = _copy(rep1, tmp_path, f"rank0.{NS_NEW}.pt.trace.json.gz")
    # mtime says the opposite: the timestamp in the name wins.
    os.utime(new, ns=(NS_OLD, NS_OLD))
    os.utime(old, ns=(NS_NEW, NS_NEW))
    ts = read_trace_set(tmp_path)
    assert ts.ranks[0].metadata.paths == [str(new)]
    assert ts.ranks[0].metadata.extra["older_sessions_skipped"] == [str(old)]
    with pytest.raises(TraceError, match="2 profile sessions for rank 0"):
        read_trace_set(tmp_path, session="only")


def test_sessions_without_timestamps_use_mtime(tmp_path: Path, rep0: Path, rep1: Path) -> None:
    a = _copy(rep0, tmp_path, "a.pt.trace.json.gz")
    b = _copy(rep1, tmp_path, "b.pt.trace.json.gz")
    os.utime(a, ns=(NS_NEW, NS_NEW))
    os.utime(b, ns=(NS_OLD, NS_OLD))
    assert read_trace_set(tmp_path).ranks[0].metadata.paths == [str(a)]


def test_sessions_that_cannot_be_ordered_are_refused(tmp_path: Path, rep0: Path, rep1: Path) -> None:
    for src, name in ((rep0, "a.pt.trace.json.gz"), (rep1, "b.pt.trace.json.gz")):
        os.utime(_copy(src, tmp_path, name), ns=(NS_OLD, NS_OLD))
    with pytest.raises(TraceError, match="no way to tell which is newest"):
        read_trace_set(tmp_path)


def test_only_api_server_trace(tmp_path: Path, api_trace: Path) -> None:
    _copy(api_trace, tmp_path, f"host_1.async_llm.{NS_OLD}.pt.trace.json.gz")
    with pytest.raises(
        TraceError, match="no engine-rank trace; the async_llm trace holds only the API server's CPU events"
    ):
        read_trace_set(tmp_path)
    with pytest.raises(TraceError, match="no engine-rank trace"):
        read_trace_set(api_trace)


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="empty directory") as info:
        read_trace_set(tmp_path)
    assert info.value.path == str(tmp_path)


def test_directory_without_traces(tmp_path: Path, data_dir: Path) -> None:
    _copy(data_dir / "graphs-mixed.profiler_out_0.txt", tmp_path, "profiler_out_0.txt")
    with pytest.raises(TraceError, match=r"no torch-profiler trace .*profiler_out_0.txt"):
        read_trace_set(tmp_path)


def test_missing_path_and_wrong_file_kinds(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(TraceError, match="no such file or directory"):
        read_trace_set(tmp_path / "absent")
    with pytest.raises(TraceError, match="not a trace file"):
        read_trace_set(data_dir / "graphs-mixed.profiler_out_0.txt")
    report = tmp_path / "profile.nsys-rep"
    report.write_bytes(b"\0")
    with pytest.raises(TraceError, match="nsys export --type sqlite"):
        read_trace_set(report)


def test_bad_trace_in_folder_names_that_file(tmp_path: Path, rep0: Path) -> None:
    data = rep0.read_bytes()
    bad = tmp_path / f"rank0.{NS_OLD}.pt.trace.json.gz"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(TraceError, match="truncated") as info:
        read_trace_set(tmp_path)
    assert info.value.path == str(bad)


def test_keep_python_frames_reaches_every_trace_read(tmp_path: Path, rep0: Path, api_trace: Path) -> None:
    # base-rep0 holds 17131 python_function frames, 11 of them nn.Module frames; the API
    # server's trace 18929 frames, none of them module frames (counted with gzip + orjson).
    _copy(rep0, tmp_path, f"rank0.{NS_OLD}.pt.trace.json.gz")
    _copy(api_trace, tmp_path, f"host_1.async_llm.{NS_OLD}.pt.trace.json.gz")

    def frames(trace) -> int:
        return int((trace.events["category"] == "python_function").sum())

    default = read_trace_set(tmp_path)
    assert frames(default.ranks[0]) == 11 and frames(default.api_server) == 0
    kept = read_trace_set(tmp_path, keep_python_frames=True)
    assert frames(kept.ranks[0]) == 17131 and frames(kept.api_server) == 18929
    single = read_trace_set(tmp_path / f"rank0.{NS_OLD}.pt.trace.json.gz", keep_python_frames=True)
    assert frames(single.ranks[0]) == 17131
