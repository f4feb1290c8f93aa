"""The tables of an Nsight Systems SQLite export, each read into normalized event rows.

`NsysDb` is a read-only connection that knows which tables and columns the file has (tables
are created lazily by the exporter, optional columns read as a default); `read_kernels`,
`read_memcpy`, `read_memset`, `read_runtime` and `read_nvtx` turn one table each into chunks of
the event table (`events.EVENT_COLUMNS`, plus the `_process` / `_global_tid` helper columns the
reader drops), `CHUNK_ROWS` rows at a time. Start/end values that are not integers, NULL or
end < start are left out and counted (`validation.Damage`). How the rows are combined into one
trace (NVTX projection, ranks) is `nsys_reader`'s.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import TraceError
from ..events import EVENT_COLUMNS, Category
from .validation import Damage

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


class NsysDb:
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


def event_frame(n: int, **cols: object) -> pd.DataFrame:
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
    out = event_frame(
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
    db: NsysDb,
    table: str,
    extra_columns: dict[str, str],
    name_rows: Callable[[pd.DataFrame], np.ndarray],
    category: str,
) -> list[pd.DataFrame]:
    """One GPU activity table as event frames; `name_rows` gives each chunk's row names."""
    sql = db.select(table, {**_GPU_ACTIVITY_COLUMNS, **extra_columns})
    return [_gpu_chunk(chunk, name_rows(chunk), category, db.damage) for chunk in db.chunks(sql)]


def read_kernels(db: NsysDb, strings: pd.Series) -> list[pd.DataFrame]:
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


def read_memcpy(db: NsysDb) -> list[pd.DataFrame]:
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


def read_memset(db: NsysDb) -> list[pd.DataFrame]:
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
    out = event_frame(
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


def read_runtime(db: NsysDb, strings: pd.Series) -> list[pd.DataFrame]:
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


def read_nvtx(db: NsysDb, strings: pd.Series) -> tuple[list[pd.DataFrame], int]:
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
