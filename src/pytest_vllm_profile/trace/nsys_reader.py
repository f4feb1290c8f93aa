"""Reader for Nsight Systems SQLite exports (`nsys export --type sqlite`) -> normalized event table.

Follows NVIDIA's "SQLite Schema Reference" (Nsight Systems Post-Collection Analysis Guide,
2026.4 release, export schema version 3.28.1); only tables and columns that have been stable
across schema 3.x are required, every other one is optional (tables are created lazily by
the exporter, so a capture without memsets simply has no CUPTI_ACTIVITY_KIND_MEMSET).

Mapping (docs/nsys.md has the full table):

- CUPTI_ACTIVITY_KIND_KERNEL  -> category "kernel"; name = StringIds[demangledName], falling
  back to StringIds[shortName]; device = deviceId, stream = streamId, correlation = correlationId.
- CUPTI_ACTIVITY_KIND_MEMCPY / _MEMSET -> "gpu_memcpy" / "gpu_memset", named like Kineto does
  ("Memcpy HtoD (Pinned -> Device)", "Memset (Device)") so names compare across profilers.
- CUPTI_ACTIVITY_KIND_RUNTIME -> "cuda_runtime" (cuda* names) or "cuda_driver" (cu* names);
  the exporter's API-version suffix (`cudaLaunchKernel_v7000`) is dropped, as Kineto names them.
- NVTX_EVENTS push/pop (eventType 59) and start/end (60) ranges -> "user_annotation" (CPU side),
  plus their projection onto the GPU -> "gpu_user_annotation": from the first to the last GPU
  activity launched (same thread, by correlation id) while the range was open. That is what
  Kineto writes for `record_function` ranges, so step detection works the same on both.
Each table is read by `nsys_tables`; this module combines them (projection, ranks) into a trace.

Times: nanoseconds on the nsys session clock -> microseconds. GPU rows get pid = device and
tid = stream, like Kineto's GPU rows; CPU rows get pid/tid decoded from the serialized
globalTid ((globalTid >> 24) & 0xFFFFFF, globalTid & 0xFFFFFF). rank: GPU-owning processes in
order of their lowest device id get ranks 0..n-1; rows of processes that ran no GPU work
(vLLM's API server) get rank -1.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import TraceError
from ..events import EVENT_COLUMNS, Category, Trace, TraceSet, check_event_table, empty_event_table
from .nsys_metadata import export_metadata
from .nsys_tables import (
    KERNEL_TABLE,
    STRINGS_TABLE,
    NsysDb,
    event_frame,
    read_kernels,
    read_memcpy,
    read_memset,
    read_nvtx,
    read_runtime,
)
from .validation import DAMAGE_KEY

_SQLITE_MAGIC = b"SQLite format 3\x00"


def project_ranges_to_gpu(ranges: pd.DataFrame, api: pd.DataFrame, gpu: pd.DataFrame) -> pd.DataFrame:
    """GPU projections ("gpu_user_annotation" rows) of CPU ranges.

    A range's projection spans from the first start to the last end of the GPU activities whose
    launching API call (same thread, `_global_tid`) started inside the range, matched by
    correlation id. Ranges that launched no GPU work get no projection. Vectorized per thread
    with reduceat, so tens of thousands of layer-scope ranges stay cheap.
    """
    if ranges.empty or api.empty or gpu.empty:
        return empty_event_table()
    per_corr = (
        gpu[gpu["correlation"] >= 0]
        .groupby("correlation")
        .agg(
            g_start=("start_us", "min"),
            g_end=("end_us", "max"),
            g_device=("device", "first"),
            g_stream=("stream", "first"),
        )
    )
    api = api[api["correlation"] >= 0]
    out = []
    for gtid, thread_ranges in ranges.groupby("_global_tid", sort=False):
        calls = api[api["_global_tid"] == gtid].sort_values("start_us", kind="stable")
        if calls.empty:
            continue
        pos = per_corr.index.get_indexer(calls["correlation"].to_numpy())
        has = pos >= 0
        g_start = np.where(has, per_corr["g_start"].to_numpy()[np.where(has, pos, 0)], np.nan)
        g_end = np.where(has, per_corr["g_end"].to_numpy()[np.where(has, pos, 0)], np.nan)
        g_dev = np.where(has, per_corr["g_device"].to_numpy()[np.where(has, pos, 0)], -1)
        g_str = np.where(has, per_corr["g_stream"].to_numpy()[np.where(has, pos, 0)], -1)
        n = len(calls)
        starts = calls["start_us"].to_numpy()
        i0 = np.searchsorted(starts, thread_ranges["start_us"].to_numpy(), side="left")
        i1 = np.searchsorted(starts, thread_ranges["end_us"].to_numpy(), side="right")
        # index of the first call at or after i that launched GPU work (n when none)
        idx = np.where(has, np.arange(n), n)
        first_with_gpu = np.minimum.accumulate(idx[::-1])[::-1]
        first_with_gpu = np.append(first_with_gpu, n)
        first = first_with_gpu[i0]
        keep = first < i1
        if not keep.any():
            continue
        lo, hi = i0[keep], i1[keep]
        bounds = np.empty(2 * len(lo), dtype=np.int64)
        bounds[0::2], bounds[1::2] = lo, hi
        pad_start, pad_end = np.append(g_start, np.nan), np.append(g_end, np.nan)  # hi may equal n
        p_start = np.fmin.reduceat(pad_start, bounds)[0::2]
        p_end = np.fmax.reduceat(pad_end, bounds)[0::2]
        kept = thread_ranges[keep]
        dev, stream = g_dev[first[keep]], g_str[first[keep]]
        proj = event_frame(
            len(kept),
            name=kept["name"].to_numpy(dtype=object),
            category=np.full(len(kept), Category.GPU_ANNOTATION.value, dtype=object),
            start_us=p_start,
            dur_us=p_end - p_start,
            end_us=p_end,
            pid=dev,
            tid=stream,
            device=dev,
            stream=stream,
            external_id=kept["external_id"].to_numpy(),
        )
        proj["_process"] = kept["_process"].to_numpy()
        proj["_global_tid"] = -1
        out.append(proj)
    return pd.concat(out, ignore_index=True) if out else empty_event_table()


def _open(path: str | Path, require_kernels: bool = True) -> NsysDb:
    path = Path(path)
    if not path.is_file():
        raise TraceError(path, "file not found")
    with open(path, "rb") as fh:
        head = fh.read(len(_SQLITE_MAGIC))
    if head != _SQLITE_MAGIC:
        is_report = path.suffix == ".nsys-rep"
        hint = " (a .nsys-rep report: convert it with `nsys export --type sqlite`)" if is_report else ""
        raise TraceError(path, f"not an SQLite database{hint}; expected the output of `nsys export --type sqlite`")
    db = NsysDb(path)
    if require_kernels:
        missing = KERNEL_TABLE not in db.tables
        # A non-lazy export (`nsys export --lazy=false`) of a capture without CUDA work has the table, empty.
        if missing or not db.scalar_rows(f'SELECT 1 FROM "{KERNEL_TABLE}" LIMIT 1'):
            saw_gpu = "TARGET_INFO_GPU" in db.tables and bool(db.scalar_rows('SELECT 1 FROM "TARGET_INFO_GPU" LIMIT 1'))
            db.con.close()
            what = f"has {'no' if missing else 'an empty'} {KERNEL_TABLE} table: the capture holds no CUDA kernels"
            if not saw_gpu:  # the real vLLM CPU server under nsys 2022.4: no GPU, nothing to time
                raise TraceError(
                    path,
                    f"{what} and saw no GPU (no TARGET_INFO_GPU rows): the profiled server ran on the CPU only; "
                    "nsys times a server's GPU kernels, so profile a CPU build with the torch profiler "
                    "(--vllm-profiler torch)",
                )
            raise TraceError(
                path,
                f"{what} (was nsys run with --trace=cuda, and did the capture range open, i.e. did the server get "
                "/start_profile with the cuda profiler on?)",
            )
    return db


def read_nsys_sqlite(path: str | Path, require_kernels: bool = True) -> Trace:
    """All events of an nsys SQLite export as one normalized table (`rank` tells processes apart).

    require_kernels: a file without CUPTI_ACTIVITY_KIND_KERNEL is an error (a GPU capture that
    recorded no kernels); False reads CPU-only captures (the NVTX ranges and metadata).
    """
    path = Path(path)
    db = _open(path, require_kernels)
    with closing(db.con):
        strings = pd.Series(dtype=object)
        if STRINGS_TABLE in db.tables:
            ids = pd.read_sql_query(f'SELECT id, value FROM "{STRINGS_TABLE}"', db.con)
            strings = pd.Series(ids["value"].to_numpy(dtype=object), index=ids["id"].to_numpy(dtype=np.int64))
        gpu_frames = read_kernels(db, strings) + read_memcpy(db) + read_memset(db)
        api_frames = read_runtime(db, strings)
        nvtx_frames, open_ranges = read_nvtx(db, strings)
        gpu = pd.concat(gpu_frames, ignore_index=True) if gpu_frames else None
        api = pd.concat(api_frames, ignore_index=True) if api_frames else None
        nvtx = pd.concat(nvtx_frames, ignore_index=True) if nvtx_frames else None
        devices_by_process: dict[int, int] = {}
        if gpu is not None and not gpu.empty:
            kernels = gpu[gpu["category"] == Category.KERNEL.value]
            devices_by_process = {int(p): int(d) for p, d in kernels.groupby("_process")["device"].min().items()}
        projected = None
        if nvtx is not None and api is not None and gpu is not None:
            projected = project_ranges_to_gpu(nvtx, api, gpu)
        meta = export_metadata(db, path, devices_by_process)
        db.damage.raise_if_fatal()
        if db.damage.problems:
            meta.extra[DAMAGE_KEY] = db.damage.notes()
    # Engine ranks: GPU-owning processes ordered by their (first) device, then pid.
    rank_of = {p: r for r, p in enumerate(sorted(devices_by_process, key=lambda p: (devices_by_process[p], p)))}
    parts = [p for p in (gpu, api, nvtx, projected) if p is not None and not p.empty]
    if not parts:
        table = empty_event_table()
    else:
        table = pd.concat(parts, ignore_index=True)
        table["rank"] = table["_process"].map(rank_of).fillna(-1).astype(np.int64)
        table = table.drop(columns=["_process", "_global_tid"])
        table = table.sort_values("start_us", kind="stable", ignore_index=True)
        for col, dtype in EVENT_COLUMNS.items():
            if str(table[col].dtype) != dtype:
                table[col] = table[col].astype(dtype)
    meta.extra["open_nvtx_ranges"] = open_ranges
    meta.extra["processes"] = {str(p): {"rank": r, "device": devices_by_process[p]} for p, r in rank_of.items()}
    check_event_table(table)
    return Trace(events=table, metadata=meta)


def read_nsys_trace_set(path: str | Path) -> TraceSet:
    """One `Trace` per GPU-owning process (engine rank); rows of other processes become `api_server`."""
    whole = read_nsys_sqlite(path)
    events = whole.events
    ranks: dict[int, Trace] = {}
    for rank in sorted(r for r in events["rank"].unique() if r >= 0):
        meta = replace(whole.metadata, rank=int(rank), extra=dict(whole.metadata.extra))
        ranks[int(rank)] = Trace(events=events[events["rank"] == rank].reset_index(drop=True), metadata=meta)
    others = events[events["rank"] < 0]
    api_server = None
    if not others.empty:
        meta = replace(whole.metadata, extra=dict(whole.metadata.extra))
        api_server = Trace(events=others.reset_index(drop=True), metadata=meta)
    return TraceSet(ranks=ranks, api_server=api_server, root=Path(path).parent)
