"""Reader for torch-profiler (Kineto) JSON traces -> normalized event table.

FIRST VERSION (lead): full orjson load; the reader owner replaces internals with a
measured, memory-bounded parser. The public API stays: `read_torch_trace(path) -> Trace`.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from ..errors import TraceError
from ..events import EVENT_COLUMNS, Trace, TraceMetadata


def _int_or(value: object, default: int = -1) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def read_torch_trace(path: str | Path, rank: int | None = None) -> Trace:
    path = Path(path)
    raw = gzip.open(path).read() if path.name.endswith(".gz") else path.read_bytes()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TraceError(path, f"not valid JSON ({exc})") from None
    events = doc.get("traceEvents")
    if not isinstance(events, list):
        raise TraceError(path, "no 'traceEvents' list: not a torch-profiler trace")
    cols: dict[str, list] = {c: [] for c in EVENT_COLUMNS}
    dist = doc.get("distributedInfo") or {}
    trace_rank = rank if rank is not None else _int_or(dist.get("rank"), 0)
    for ev in events:
        if ev.get("ph") != "X":
            continue
        args = ev.get("args") or {}
        cat = ev.get("cat") or ""
        start = float(ev.get("ts", 0.0))
        dur = float(ev.get("dur", 0.0))
        cols["name"].append(ev.get("name", ""))
        cols["category"].append(cat)
        cols["start_us"].append(start)
        cols["dur_us"].append(dur)
        cols["end_us"].append(start + dur)
        cols["pid"].append(_int_or(ev.get("pid")))
        cols["tid"].append(_int_or(ev.get("tid")))
        cols["device"].append(_int_or(args.get("device")))
        cols["stream"].append(_int_or(args.get("stream")))
        cols["correlation"].append(_int_or(args.get("correlation")))
        cols["external_id"].append(_int_or(args.get("External id")))
        cols["rank"].append(trace_rank)
        cols["step"].append(-1)
    table = pd.DataFrame({c: pd.Series(v, dtype=EVENT_COLUMNS[c]) for c, v in cols.items()})
    props = (doc.get("deviceProperties") or [{}])[0] if doc.get("deviceProperties") else {}
    meta = TraceMetadata(
        paths=[str(path)],
        profiler="torch",
        rank=trace_rank,
        world_size=_int_or(dist.get("world_size"), 1),
        gpu_name=props.get("name"),
        gpu_sm_count=props.get("numSms"),
        gpu_memory_bytes=props.get("totalGlobalMem"),
        gpu_compute_capability=(f"{props['computeMajor']}.{props['computeMinor']}" if "computeMajor" in props else None),
        cuda_driver_version=doc.get("cuda_driver_version"),
        cuda_runtime_version=doc.get("cuda_runtime_version"),
        cupti_version=doc.get("cupti_version"),
        vllm_version=doc.get("vllm_version"),
        with_stack=bool(doc["with_stack"]) if "with_stack" in doc else None,
        base_time_ns=doc.get("baseTimeNanoseconds"),
    )
    return Trace(events=table, metadata=meta)
