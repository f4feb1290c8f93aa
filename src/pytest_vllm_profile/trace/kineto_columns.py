"""Decoded trace events -> compact columns -> the normalized event table (`events.py`).

Both Kineto parsers (`torch_reader`'s line-layout stream and `any_layout`) hand slices of the
`traceEvents` array to `decode_slice`, which decodes them into typed msgspec Structs that hold
only the fields we keep (values of odd types go through a dict path instead) and appends them
to a `ColumnBuilder`; `ColumnBuilder.table` then validates the values (`validation`) and builds
the table. Python stack frames other than `nn.Module: ...` ones are dropped unless kept.
"""

from __future__ import annotations

import math
import operator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import orjson
import pandas as pd

from ..events import EVENT_COLUMNS, GPU_CATEGORIES, Category
from .any_layout import LayoutMismatch
from .validation import Damage, check_times, duplicate_mask

# Python stack frames kept by default: nn.Module frames (one per module call) mark layers.
MODULE_FRAME_PREFIX = "nn.Module: "
_PYTHON_CATEGORY = Category.PYTHON.value


class _Args(msgspec.Struct, gc=False):
    # -1 = absent, as in the table; an explicit JSON null fails validation -> dict path.
    device: int = -1
    stream: int = -1
    correlation: int = -1
    external_id: int = msgspec.field(default=-1, name="External id")


class _Event(msgspec.Struct, gc=False):
    ph: str = ""
    name: str = ""
    cat: str = ""
    pid: int | str = -1
    tid: int | str = -1
    # NaN = absent: trace.validation counts and drops such events instead of reading them as 0.
    ts: float = math.nan
    dur: float = math.nan
    args: _Args | None = None


_EVENTS_DECODER = msgspec.json.Decoder(list[_Event])
_EVENTS_DECODER = msgspec.json.Decoder(list[_Event])


