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

Times: nanoseconds on the nsys session clock -> microseconds. GPU rows get pid = device and
tid = stream, like Kineto's GPU rows; CPU rows get pid/tid decoded from the serialized
globalTid ((globalTid >> 24) & 0xFFFFFF, globalTid & 0xFFFFFF). rank: GPU-owning processes in
order of their lowest device id get ranks 0..n-1; rows of processes that ran no GPU work
(vLLM's API server) get rank -1.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import TraceError
from ..events import EVENT_COLUMNS, Category, Trace, TraceSet, check_event_table, empty_event_table
from .nsys_metadata import export_metadata
from .validation import DAMAGE_KEY, Damage

KERNEL_TABLE = "CUPTI_ACTIVITY_KIND_KERNEL"
MEMCPY_TABLE = "CUPTI_ACTIVITY_KIND_MEMCPY"
MEMSET_TABLE = "CUPTI_ACTIVITY_KIND_MEMSET"
RUNTIME_TABLE = "CUPTI_ACTIVITY_KIND_RUNTIME"
NVTX_TABLE = "NVTX_EVENTS"
STRINGS_TABLE = "StringIds"

# ENUM_NSYS_EVENT_TYPE values for NVTX ranges (documented constants of the export schema).
NVTX_PUSH_POP_RANGE = 59
NVTX_START_END_RANGE = 60

# Rows per pandas.read_sql_query chunk: bounds the transient memory of one conversion step.
CHUNK_ROWS = 250_000

_SQLITE_MAGIC = b"SQLite format 3\x00"
_API_VERSION_SUFFIX = re.compile(r"_v\d+$")

# CUPTI enum values (CUpti_ActivityMemcpyKind / CUpti_ActivityMemoryKind), which the exporter
# stores in copyKind / srcKind / dstKind / memKind; strings are Kineto's spelling.
_MEMCPY_KIND = {
    1: "HtoD",
    2: "DtoH",
    3: "HtoA",
    4: "AtoH",
    5: "AtoA",
    6: "AtoD",
    7: "DtoA",
    8: "DtoD",
    9: "HtoH",
    10: "PtoP",
}
_MEMORY_KIND = {
    0: "Unknown",
    1: "Pageable",
    2: "Pinned",
    3: "Device",
    4: "Array",
    5: "Managed",
    6: "Device Static",
    7: "Managed Static",
}


def _pid_of(global_id: np.ndarray) -> np.ndarray:
    """Process id from a serialized GlobalId (globalPid or globalTid)."""
    return (global_id >> 24) & 0xFFFFFF


def _tid_of(global_tid: np.ndarray) -> np.ndarray:
    return global_tid & 0xFFFFFF


class _Db:
    """A read-only connection plus what the file holds (tables and their columns)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            rows = self.con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
        except sqlite3.DatabaseError as exc:
            raise TraceError(path, f"cannot be read as an SQLite database ({exc})") from None
        self.tables = {r[0] for r in rows}
        self._columns: dict[str, set[str]] = {}
        self.damage = Damage(path)  # start/end values that are not integers, NULL, or end < start

    def columns(self, table: str) -> set[str]:
        if table not in self._columns:
            self._columns[table] = {r[1] for r in self.con.execute(f'PRAGMA table_info("{table}")')}
        return self._columns[table]

    def select(self, table: str, wanted: dict[str, str], where: str = "") -> str:
        """SELECT of `wanted` {column: SQL default}; absent optional columns read as the default."""
        have = self.columns(table)
        parts = [f'"{c}" AS "{c}"' if c in have else f'{default} AS "{c}"' for c, default in wanted.items()]
        return f'SELECT {", ".join(parts)} FROM "{table}"' + (f" WHERE {where}" if where else "")

    def chunks(self, sql: str) -> Iterator[pd.DataFrame]:
        try:
            yield from pd.read_sql_query(sql, self.con, chunksize=CHUNK_ROWS)
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            raise TraceError(self.path, f"query failed ({exc}): {sql}") from None

    def scalar_rows(self, sql: str) -> list[tuple]:
        try:
            return self.con.execute(sql).fetchall()
        except sqlite3.DatabaseError as exc:
            raise TraceError(self.path, f"query failed ({exc}): {sql}") from None


def _int_col(frame: pd.DataFrame, col: str, default: int = -1) -> np.ndarray:
    return pd.to_numeric(frame[col], errors="coerce").fillna(default).to_numpy(dtype=np.int64)


def _lookup(strings: pd.Series, ids: np.ndarray) -> np.ndarray:
    """StringIds values for `ids` (object array; None where the id is unknown)."""
    pos = strings.index.get_indexer(ids)
    values = strings.to_numpy(dtype=object)
    out = np.empty(len(ids), dtype=object)
    found = pos >= 0
    out[found] = values[pos[found]]
    out[~found] = None
    return out


def _frame(n: int, **cols: object) -> pd.DataFrame:
    """A normalized-table chunk: given columns, the others at their 'absent' value."""
    data: dict[str, object] = {}
    for col, dtype in EVENT_COLUMNS.items():
        value = cols.get(col)
        if value is None:
            value = np.full(n, -1, dtype=np.int64) if dtype == "int64" else np.full(n, np.nan)
        data[col] = value
    return pd.DataFrame(data)


def _valid_times(chunk: pd.DataFrame, category: str, damage: Damage) -> np.ndarray | None:
    """Rows whose start/end are integers with end >= start; bad ones counted into `damage`. None: all good."""
    damage.totals[category] = damage.totals.get(category, 0) + len(chunk)
    if chunk["start"].dtype.kind == "i" and chunk["end"].dtype.kind == "i":  # the common case: one cheap test
        backwards = chunk["end"].to_numpy() < chunk["start"].to_numpy()
        if not backwards.any():
            return None
        bad_start = bad_end = np.zeros(len(chunk), dtype=bool)
    else:
        start = pd.to_numeric(chunk["start"], errors="coerce").to_numpy(dtype=float)
        end = pd.to_numeric(chunk["end"], errors="coerce").to_numpy(dtype=float)
        bad_start, bad_end = np.isnan(start), np.isnan(end)
        backwards = ~bad_start & ~bad_end & (end < start)
    for field_name, problem, mask in (
        ("start", "a NULL or non-integer value", bad_start),
        ("end", "a NULL or non-integer value", bad_end),
        ("end", "a value before its start", backwards),
    ):
        if mask.any():
            damage.add(field_name, problem, {category: int(mask.sum())})
    return ~(bad_start | bad_end | backwards)


def _gpu_chunk(chunk: pd.DataFrame, names: np.ndarray, category: str, damage: Damage) -> pd.DataFrame:
    keep = _valid_times(chunk, category, damage)
    if keep is not None:
        chunk, names = chunk[keep], names[keep]
    start_ns = _int_col(chunk, "start", 0)
    end_ns = _int_col(chunk, "end", 0)
    device = _int_col(chunk, "deviceId")
    stream = _int_col(chunk, "streamId")
    start_us = start_ns / 1000.0
    dur_us = np.maximum(end_ns - start_ns, 0) / 1000.0
    out = _frame(
        len(chunk),
        name=names,
        category=np.full(len(chunk), category, dtype=object),
        start_us=start_us,
        dur_us=dur_us,
        end_us=start_us + dur_us,
        pid=device,
        tid=stream,
        device=device,
        stream=stream,
        correlation=_int_col(chunk, "correlationId"),
    )
    out["_process"] = _pid_of(_int_col(chunk, "globalPid", 0))
    out["_global_tid"] = -1
    return out


# Columns every GPU activity table (kernels, memcpy, memset) is read with, {column: SQL default}.
_GPU_ACTIVITY_COLUMNS = {
    "start": "0",
    "end": "0",
    "deviceId": "-1",
    "streamId": "-1",
    "correlationId": "-1",
    "globalPid": "0",
}


def _read_gpu_activity(
    db: _Db,
    table: str,
    extra_columns: dict[str, str],
    name_rows: Callable[[pd.DataFrame], np.ndarray],
    category: str,
) -> list[pd.DataFrame]:
    """One GPU activity table as event frames; `name_rows` gives each chunk's row names."""
    sql = db.select(table, {**_GPU_ACTIVITY_COLUMNS, **extra_columns})
    return [_gpu_chunk(chunk, name_rows(chunk), category, db.damage) for chunk in db.chunks(sql)]


def _read_kernels(db: _Db, strings: pd.Series) -> list[pd.DataFrame]:
    if KERNEL_TABLE not in db.tables:  # a CPU-only capture (read with require_kernels=False)
        return []

    def kernel_names(chunk: pd.DataFrame) -> np.ndarray:
        names = _lookup(strings, _int_col(chunk, "demangledName"))
        missing = pd.isna(names)
        if missing.any():
            names[missing] = _lookup(strings, _int_col(chunk, "shortName"))[missing]
        names[pd.isna(names)] = "<unnamed kernel>"
        return names

    return _read_gpu_activity(
        db, KERNEL_TABLE, {"demangledName": "NULL", "shortName": "NULL"}, kernel_names, Category.KERNEL.value
    )


def _read_memcpy(db: _Db) -> list[pd.DataFrame]:
    if MEMCPY_TABLE not in db.tables:
        return []

    def memcpy_names(chunk: pd.DataFrame) -> np.ndarray:
        kind = pd.Series(_int_col(chunk, "copyKind", 0)).map(_MEMCPY_KIND).fillna("<unknown>")
        src = pd.Series(_int_col(chunk, "srcKind", 0)).map(_MEMORY_KIND).fillna("<unknown>")
        dst = pd.Series(_int_col(chunk, "dstKind", 0)).map(_MEMORY_KIND).fillna("<unknown>")
        return ("Memcpy " + kind + " (" + src + " -> " + dst + ")").to_numpy(dtype=object)

    return _read_gpu_activity(
        db, MEMCPY_TABLE, {"copyKind": "0", "srcKind": "0", "dstKind": "0"}, memcpy_names, Category.MEMCPY.value
    )


def _read_memset(db: _Db) -> list[pd.DataFrame]:
    if MEMSET_TABLE not in db.tables:
        return []

    def memset_names(chunk: pd.DataFrame) -> np.ndarray:
        kind = pd.Series(_int_col(chunk, "memKind", 0)).map(_MEMORY_KIND).fillna("<unknown>")
        return ("Memset (" + kind + ")").to_numpy(dtype=object)

    return _read_gpu_activity(db, MEMSET_TABLE, {"memKind": "0"}, memset_names, Category.MEMSET.value)


def _cpu_chunk(
    chunk: pd.DataFrame, names: np.ndarray, categories: np.ndarray, correlation: np.ndarray, damage: Damage
) -> pd.DataFrame:
    keep = _valid_times(chunk, str(categories[0]) if len(categories) else "cpu", damage)
    if keep is not None:
        chunk, names, categories, correlation = chunk[keep], names[keep], categories[keep], correlation[keep]
    start_ns = _int_col(chunk, "start", 0)
    end_ns = _int_col(chunk, "end", 0)
    gtid = _int_col(chunk, "globalTid", 0)
    start_us = start_ns / 1000.0
    dur_us = np.maximum(end_ns - start_ns, 0) / 1000.0
    out = _frame(
        len(chunk),
        name=names,
        category=categories,
        start_us=start_us,
        dur_us=dur_us,
        end_us=start_us + dur_us,
        pid=_pid_of(gtid),
        tid=_tid_of(gtid),
        correlation=correlation,
    )
    out["_process"] = _pid_of(gtid)
    out["_global_tid"] = gtid
    return out


def _read_runtime(db: _Db, strings: pd.Series) -> list[pd.DataFrame]:
    if RUNTIME_TABLE not in db.tables:
        return []
    sql = db.select(RUNTIME_TABLE, {"start": "0", "end": "0", "globalTid": "0", "correlationId": "-1", "nameId": "-1"})
    frames = []
    for chunk in db.chunks(sql):
        raw = pd.Series(_lookup(strings, _int_col(chunk, "nameId")), dtype=object).fillna("<unnamed CUDA API>")
        names = raw.str.replace(_API_VERSION_SUFFIX, "", regex=True)
        # The exporter puts runtime (cuda*) and driver (cu*) API calls in one table.
        driver = names.str.startswith("cu") & ~names.str.startswith("cuda")
        categories = np.where(driver, Category.CUDA_DRIVER.value, Category.CUDA_RUNTIME.value).astype(object)
        frames.append(
            _cpu_chunk(chunk, names.to_numpy(dtype=object), categories, _int_col(chunk, "correlationId"), db.damage)
        )
    return frames


def _read_nvtx(db: _Db, strings: pd.Series) -> tuple[list[pd.DataFrame], int]:
    """NVTX ranges as user_annotation rows (external_id = a per-range id); and how many were left open."""
    if NVTX_TABLE not in db.tables:
        return [], 0
    have = db.columns(NVTX_TABLE)
    if "eventType" not in have:
        raise TraceError(db.path, f"{NVTX_TABLE} has no eventType column; not an nsys export this reader knows")
    id_col = "eventId" if "eventId" in have else "rowid"
    ranges = f"eventType IN ({NVTX_PUSH_POP_RANGE}, {NVTX_START_END_RANGE})"
    wanted = {"start": "0", "end": "NULL", "text": "NULL", "textId": "NULL", "globalTid": "0"}
    sql = db.select(NVTX_TABLE, wanted, where=f'{ranges} AND "end" IS NOT NULL')
    sql = sql.replace(" FROM ", f', {id_col} AS "_range_id" FROM ', 1)
    frames = []
    for chunk in db.chunks(sql):
        names = chunk["text"].to_numpy(dtype=object, copy=True)
        missing = pd.isna(names)
        if missing.any():
            names[missing] = _lookup(strings, _int_col(chunk, "textId"))[missing]
        names[pd.isna(names)] = "<unnamed NVTX range>"
        categories = np.full(len(chunk), Category.CPU_ANNOTATION.value, dtype=object)
        # Kineto links a CPU annotation to its GPU projection by "External id"; nsys has none,
        # so the NVTX row id plays that part (positive, unique within the file).
        frame = _cpu_chunk(chunk, names, categories, _int_col(chunk, "_range_id") + 1, db.damage)
        frame["external_id"] = frame["correlation"]
        frame["correlation"] = -1
        frames.append(frame)
    open_ranges = db.scalar_rows(f'SELECT COUNT(*) FROM "{NVTX_TABLE}" WHERE {ranges} AND "end" IS NULL')[0][0]
    return frames, int(open_ranges)


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
        proj = _frame(
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


def _open(path: str | Path, require_kernels: bool = True) -> _Db:
    path = Path(path)
    if not path.is_file():
        raise TraceError(path, "file not found")
    with open(path, "rb") as fh:
        head = fh.read(len(_SQLITE_MAGIC))
    if head != _SQLITE_MAGIC:
        is_report = path.suffix == ".nsys-rep"
        hint = " (a .nsys-rep report: convert it with `nsys export --type sqlite`)" if is_report else ""
        raise TraceError(path, f"not an SQLite database{hint}; expected the output of `nsys export --type sqlite`")
    db = _Db(path)
    if require_kernels:
        missing = KERNEL_TABLE not in db.tables
        # A non-lazy export (`nsys export --lazy=false`) of a capture without CUDA work has the table, empty.
        if missing or not db.scalar_rows(f'SELECT 1 FROM "{KERNEL_TABLE}" LIMIT 1'):
            db.con.close()
            raise TraceError(
                path,
                f"has {'no' if missing else 'an empty'} {KERNEL_TABLE} table: the capture holds no CUDA kernels (was "
                "nsys run with --trace=cuda, and did the capture range open, i.e. did the server get /start_profile "
                "with the cuda profiler on?)",
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
        gpu_frames = _read_kernels(db, strings) + _read_memcpy(db) + _read_memset(db)
        api_frames = _read_runtime(db, strings)
        nvtx_frames, open_ranges = _read_nvtx(db, strings)
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
