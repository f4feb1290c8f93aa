"""Nsight Systems SQLite reader.

No real nsys export exists here (no NVIDIA GPU, no nsys): the tests build SQLite files to
NVIDIA's documented export schema ("SQLite Schema Reference", Nsight Systems 2026.4, export
schema 3.28.1; tests/support/nsys_exports.py copies the documented columns of each table used) and fill them
from the GPU activity of a REAL vLLM torch trace (tests/data/base-rep0.pt.trace.json.gz):
real kernel names, times (µs -> ns), streams, correlation ids, CUDA API calls and the
engine's step ranges as NVTX push/pop ranges. The nsys table must then give the same answers
as the torch table.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_vllm_profile.analysis import summarize
from pytest_vllm_profile.errors import TraceError, VllmProfileError
from pytest_vllm_profile.events import EVENT_COLUMNS, check_event_table
from pytest_vllm_profile.trace.nsys_reader import read_nsys_sqlite, read_nsys_trace_set
from pytest_vllm_profile.trace.torch_reader import read_torch_trace
from support.nsys_exports import NSYS_SCHEMA_DDL, build_nsys_sqlite_from_torch, global_id


@pytest.fixture(scope="module")
def torch_trace(data_dir: Path):
    return read_torch_trace(data_dir / "base-rep0.pt.trace.json.gz")


@pytest.fixture(scope="module")
def nsys_sqlite(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nsys") / "base-rep0.sqlite"
    return build_nsys_sqlite_from_torch(data_dir / "base-rep0.pt.trace.json.gz", out)


@pytest.fixture(scope="module")
def nsys_trace(nsys_sqlite: Path):
    return read_nsys_sqlite(nsys_sqlite)


def _rows(trace, category: str) -> pd.DataFrame:
    return trace.events[trace.events["category"] == category]


def test_reader_on_sqlite_built_to_nvidia_export_schema_gives_the_torch_kernel_table(torch_trace, nsys_trace):
    check_event_table(nsys_trace.events)
    assert list(nsys_trace.events.columns) == list(EVENT_COLUMNS)
    nk, tk = _rows(nsys_trace, "kernel"), _rows(torch_trace, "kernel")
    assert len(nk) == len(tk) == 5244
    assert nk["dur_us"].sum() == pytest.approx(tk["dur_us"].sum(), abs=1e-6)
    assert nk["dur_us"].sum() == pytest.approx(65558.887, abs=1e-3)
    # Same kernels, same order in time, same streams and correlation ids.
    tk_sorted = tk.sort_values("start_us", kind="stable")
    assert nk["name"].tolist() == tk_sorted["name"].tolist()
    assert nk["correlation"].tolist() == tk_sorted["correlation"].tolist()
    assert set(nk["stream"]) == set(tk["stream"]) == {7}
    assert (nk["device"] == 0).all() and (nk["pid"] == 0).all() and (nk["tid"] == 7).all()
    np.testing.assert_allclose(nk["start_us"].to_numpy(), tk_sorted["start_us"].to_numpy(), rtol=0, atol=1e-3)


def test_reader_on_sqlite_built_to_nvidia_export_schema_names_memcpy_memset_like_kineto(torch_trace, nsys_trace):
    for category in ("gpu_memcpy", "gpu_memset"):
        assert (
            _rows(nsys_trace, category)["name"].value_counts().to_dict()
            == _rows(torch_trace, category)["name"].value_counts().to_dict()
        )
    assert len(_rows(nsys_trace, "gpu_memcpy")) == 54 and len(_rows(nsys_trace, "gpu_memset")) == 10


def test_reader_on_sqlite_built_to_nvidia_export_schema_splits_runtime_and_driver_calls(torch_trace, nsys_trace):
    for category in ("cuda_runtime", "cuda_driver"):
        n, t = _rows(nsys_trace, category), _rows(torch_trace, category)
        assert len(n) == len(t)
        assert sorted(n["correlation"]) == sorted(t["correlation"])
    assert set(_rows(nsys_trace, "cuda_driver")["name"]) == {"cuLaunchKernelEx"}
    assert (_rows(nsys_trace, "cuda_runtime")["pid"] == 647).all()


def test_reader_on_sqlite_built_to_nvidia_export_schema_projects_nvtx_steps_onto_the_gpu(torch_trace, nsys_trace):
    n_cpu = _rows(nsys_trace, "user_annotation")
    assert len(n_cpu) == 12
    assert n_cpu["name"].str.fullmatch(r"execute_context_\d+\(\d+\)_generation_\d+\(\d+\)").all()
    n_gpu = _rows(nsys_trace, "gpu_user_annotation").sort_values("start_us")
    t_gpu = _rows(torch_trace, "gpu_user_annotation").sort_values("start_us")
    # Two CPU step ranges launched no GPU work, so (as in Kineto) they have no GPU projection.
    assert len(n_gpu) == len(t_gpu) == 10
    assert n_gpu["name"].tolist() == t_gpu["name"].tolist()
    np.testing.assert_allclose(n_gpu["start_us"].to_numpy(), t_gpu["start_us"].to_numpy(), rtol=0, atol=2e-3)
    np.testing.assert_allclose(n_gpu["end_us"].to_numpy(), t_gpu["end_us"].to_numpy(), rtol=0, atol=2e-3)
    # The projection carries the CPU range's id, as Kineto's External id links the two.
    cpu_ids = dict(zip(n_cpu["external_id"], n_cpu["name"], strict=False))
    assert all(cpu_ids[x] == name for x, name in zip(n_gpu["external_id"], n_gpu["name"], strict=False))
    assert (n_gpu["device"] == 0).all() and (n_gpu["stream"] == 7).all()


def test_reader_on_sqlite_built_to_nvidia_export_schema_reads_device_metadata(torch_trace, nsys_trace):
    m = nsys_trace.metadata
    assert m.runtime.profiler == "nsys"
    assert m.device.name == "NVIDIA H100 80GB HBM3" == torch_trace.metadata.device.name
    assert m.device.sm_count == 132 and m.device.memory_bytes == 85017493504
    assert m.device.compute_capability == "9.0"
    assert m.base_time_ns == torch_trace.metadata.base_time_ns
    assert m.extra["export_schema_version"] == "3.28.1"
    assert m.world_size == 1 and (nsys_trace.events["rank"] == 0).all()


def test_trace_set_from_sqlite_built_to_nvidia_export_schema_has_one_rank(nsys_sqlite: Path):
    ts = read_nsys_trace_set(nsys_sqlite)
    assert list(ts.ranks) == [0]
    assert ts.api_server is None
    assert len(ts.ranks[0].events[ts.ranks[0].events["category"] == "kernel"]) == 5244


def test_trace_set_from_sqlite_built_to_schema_puts_a_second_process_in_api_server(nsys_sqlite: Path, tmp_path: Path):
    # An export of a server has the API-server process too (CUDA runtime calls, no kernels):
    # read_trace_set, the path summarize takes, must split it off as read_nsys_trace_set does.
    from pytest_vllm_profile.trace import read_trace_set

    copy = tmp_path / "two-processes.sqlite"
    copy.write_bytes(nsys_sqlite.read_bytes())
    with sqlite3.connect(copy) as con:
        name_id = con.execute("SELECT id FROM StringIds LIMIT 1").fetchone()[0]
        con.execute(
            "INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME (start, end, eventClass, globalTid, correlationId, "
            "nameId, returnValue) VALUES (1000, 2000, 0, ?, 999999, ?, 0)",
            (global_id(4242, 4242), name_id),
        )
    whole = read_nsys_sqlite(copy)
    ts = read_trace_set(copy)
    assert list(ts.ranks) == [0]
    assert ts.api_server is not None and len(ts.api_server.events) == 1
    assert (ts.ranks[0].events["rank"] == 0).all()
    assert len(ts.ranks[0].events) == len(whole.events) - 1


def test_summary_of_nsys_sqlite_built_to_schema_matches_torch(data_dir: Path, nsys_sqlite: Path):
    from pytest_vllm_profile.events import TraceSet

    torch_set = TraceSet(ranks={0: read_torch_trace(data_dir / "base-rep0.pt.trace.json.gz")})
    nsys_set = read_nsys_trace_set(nsys_sqlite)
    s_torch, s_nsys = summarize(torch_set), summarize(nsys_set)
    assert s_nsys.token_steps == s_torch.token_steps == 10
    assert s_nsys.layer_count == s_torch.layer_count == 36
    assert s_nsys.total_kernel_us == pytest.approx(s_torch.total_kernel_us, abs=1e-3)


# ---- small files built to the schema: edge cases ---------------------------------------------


def _tiny_db(path: Path, extra_sql: str = "") -> Path:
    con = sqlite3.connect(path)
    con.executescript(NSYS_SCHEMA_DDL)
    con.executescript(extra_sql)
    con.commit()
    con.close()
    return path


def test_reader_on_sqlite_built_to_schema_survives_missing_optional_tables(data_dir: Path, tmp_path: Path):
    path = build_nsys_sqlite_from_torch(
        data_dir / "base-rep0.pt.trace.json.gz",
        tmp_path / "kernels-only.sqlite",
        tables={"CUPTI_ACTIVITY_KIND_KERNEL", "StringIds"},
    )
    trace = read_nsys_sqlite(path)
    check_event_table(trace.events)
    assert set(trace.events["category"].astype(str)) == {"kernel"}
    assert len(trace.events) == 5244
    assert trace.metadata.device.name is None and trace.metadata.runtime.profiler == "nsys"


def test_reader_on_sqlite_built_to_schema_falls_back_to_short_name_and_strips_api_version(tmp_path: Path):
    path = _tiny_db(
        tmp_path / "t.sqlite",
        """
        INSERT INTO StringIds VALUES (2, 'gemm_kernel'), (3, 'cudaLaunchKernel_v7000'), (4, 'step_1');
        INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL (start, end, deviceId, contextId, streamId, correlationId, globalPid,
            demangledName, shortName, registersPerThread, gridX, gridY, gridZ, blockX, blockY, blockZ,
            staticSharedMemory, dynamicSharedMemory, localMemoryPerThread, localMemoryTotal, gridId,
            tensorSizeMinusOneElements)
            VALUES (5000, 7500, 1, 1, 13, 42, 4278190080, 99, 2, 0,1,1,1,1,1,1,0,0,0,0,1,'');
        INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES (4000, 4100, 0, 4278190335, 42, 3, 0, NULL);
        INSERT INTO NVTX_EVENTS (start, end, eventType, text, textId, globalTid, eventId)
            VALUES (3000, 4500, 59, NULL, 4, 4278190335, 0);
        INSERT INTO NVTX_EVENTS (start, end, eventType, text, globalTid, eventId)
            VALUES (3500, NULL, 60, 'never closed', 4278190335, 1);
    """,
    )
    # globalPid 4278190080 = 255 << 24; globalTid 4278190335 = (255 << 24) | 255
    trace = read_nsys_sqlite(path)
    ev = trace.events.set_index("category")
    kernel = ev.loc["kernel"]
    assert kernel["name"] == "gemm_kernel"  # demangledName 99 is not in StringIds
    assert (kernel["start_us"], kernel["dur_us"], kernel["end_us"]) == (5.0, 2.5, 7.5)
    assert (kernel["device"], kernel["stream"], kernel["correlation"]) == (1, 13, 42)
    runtime = ev.loc["cuda_runtime"]
    assert runtime["name"] == "cudaLaunchKernel" and (runtime["pid"], runtime["tid"]) == (255, 255)
    assert ev.loc["user_annotation"]["name"] == "step_1"  # textId -> StringIds
    gpu_range = ev.loc["gpu_user_annotation"]
    assert (gpu_range["name"], gpu_range["start_us"], gpu_range["end_us"]) == ("step_1", 5.0, 7.5)
    assert trace.metadata.extra["open_nvtx_ranges"] == 1
    assert len(trace.events) == 4


def test_reader_rejects_a_file_that_is_not_sqlite(tmp_path: Path, data_dir: Path):
    path = tmp_path / "report.nsys-rep"
    path.write_bytes((data_dir / "base-rep0.pt.trace.json.gz").read_bytes()[:4096])
    with pytest.raises(TraceError) as info:
        read_nsys_sqlite(path)
    assert str(path) in str(info.value) and "not an SQLite database" in str(info.value)
    assert "nsys export --type sqlite" in str(info.value)


def test_reader_rejects_sqlite_without_kernel_table(tmp_path: Path):
    path = tmp_path / "no-kernels.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE StringIds (id INTEGER NOT NULL PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE NVTX_EVENTS (start INTEGER NOT NULL, end INTEGER, eventType INTEGER NOT NULL);"
    )
    con.close()
    with pytest.raises(VllmProfileError) as info:
        read_nsys_sqlite(path)
    assert isinstance(info.value, TraceError)
    assert str(path) in str(info.value) and "CUPTI_ACTIVITY_KIND_KERNEL" in str(info.value)


def test_reader_rejects_missing_file(tmp_path: Path):
    with pytest.raises(TraceError, match="file not found"):
        read_nsys_sqlite(tmp_path / "absent.sqlite")


def test_step_and_layer_detection_on_sqlite_built_to_schema_match_torch(torch_trace, nsys_sqlite: Path):
    from pytest_vllm_profile.analysis.layers import LayerDetector
    from pytest_vllm_profile.analysis.steps import StepDetector

    nsys_trace = read_nsys_sqlite(nsys_sqlite)  # detection writes the step column: own copy
    torch_copy = type(torch_trace)(events=torch_trace.events.copy(), metadata=torch_trace.metadata)
    results = {}
    for label, trace in (("torch", torch_copy), ("nsys", nsys_trace)):
        steps = StepDetector().detect(trace)
        layers = LayerDetector().detect(trace)
        results[label] = (
            steps.method,
            [s.kind for s in steps.steps],
            layers.layer_count,
            layers.marker,
            round(float(layers.timings["time_us"].sum()), 3),
        )
    assert results["nsys"] == results["torch"]
    assert results["nsys"][0] == "annotation" and len(results["nsys"][1]) == 10 and results["nsys"][2] == 36
