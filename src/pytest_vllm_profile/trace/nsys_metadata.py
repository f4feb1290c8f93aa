"""Metadata of an nsys SQLite export: exporter version, session start, capture window, GPU.

The export's own description lives in `META_DATA_EXPORT` (current nsys, documented for schema
3.28.1) or `EXPORT_META_DATA` (nsys 2022.4.2.1, schema 3.0.0, seen in its real exports); both
are name/value tables. `ANALYSIS_DETAILS.duration` (ns) is how long the collection ran: for a session or capture-range
collection, the capture window (event times run from 0 to it).
The GPU tables (`TARGET_INFO_GPU`, `TARGET_INFO_CUDA_DEVICE`) exist only in GPU captures, and
2022.4 exports have no `TARGET_INFO_CUDA_DEVICE` at all: each is optional.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ..events import TraceMetadata
from ..summary import RuntimeInfo

# Name/value tables of the export's description, newest spelling first.
EXPORT_META_TABLES = ("META_DATA_EXPORT", "EXPORT_META_DATA")


class ExportDb(Protocol):
    """What this module reads through (`nsys_tables.NsysDb`)."""

    tables: set[str]

    def columns(self, table: str) -> set[str]: ...

    def select(self, table: str, wanted: dict[str, str], where: str = "") -> str: ...

    def scalar_rows(self, sql: str) -> list[tuple[Any, ...]]: ...


def export_description(db: ExportDb) -> dict[str, str]:
    """The export's name/value description (EXPORT_SCHEMA_VERSION, EXPORT_PRODUCT_VERSION, ...)."""
    for table in EXPORT_META_TABLES:
        if table in db.tables:
            return {str(n): str(v) for n, v in db.scalar_rows(f'SELECT name, value FROM "{table}"') if n is not None}
    return {}


def _capture_duration(db: ExportDb, meta: TraceMetadata) -> None:
    # Event times are counted from the collection's start, so every event lies in [0, duration]
    # (seen in 2022.4 exports: an NVTX range left open ends exactly at `duration`).
    if "ANALYSIS_DETAILS" not in db.tables or "duration" not in db.columns("ANALYSIS_DETAILS"):
        return
    rows = db.scalar_rows('SELECT duration FROM "ANALYSIS_DETAILS"')
    if rows and rows[0][0] is not None:
        meta.extra["capture_duration_ns"] = int(rows[0][0])


def _gpu(db: ExportDb, meta: TraceMetadata, devices_by_process: dict[int, int]) -> None:
    # The rank-0 process' CUDA device -> physical GPU (TARGET_INFO_CUDA_DEVICE maps a process'
    # cudaId to TARGET_INFO_GPU.id); without that table, TARGET_INFO_GPU.id/cuDevice is tried.
    first_process = min(devices_by_process, key=devices_by_process.__getitem__) if devices_by_process else None
    cuda_id = devices_by_process.get(first_process, 0) if first_process is not None else 0
    gpu_id, sm_from_cuda = None, None
    if "TARGET_INFO_CUDA_DEVICE" in db.tables:
        rows = db.scalar_rows(
            db.select(
                "TARGET_INFO_CUDA_DEVICE", dict.fromkeys(("gpuId", "cudaId", "pid", "numMultiprocessors"), "NULL")
            )
        )
        match = [r for r in rows if r[1] == cuda_id and (first_process is None or r[2] in (first_process, None))]
        match = match or [r for r in rows if r[1] == cuda_id]
        if match:
            gpu_id, sm_from_cuda = match[0][0], match[0][3]
    if "TARGET_INFO_GPU" in db.tables:
        wanted = ("id", "name", "totalMemory", "smCount", "computeMajor", "computeMinor", "cuDevice")
        rows = db.scalar_rows(db.select("TARGET_INFO_GPU", dict.fromkeys(wanted, "NULL")))
        pick = [r for r in rows if gpu_id is not None and r[0] == gpu_id]
        pick = pick or [r for r in rows if r[6] == cuda_id] or [r for r in rows if r[0] == cuda_id] or rows[:1]
        if pick:
            _, name, memory, sms, major, minor, _ = pick[0]
            meta.device.name = name
            meta.device.memory_bytes = int(memory) if memory else None
            meta.device.sm_count = int(sms) if sms else None
            if major is not None and minor is not None:
                meta.device.compute_capability = f"{major}.{minor}"
    if meta.device.sm_count is None and sm_from_cuda:
        meta.device.sm_count = int(sm_from_cuda)


def export_metadata(db: ExportDb, path: Path, devices_by_process: dict[int, int]) -> TraceMetadata:
    """TraceMetadata of the export: profiler nsys (and its version), start time, window, rank-0 GPU."""
    description = export_description(db)
    meta = TraceMetadata(
        paths=[str(path)], runtime=RuntimeInfo(profiler="nsys"), world_size=max(1, len(devices_by_process))
    )
    if "EXPORT_SCHEMA_VERSION" in description:
        meta.extra["export_schema_version"] = description["EXPORT_SCHEMA_VERSION"]
    if "EXPORT_PRODUCT_VERSION" in description:
        meta.runtime.nsys_version = description["EXPORT_PRODUCT_VERSION"]
    if "TARGET_INFO_SESSION_START_TIME" in db.tables and "utcEpochNs" in db.columns("TARGET_INFO_SESSION_START_TIME"):
        rows = db.scalar_rows('SELECT utcEpochNs FROM "TARGET_INFO_SESSION_START_TIME"')
        if rows and rows[0][0] is not None:
            meta.base_time_ns = int(rows[0][0])
    _capture_duration(db, meta)
    _gpu(db, meta, devices_by_process)
    return meta
