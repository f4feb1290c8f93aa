"""The one normalized event table every analysis reads, whichever profiler produced it.

A trace reader (torch/Kineto JSON in `trace.torch_reader`, Nsight Systems SQLite in
`trace.nsys_reader`) returns a `Trace`: a pandas DataFrame with exactly the columns in
`EVENT_COLUMNS` plus a `TraceMetadata`. Analyses never look at raw profiler records.

Columns (one row per complete event; instant, flow and metadata records are dropped;
`python_function` rows (Python stack frames, `with_stack`) are kept only for `nn.Module: ...`
frames unless the reader is called with `keep_python_frames=True`, and the count of frames left
out is in `metadata.extra["python_frames_dropped"]`). Readers validate values as they read
them (`trace.validation`): rows with a missing, non-numeric, negative, infinite or implausible
duration, or a missing or zero start, are dropped and exact duplicate rows removed, each with a
note in `metadata.extra["damage"]` (or a `TraceError` when the damage is too large), so every
row below holds finite times:

| column        | dtype    | meaning |
|---------------|----------|---------|
| name          | object   | full event name (kernel name, op name, annotation text) |
| category      | category | one of `Category` values; unknown profiler categories are kept verbatim |
| start_us      | float64  | start, microseconds, on the profiler's own clock |
| dur_us        | float64  | duration in microseconds (>= 0) |
| end_us        | float64  | start_us + dur_us |
| pid           | int64    | process id (device index for GPU rows in Kineto traces); -1 when not numeric |
| tid           | int64    | thread id (stream for GPU rows in Kineto traces); -1 when not numeric |
| device        | int64    | GPU index for GPU rows, -1 for CPU rows |
| stream        | int64    | CUDA stream for GPU rows, -1 for CPU rows |
| correlation   | int64    | CUPTI correlation id linking a launch to its GPU work; -1 when absent |
| external_id   | int64    | profiler "External id" linking CPU ops to annotations; -1 when absent |
| rank          | int64    | engine rank (tensor-parallel rank) the event came from |
| step          | int64    | engine step index assigned by step detection; -1 until then / outside any step |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import pandas as pd

from .summary import DeviceInfo, RuntimeInfo


class Category(str, Enum):
    """Normalized event categories (the Kineto names; the nsys reader maps onto these)."""

    KERNEL = "kernel"
    MEMCPY = "gpu_memcpy"
    MEMSET = "gpu_memset"
    GPU_ANNOTATION = "gpu_user_annotation"
    CPU_ANNOTATION = "user_annotation"
    CPU_OP = "cpu_op"
    PYTHON = "python_function"
    CUDA_RUNTIME = "cuda_runtime"
    CUDA_DRIVER = "cuda_driver"


GPU_CATEGORIES: frozenset[str] = frozenset(
    {Category.KERNEL.value, Category.MEMCPY.value, Category.MEMSET.value, Category.GPU_ANNOTATION.value}
)

EVENT_COLUMNS: dict[str, str] = {
    "name": "object",
    "category": "category",
    "start_us": "float64",
    "dur_us": "float64",
    "end_us": "float64",
    "pid": "int64",
    "tid": "int64",
    "device": "int64",
    "stream": "int64",
    "correlation": "int64",
    "external_id": "int64",
    "rank": "int64",
    "step": "int64",
}


@dataclass
class TraceMetadata:
    """What a trace says about where and how it was recorded."""

    paths: list[str]
    runtime: RuntimeInfo  # the profiler, CUDA / CUPTI and vLLM versions
    device: DeviceInfo = field(default_factory=DeviceInfo)  # the GPU (peak bandwidth: filled by analysis)
    rank: int = 0
    world_size: int = 1
    with_stack: bool | None = None
    base_time_ns: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Trace:
    """One engine rank's events as a normalized table, plus its metadata."""

    events: pd.DataFrame
    metadata: TraceMetadata

    @property
    def has_gpu_events(self) -> bool:
        return bool(self.events["category"].isin(GPU_CATEGORIES).any())


@dataclass
class TraceSet:
    """What one vLLM profile session wrote: one `Trace` per engine rank, plus side files.

    `api_server` is the API-server process' CPU-only trace (`*.async_llm.*`) when present;
    `profiler_tables` are vLLM's `profiler_out_*.txt` key-averages tables.
    """

    ranks: dict[int, Trace]
    api_server: Trace | None = None
    profiler_tables: list[Path] = field(default_factory=list)
    root: Path | None = None


def empty_event_table() -> pd.DataFrame:
    """A zero-row table with the documented columns and dtypes."""
    return pd.DataFrame({col: pd.Series(dtype=dtype) for col, dtype in EVENT_COLUMNS.items()})


def check_event_table(events: pd.DataFrame) -> None:
    """Raise ValueError if a reader produced a table that breaks the documented contract."""
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"event table lacks columns {missing}")
    for col, dtype in EVENT_COLUMNS.items():
        if str(events[col].dtype) != dtype:
            raise ValueError(f"event table column {col!r} has dtype {events[col].dtype}, expected {dtype}")
