"""The nsys reader on REAL exports: nsys 2022.4.2.1 CPU captures (tests/data, made by
scripts/make-cpu-nsys-exports.sh) and, once committed, GPU captures (scripts/make-gpu-nsys-exports.sh).

The 2022.4 schema test takes the DDL of the GPU tables from the real 2022.4 export (exported
with --lazy=false, so every table of that schema is in it, empty) and fills them with the GPU
activity of a real vLLM torch trace, as tests/unit/test_nsys_reader.py does for schema 3.28.1.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from pytest_vllm_profile.errors import TraceError
from pytest_vllm_profile.trace.nsys_reader import read_nsys_sqlite, read_nsys_trace_set
from pytest_vllm_profile.trace.torch_reader import read_torch_trace
from support.nsys_exports import build_nsys_sqlite_from_torch

PROFILE_2022_4 = "nsys-2022.4-profile-nvtx.sqlite"
SESSION_2022_4 = "nsys-2022.4-session-nvtx.sqlite"
GPU_EXPORT_GLOB = "nsys-gpu-*.sqlite"
# scripts/nsys/nvtx_steps.c: each round is a ~20 ms busy push/pop range, then 30 ms asleep.
STEP_BUSY_US = 20_000


def test_real_2022_4_profile_export_reads_its_nvtx_ranges(data_dir: Path):
    trace = read_nsys_sqlite(data_dir / PROFILE_2022_4, require_kernels=False)
    rows = trace.events
    assert list(rows["name"]) == [
        "execute_context_0(8)_generation_0(0)",
        "execute_context_1(8)_generation_0(0)",
        "execute_context_2(8)_generation_0(0)",
        "start_end_range",
        "left_open",
    ]
    assert set(rows["category"]) == {"user_annotation"}
    steps = rows[rows["name"].str.startswith("execute_context_")]
    # busy-waited 20 ms each: the range is at least that and not much more
    assert ((steps["dur_us"] >= STEP_BUSY_US) & (steps["dur_us"] < 2 * STEP_BUSY_US)).all()
    assert rows["external_id"].is_unique and (rows["external_id"] > 0).all()  # no eventId column in 2022.4
    assert rows["pid"].nunique() == 1 and (rows["pid"] > 0).all()
    meta = trace.metadata
    assert meta.runtime.profiler == "nsys" and meta.runtime.nsys_version == "2022.4.2.1"
    assert meta.extra["export_schema_version"] == "3.0.0"  # read from EXPORT_META_DATA (2022.4's name)
    # nsys closed the range left open at the end of collection: it ends exactly at the duration
    assert rows["end_us"].max() * 1000 == pytest.approx(meta.extra["capture_duration_ns"], abs=1)
    assert meta.base_time_ns is not None and meta.base_time_ns > 1_600_000_000 * 10**9


def test_real_2022_4_session_capture_holds_only_its_window(data_dir: Path):
    trace = read_nsys_sqlite(data_dir / SESSION_2022_4, require_kernels=False)
    rows = trace.events
    duration_us = trace.metadata.extra["capture_duration_ns"] / 1000
    # `nsys start` .. 1 s .. `nsys stop` while the program ran 200 rounds of 50 ms: about 20 rounds
    assert 0.9e6 < duration_us < 3e6
    assert 10 <= len(rows) <= duration_us / 50_000 + 2
    assert (rows["start_us"] >= 0).all() and (rows["end_us"] <= duration_us).all()
    numbers = rows["name"].str.extract(r"execute_context_(\d+)")[0].astype(int)
    assert numbers.iloc[0] > 0, "a session capture starts mid-run, not at the program's first round"
    assert list(numbers) == list(range(numbers.iloc[0], numbers.iloc[0] + len(rows)))  # consecutive rounds


def test_real_cpu_export_without_kernels_is_an_error_unless_asked_for(data_dir: Path):
    # Captures of CPU programs: the error says the capture saw no GPU and what to use instead,
    # not to check a cuda profiler a CPU build cannot have.
    cpu_only = "the capture holds no CUDA kernels and saw no GPU .*profile a CPU build with the torch profiler"
    # exported with --lazy=false: the kernel table is there, but empty
    with pytest.raises(TraceError, match=f"has an empty CUPTI_ACTIVITY_KIND_KERNEL table: {cpu_only}"):
        read_nsys_sqlite(data_dir / PROFILE_2022_4)
    with pytest.raises(TraceError, match=f"has no CUPTI_ACTIVITY_KIND_KERNEL table: {cpu_only}"):
        read_nsys_sqlite(data_dir / SESSION_2022_4)


def test_real_gpu_export_without_kernels_asks_about_the_capture_range(data_dir: Path, tmp_path: Path):
    # A GPU capture (real H200 export) whose kernel rows are gone: the GPU was there, so the
    # question is whether the range opened.
    export = tmp_path / "no-kernels.sqlite"
    shutil.copy(data_dir / "nsys-gpu-2025.3-session-rep1.sqlite", export)
    with sqlite3.connect(export) as con:
        con.execute("DELETE FROM CUPTI_ACTIVITY_KIND_KERNEL")
    with pytest.raises(TraceError, match="an empty CUPTI_ACTIVITY_KIND_KERNEL table: .*did the capture range open"):
        read_nsys_sqlite(export)


def _ddl_of(export: Path, tables: list[str]) -> dict[str, str]:
    with sqlite3.connect(f"file:{export}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name: sql for name, sql in rows if name in tables}


GPU_TABLES = [
    "StringIds",
    "CUPTI_ACTIVITY_KIND_KERNEL",
    "CUPTI_ACTIVITY_KIND_MEMCPY",
    "CUPTI_ACTIVITY_KIND_MEMSET",
    "CUPTI_ACTIVITY_KIND_RUNTIME",
    "NVTX_EVENTS",
    "TARGET_INFO_GPU",
    "TARGET_INFO_SESSION_START_TIME",
    "TARGET_INFO_CUDA_DEVICE",
    "EXPORT_META_DATA",
    "META_DATA_EXPORT",
]


def _to_2022_4_schema(current: Path, real_2022_4: Path, out: Path) -> Path:
    """`current` (schema 3.28.1) rewritten into the tables of the real 2022.4 export: only their columns."""
    ddl = _ddl_of(real_2022_4, GPU_TABLES)
    con = sqlite3.connect(out)
    con.execute("ATTACH DATABASE ? AS cur", (str(current),))
    for name, sql in ddl.items():
        con.execute(sql)
        have = {r[1] for r in con.execute(f'PRAGMA cur.table_info("{name}")')}
        cols = [r[1] for r in con.execute(f'PRAGMA main.table_info("{name}")') if r[1] in have]
        if cols:
            quoted = ", ".join(f'"{c}"' for c in cols)
            con.execute(f'INSERT INTO main."{name}" ({quoted}) SELECT {quoted} FROM cur."{name}"')
    con.execute("INSERT INTO \"EXPORT_META_DATA\" VALUES ('EXPORT_PRODUCT_VERSION', '2022.4.2.1')")
    con.commit()
    con.execute("DETACH DATABASE cur")
    con.close()
    return out


def test_2022_4_schema_differs_as_issue_14_says(data_dir: Path):
    ddl = _ddl_of(data_dir / PROFILE_2022_4, GPU_TABLES)
    assert "EXPORT_META_DATA" in ddl and "META_DATA_EXPORT" not in ddl
    assert "TARGET_INFO_CUDA_DEVICE" not in ddl
    with sqlite3.connect(f"file:{data_dir / PROFILE_2022_4}?mode=ro", uri=True) as con:
        nvtx = {r[1] for r in con.execute('PRAGMA table_info("NVTX_EVENTS")')}
        kernel = [r[1] for r in con.execute('PRAGMA table_info("CUPTI_ACTIVITY_KIND_KERNEL")')]
    assert not {"eventId", "binaryData"} & nvtx
    assert len(kernel) == 27  # 3.28.1 documents 40


def test_reader_on_torch_gpu_activity_in_the_real_2022_4_schema_matches_torch(data_dir: Path, tmp_path: Path):
    current = build_nsys_sqlite_from_torch(data_dir / "base-rep0.pt.trace.json.gz", tmp_path / "current.sqlite")
    old = _to_2022_4_schema(current, data_dir / PROFILE_2022_4, tmp_path / "schema-2022.4.sqlite")
    torch_events = read_torch_trace(data_dir / "base-rep0.pt.trace.json.gz").events
    trace = read_nsys_sqlite(old)
    events = trace.events
    kernels, torch_kernels = events[events["category"] == "kernel"], torch_events[torch_events["category"] == "kernel"]
    assert len(kernels) == len(torch_kernels) == 5244
    assert list(kernels["name"]) == list(torch_kernels["name"])
    assert kernels["dur_us"].sum() == pytest.approx(torch_kernels["dur_us"].sum(), abs=0.01)
    projected = events[events["category"] == "gpu_user_annotation"].sort_values("start_us")
    torch_projected = torch_events[torch_events["category"] == "gpu_user_annotation"].sort_values("start_us")
    assert list(projected["name"]) == list(torch_projected["name"]) and len(projected) == 10
    assert projected["start_us"].to_numpy() == pytest.approx(torch_projected["start_us"].to_numpy(), abs=2e-3)
    assert trace.metadata.device.name == read_torch_trace(data_dir / "base-rep0.pt.trace.json.gz").metadata.device.name
    assert trace.metadata.runtime.nsys_version == "2022.4.2.1"


def _gpu_exports(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob(GPU_EXPORT_GLOB))


def test_committed_real_gpu_exports_read_into_steps_and_layers(data_dir: Path):
    exports = _gpu_exports(data_dir)
    # Real H200 exports are committed (tests/data/README.md); more versions can join by name.
    assert exports, f"no real GPU nsys export in {data_dir} ({GPU_EXPORT_GLOB} with its .json beside it)"
    from pytest_vllm_profile.analysis import summarize_path

    for export in exports:
        expected = json.loads(export.with_suffix(".json").read_text())
        traces = read_nsys_trace_set(export)
        assert traces.ranks, f"{export}: no GPU-owning process"
        rank0 = traces.ranks[0].events
        assert (rank0["category"] == "kernel").sum() == expected["kernels"] > 0
        assert traces.ranks[0].metadata.device.name, f"{export}: no GPU named (TARGET_INFO_GPU)"
        summary = summarize_path(export)
        assert summary.runtime.nsys_version == expected["nsys_version"]
        assert summary.layer_count == expected["layers"], export
        assert summary.token_steps == expected["max_tokens"], export  # one request: one step per token