class ColumnBuilder:
    """Accumulates complete events block by block into compact arrays.

    Names and categories are stored as integer codes into first-seen tables, so each distinct
    string exists once (a 1 GB trace repeats the same few thousand names millions of times).
    """

    def __init__(self, keep_python_frames: bool = False) -> None:
        self.keep_python_frames = keep_python_frames
        self.python_frames_dropped = 0
        self.name_ids: dict[str, int] = {}
        self.cat_ids: dict[str, int] = {}
        self.parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("name", "cat", "ts", "dur", "pid", "tid", "dev", "stream", "corr", "ext")
        }

    def _push(self, **cols: np.ndarray) -> None:
        for key, arr in cols.items():
            self.parts[key].append(arr)

    def add_structs(self, events: list[_Event]) -> None:
        if self.keep_python_frames:
            xs = [e for e in events if e.ph == "X"]
        else:
            xs = [
                e
                for e in events
                if e.ph == "X" and (e.cat != _PYTHON_CATEGORY or e.name.startswith(MODULE_FRAME_PREFIX))
            ]
            self.python_frames_dropped += sum(1 for e in events if e.ph == "X") - len(xs)
        if not xs:
            return
        n = len(xs)
        # Transpose with C-level attrgetter/zip/map: a Python loop per event and column cost
        # ~3x more than the JSON decode itself (profiled).
        names, cats, ts, dur, pids, tids, args = zip(*map(_EVENT_FIELDS, xs), strict=True)
        no_args = _Args()
        dev, stream, corr, ext = zip(*map(_ARGS_FIELDS, (a or no_args for a in args)), strict=True)
        self._push(
            name=_codes(self.name_ids, names, n),
            cat=_codes(self.cat_ids, cats, n),
            ts=np.array(ts, dtype=np.float64),
            dur=np.array(dur, dtype=np.float64),
            pid=_int_column(pids),
            tid=_int_column(tids),
            dev=np.array(dev, dtype=np.int64),
            stream=np.array(stream, dtype=np.int64),
            corr=np.array(corr, dtype=np.int64),
            ext=np.array(ext, dtype=np.int64),
        )

    def add_dicts(self, events: list[Any]) -> None:
        """The same as `add_structs` for plain parsed JSON, tolerant of odd value types."""
        xs = [e for e in events if isinstance(e, dict) and e.get("ph") == "X"]
        if not self.keep_python_frames:
            n_all = len(xs)
            xs = [e for e in xs if not _is_dropped_frame_dict(e)]
            self.python_frames_dropped += n_all - len(xs)
        if not xs:
            return
        n = len(xs)
        nid, cid = self.name_ids, self.cat_ids
        args = [a if isinstance(a := e.get("args"), dict) else {} for e in xs]
        self._push(
            name=np.fromiter((nid.setdefault(str(e.get("name", "")), len(nid)) for e in xs), np.int32, n),
            cat=np.fromiter((cid.setdefault(str(e.get("cat", "")), len(cid)) for e in xs), np.int32, n),
            ts=np.fromiter((_float_or(e.get("ts")) for e in xs), np.float64, n),
            dur=np.fromiter((_float_or(e.get("dur")) for e in xs), np.float64, n),
            pid=np.fromiter((int_or(e.get("pid")) for e in xs), np.int64, n),
            tid=np.fromiter((int_or(e.get("tid")) for e in xs), np.int64, n),
            dev=np.fromiter((int_or(a.get("device")) for a in args), np.int64, n),
            stream=np.fromiter((int_or(a.get("stream")) for a in args), np.int64, n),
            corr=np.fromiter((int_or(a.get("correlation")) for a in args), np.int64, n),
            ext=np.fromiter((int_or(a.get("External id")) for a in args), np.int64, n),
        )

    def _cat(self, key: str, dtype: type) -> np.ndarray:
        parts = self.parts[key]
        if not parts:
            return np.empty(0, dtype=dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def table(self, rank: int, path: Path) -> tuple[pd.DataFrame, list[str]]:
        """The normalized table, and the damage notes (bad values dropped, duplicates removed).

        Raises `TraceError` when damage is beyond repair (see `trace.validation`).
        """
        names = np.empty(len(self.name_ids), dtype=object)
        names[:] = list(self.name_ids)
        # Categories in sorted order so that the table does not depend on set iteration order.
        cats = sorted(self.cat_ids)
        recode = np.empty(len(cats), dtype=np.int32)
        for new_code, cat in enumerate(cats):
            recode[self.cat_ids[cat]] = new_code
        col = {
            key: self._cat(
                key, np.int32 if key in ("name", "cat") else np.float64 if key in ("ts", "dur") else np.int64
            )
            for key in self.parts
        }
        self.parts = {k: [] for k in self.parts}
        col["cat"] = recode[col["cat"]]
        damage = Damage(path)
        if len(col["ts"]):
            damage.totals = {cats[i]: int(n) for i, n in enumerate(np.bincount(col["cat"], minlength=len(cats))) if n}
            keep = check_times(damage, col["ts"], col["dur"], col["cat"], cats)
            damage.raise_if_fatal()
            if keep is not None:
                col = {k: v[keep] for k, v in col.items()}
            # ts, dur, name, tid first: the hashed columns, which nearly tell rows apart alone.
            dup = duplicate_mask(
                [col[k] for k in ("ts", "dur", "name", "tid", "cat", "pid", "dev", "stream", "corr", "ext")]
            )
            if dup is not None:
                damage.duplicates = _count_by(col["cat"][dup], cats)
                col = {k: v[~dup] for k, v in col.items()}
        cat_codes, ts, dur, pid, tid = col["cat"], col["ts"], col["dur"], col["pid"], col["tid"]
        # GPU rows: device/stream from args, else Kineto's pid/tid (which are device/stream
        # there, e.g. for gpu_user_annotation); CPU rows: -1 by contract.
        gpu_cat = np.array([c in GPU_CATEGORIES for c in cats], dtype=bool)
        is_gpu = gpu_cat[cat_codes] if len(cats) else np.zeros(0, dtype=bool)
        dev_arg, stream_arg = col["dev"], col["stream"]
        device = np.where(is_gpu, np.where(dev_arg >= 0, dev_arg, pid), -1)
        stream = np.where(is_gpu, np.where(stream_arg >= 0, stream_arg, tid), -1)
        n = len(ts)
        cols = {
            # dtype=object spelled out: pandas >= 3 would otherwise infer its "str" dtype.
            "name": pd.Series(names[col["name"]] if n else np.empty(0, dtype=object), dtype=object),
            "category": pd.Categorical.from_codes(cat_codes, categories=pd.Index(cats, dtype=object))
            if n
            else pd.Categorical([]),
            "start_us": ts,
            "dur_us": dur,
            "end_us": ts + dur,
            "pid": pid,
            "tid": tid,
            "device": device.astype(np.int64, copy=False),
            "stream": stream.astype(np.int64, copy=False),
            "correlation": col["corr"],
            "external_id": col["ext"],
            "rank": np.full(n, rank, dtype=np.int64),
            "step": np.full(n, -1, dtype=np.int64),
        }
        table = pd.DataFrame(cols, copy=False)
        if n == 0:
            table = table.astype(EVENT_COLUMNS)
        return table, damage.notes()


def _count_by(cat_codes: np.ndarray, cats: list[str]) -> dict[str, int]:
    counts = np.bincount(cat_codes, minlength=len(cats))
    return {cats[i]: int(k) for i, k in enumerate(counts) if k}


_EVENT_FIELDS = operator.attrgetter("name", "cat", "ts", "dur", "pid", "tid", "args")
_ARGS_FIELDS = operator.attrgetter("device", "stream", "correlation", "external_id")


def _codes(ids: dict[str, int], values: tuple[str, ...], n: int) -> np.ndarray:
    """Integer codes of `values` in the first-seen table `ids` (extended in place)."""
    for value in set(values).difference(ids):
        ids[value] = len(ids)
    return np.fromiter(map(ids.__getitem__, values), np.int32, n)


def _int_column(values: tuple[int | str, ...]) -> np.ndarray:
    """Kineto pid/tid: ints, except a few labels ("Spans", "Traces") that become -1."""
    try:
        return np.array(values, dtype=np.int64)
    except (ValueError, TypeError):
        return np.fromiter((v if type(v) is int else -1 for v in values), np.int64, len(values))


def _is_dropped_frame_dict(event: dict[str, Any]) -> bool:
    # Same test as the Struct path, on the table's view of the values (str() of name/cat).
    if str(event.get("cat", "")) != _PYTHON_CATEGORY:
        return False
    return not str(event.get("name", "")).startswith(MODULE_FRAME_PREFIX)


def int_or(value: object, default: int = -1) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _float_or(value: object) -> float:
    """A JSON number (or numeric string) as float; NaN for anything else (null, bool, "abc", absent)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def decode_slice(builder: ColumnBuilder, text: bytes) -> None:
    """Decode a `[...]` slice of events; odd value types go through the dict path."""
    try:
        builder.add_structs(_EVENTS_DECODER.decode(text))
    except msgspec.ValidationError:
        try:
            builder.add_dicts(orjson.loads(text))
        except orjson.JSONDecodeError as exc:
            raise LayoutMismatch(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise LayoutMismatch(str(exc)) from None
