"""Reader for torch-profiler (Kineto) JSON traces (`.json`, `.json.gz`) -> normalized event table.

Why it is built this way (measured on the 352 K-event eager H100 trace, 95 MB of JSON, see
benchmarks/RESULTS.md): a full load into Python dicts costs 1.6-2.2 s (msgspec / stdlib json /
orjson) and holds every event dict at once (~10x the JSON size in RAM), while msgspec decoding
into a typed `Struct` that declares only the fields we keep takes ~0.75 s and skips the rest.

Kineto writes the `traceEvents` array one event object per block, each block closed by a line
`  },` at two-space indent; a JSON string never holds a raw newline, so that byte pattern only
occurs between events. The streaming parser decompresses in blocks, cuts the text at the last
event boundary of each block, decodes that slice and appends it to columnar numpy arrays: at
most one block of event objects exists at a time, so memory is bounded by the output table,
not by the JSON. Any file not laid out that way goes through `any_layout`, which cuts any valid
JSON layout at candidate event boundaries, also in bounded memory; only text neither can cut
(invalid JSON) goes to the whole-document parser, to name the error. Values of unexpected
types go through a dict path slice by slice; bad values, duplicate events and zero timestamps
are counted, dropped or refused by `validation` (issue 17).

Python stack frames (`python_function` rows, written when the profiler ran with `with_stack`)
are ~70 % of an eager trace's events, and the analyses use only the `nn.Module: <Name>` frames
(layer detection). By default (`keep_python_frames=False`) the other frames are dropped: the
streaming parser cuts them out of each slice with a byte-prefix test before decoding (Kineto
writes `"ph": "X", "cat": "python_function", "name": "` first in every such event), and both
parsers drop any that remain by category and name after decoding, so they give the same table.
gzip is inflated with ISA-L (`isal`) when installed: ~5x faster than zlib on these traces.
"""
from __future__ import annotations

import gc
import math
import operator
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import orjson
import pandas as pd

from ..errors import TraceError
from ..events import EVENT_COLUMNS, GPU_CATEGORIES, Category, Trace, TraceMetadata
from .any_layout import LayoutMismatch, parse_events
from .validation import DAMAGE_KEY, Damage, check_times, duplicate_mask, path_problem

try:  # ISA-L inflate: same stream API as zlib, ~5x faster (measured in benchmarks/RESULTS.md)
    from isal import isal_zlib as _inflate_lib

    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _inflate_lib.error)
except ImportError:  # pragma: no cover - isal is a declared dependency; zlib still works
    _inflate_lib = zlib  # type: ignore[assignment]
    _INFLATE_ERRORS = (zlib.error,)

ParserChoice = Literal["auto", "stream", "any-layout", "full"]

# Decompressed bytes handed to the decoder at a time: large enough that per-call overhead is
# noise, small enough that one block of event objects stays at a few tens of MB.
_BLOCK_BYTES = 8 << 20
_EVENT_BOUNDARY = b"\n  },\n  {"
_ARRAY_END = b"\n  }\n  ]"
_TRACE_EVENTS_KEY = re.compile(rb'"traceEvents"\s*:\s*\[')
# Header bytes to scan for `"traceEvents": [` before deciding the file is laid out differently.
_MAX_HEADER_BYTES = 64 << 20
# Kineto-layout text without an event boundary before the streaming parser gives up on the layout
# (a Kineto event is a few hundred bytes; without this a one-line file was held whole).
_MAX_KINETO_PENDING = 4 * _BLOCK_BYTES
# Largest decompressed JSON the whole-document parser takes (~10x that in RAM as Python objects);
# it only runs on what neither streaming parser can cut, e.g. invalid JSON, to name the error.
FULL_PARSE_MAX_BYTES = 256 << 20
_RANK_IN_NAME = re.compile(r"(?:^|[._-])rank[_-]?(\d+)(?=[._-])")

# Python stack frames kept by default: nn.Module frames (one per module call) mark layers.
MODULE_FRAME_PREFIX = "nn.Module: "
_PYTHON_CATEGORY = Category.PYTHON.value
# How Kineto starts every python_function event, right after the `{` of the event: the
# streaming parser drops non-module frames by this prefix before decoding them.
_PY_FRAME_START = b'\n    "ph": "X", "cat": "python_function", "name": "'
_MODULE_FRAME_BYTES = MODULE_FRAME_PREFIX.encode()
_LEADING_SPACE = re.compile(rb"[\n ]*")

_TRUNCATED_GZIP = (
    "truncated: the gzip stream ends early — was the trace still being written? "
    "vLLM flushes traces after /stop_profile returns"
)


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
_DOC_DECODER = msgspec.json.Decoder()


class NotATraceError(TraceError):
    """The file is not a torch-profiler trace at all (not JSON, or JSON without `traceEvents`)."""


_LayoutMismatch = LayoutMismatch  # the streaming parsers met something they do not handle


# --------------------------------------------------------------------------- byte sources


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _iter_blocks(path: Path) -> Iterator[bytes]:
    """Decompressed bytes of `path` in blocks of about _BLOCK_BYTES; gzip is detected by its magic bytes."""
    block_bytes = _BLOCK_BYTES
    gz = _is_gzip(path)
    decomp = _inflate_lib.decompressobj(wbits=31) if gz else None
    # Compressed input is read in smaller pieces so decompressed blocks stay near block_bytes.
    read_size = block_bytes // 8 if gz else block_bytes
    with path.open("rb") as fh:
        while True:
            raw = fh.read(read_size)
            if decomp is None:
                if not raw:
                    return
                yield raw
                continue
            if not raw:
                tail = decomp.flush()
                if tail:
                    yield tail
                if not decomp.eof:
                    raise TraceError(path, _TRUNCATED_GZIP)
                return
            try:
                out = decomp.decompress(raw)
                # Concatenated gzip members (rare) are valid gzip: keep decoding them.
                while decomp.eof and decomp.unused_data:
                    rest = decomp.unused_data
                    decomp = _inflate_lib.decompressobj(wbits=31)
                    out += decomp.decompress(rest)
            except _INFLATE_ERRORS as exc:
                raise TraceError(path, f"corrupt gzip data ({exc})") from None
            if out:
                yield out


def _read_all(path: Path, why_not_streamed: str) -> bytes:
    """The whole decompressed text; refused above FULL_PARSE_MAX_BYTES (memory would not be bounded)."""
    parts, size = [], 0
    for block in _iter_blocks(path):
        size += len(block)
        if size > FULL_PARSE_MAX_BYTES:
            raise TraceError(
                path,
                f"cannot be read in bounded memory: neither Kineto's line layout nor any other JSON layout could be "
                f"streamed ({why_not_streamed}), and a whole-document parse of more than "
                f"{FULL_PARSE_MAX_BYTES >> 20} MB of JSON ({path.stat().st_size >> 20} MB on disk) would need about "
                "10x that in memory; refused",
            )
        parts.append(block)
    return b"".join(parts)


# --------------------------------------------------------------------------- columns


class _ColumnBuilder:
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
        names, cats, ts, dur, pids, tids, args = zip(*map(_EVENT_FIELDS, xs))
        no_args = _Args()
        dev, stream, corr, ext = zip(*map(_ARGS_FIELDS, (a or no_args for a in args)))
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
            pid=np.fromiter((_int_or(e.get("pid")) for e in xs), np.int64, n),
            tid=np.fromiter((_int_or(e.get("tid")) for e in xs), np.int64, n),
            dev=np.fromiter((_int_or(a.get("device")) for a in args), np.int64, n),
            stream=np.fromiter((_int_or(a.get("stream")) for a in args), np.int64, n),
            corr=np.fromiter((_int_or(a.get("correlation")) for a in args), np.int64, n),
            ext=np.fromiter((_int_or(a.get("External id")) for a in args), np.int64, n),
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
        col = {key: self._cat(key, np.int32 if key in ("name", "cat") else
                              np.float64 if key in ("ts", "dur") else np.int64) for key in self.parts}
        self.parts = {k: [] for k in self.parts}
        col["cat"] = recode[col["cat"]]
        damage = Damage(path)
        if len(col["ts"]):
            damage.totals = {cats[i]: int(n) for i, n in enumerate(np.bincount(col["cat"], minlength=len(cats))) if n}
            keep = check_times(damage, col["ts"], col["dur"], col["cat"], cats)
            damage.raise_if_fatal()
            if keep is not None:
                col = {k: v[keep] for k, v in col.items()}
            dup = duplicate_mask([col[k] for k in ("name", "cat", "ts", "dur", "pid", "tid", "dev", "stream",
                                                   "corr", "ext")])
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


def _drop_python_frames(content: bytes) -> tuple[list[bytes], int]:
    """Split `e1 B e2 B ... eN` (B = event boundary) and cut out non-module python frames.

    Each part is one event's text after its `{`; a JSON string holds no raw newline, so a part
    starting with `_PY_FRAME_START` is a python_function event, and its name starts with the
    bytes `nn.Module: ` exactly when the decoded name does (Kineto escapes only quotes,
    backslashes and control characters). Returns the kept parts (to be
    joined with B again; possibly none) and how many events were cut. Measured on the eager
    trace: split + test ~0.2 s, against ~0.35 s for decoding and building those rows.
    """
    parts = content.split(_EVENT_BOUNDARY)
    skip = len(_PY_FRAME_START)
    kept = [p for p in parts if not p.startswith(_PY_FRAME_START) or p.startswith(_MODULE_FRAME_BYTES, skip)]
    return kept, len(parts) - len(kept)


def _int_or(value: object, default: int = -1) -> int:
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


# --------------------------------------------------------------------------- parsers


def _decode_slice(builder: _ColumnBuilder, text: bytes) -> None:
    """Decode a `[...]` slice of events; odd value types go through the dict path."""
    try:
        builder.add_structs(_EVENTS_DECODER.decode(text))
    except msgspec.ValidationError:
        try:
            builder.add_dicts(orjson.loads(text))
        except orjson.JSONDecodeError as exc:
            raise _LayoutMismatch(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise _LayoutMismatch(str(exc)) from None


def _header(path: Path, blocks: Iterator[bytes]) -> tuple[bytes, bytes]:
    """The text up to and including `"traceEvents": [`, and the bytes read after it."""
    buf = b""
    match = None
    for block in blocks:
        buf += block
        match = _TRACE_EVENTS_KEY.search(buf)
        if match or len(buf) > _MAX_HEADER_BYTES:
            break
    if not buf.strip():
        raise TraceError(path, "empty file: no bytes to parse" if not buf else "empty file: only whitespace")
    if match is None:
        raise _LayoutMismatch("no traceEvents array found in the header")
    return buf[: match.end()], buf[match.end() :]


def _document(header: bytes, trailer: bytes) -> dict[str, Any]:
    try:
        doc = _DOC_DECODER.decode(header + b"]" + trailer)
    except msgspec.DecodeError as exc:
        raise _LayoutMismatch(str(exc)) from None
    if not isinstance(doc, dict) or doc.pop("traceEvents", None) != []:
        raise _LayoutMismatch("traceEvents is not a top-level key")
    return doc


def _parse_any_layout(path: Path, builder: _ColumnBuilder) -> dict[str, Any]:
    """Bounded-memory parse of any JSON layout (`any_layout`); returns the document without its events."""
    blocks = _iter_blocks(path)
    header, rest = _header(path, blocks)
    trailer = parse_events(blocks, rest, lambda text: _decode_slice(builder, text))
    return _document(header, trailer)


def _parse_streaming(path: Path, builder: _ColumnBuilder) -> dict[str, Any]:
    """Stream the events into `builder`; returns the document without its events."""
    blocks = _iter_blocks(path)
    header, buf = _header(path, blocks)
    first = True  # the first slice starts with "{"; later ones start inside an event

    def decode(data: bytes, stop: int) -> None:
        # data[:stop]: events up to (not including) the last one's closing "\n  }"; the first
        # slice starts with whitespace and "{", later ones right after a boundary's "{".
        # Work on what lies between the outer braces, copying the slice as little as we can.
        start = 0
        if first:
            start = _LEADING_SPACE.match(data).end()  # type: ignore[union-attr]
            if data[start : start + 1] != b"{":
                raise _LayoutMismatch("traceEvents does not start with an event object")
            start += 1
        if builder.keep_python_frames:
            _decode_slice(builder, b"".join((b"[{", memoryview(data)[start:stop], b"\n  }]")))
            return
        kept, dropped = _drop_python_frames(data[start:stop])
        builder.python_frames_dropped += dropped
        if kept:
            kept[0] = b"[{" + kept[0]
            kept[-1] += b"\n  }]"
            _decode_slice(builder, _EVENT_BOUNDARY.join(kept))

    while True:
        cut = buf.rfind(_EVENT_BOUNDARY)
        if cut >= 0:
            decode(buf, cut)
            first = False
            buf = buf[cut + len(_EVENT_BOUNDARY) :]
        elif len(buf) > _MAX_KINETO_PENDING:
            raise _LayoutMismatch(f"no Kineto event boundary in {len(buf) >> 20} MB")
        block = next(blocks, None)
        if block is None:
            break
        buf += block
    # What is left holds the last events, the array's closing bracket and the trailer.
    if first and buf.lstrip().startswith(b"]"):
        trailer = buf[buf.index(b"]") + 1 :]
    else:
        end = buf.find(_ARRAY_END)
        if end < 0:
            raise _LayoutMismatch("traceEvents array does not end as Kineto writes it")
        decode(buf, end)
        trailer = buf[end + len(_ARRAY_END) :]
    return _document(header, trailer)


def _json_error(path: Path, raw: bytes, exc: orjson.JSONDecodeError) -> TraceError:
    pos = getattr(exc, "pos", None)
    if "UTF-8" in exc.msg:  # orjson checks the encoding first and reports position 0: find the real one
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            line = raw.count(b"\n", 0, bad.start) + 1
            return TraceError(path, f"invalid UTF-8 at byte {bad.start} (line {line}) of the JSON text: {bad.reason}")
    where = ""
    if isinstance(pos, int):
        line = raw.count(b"\n", 0, pos) + 1
        where = f" at byte {pos} (line {line})"
        if pos >= len(raw.rstrip()):
            return TraceError(path, f"invalid JSON: the text ends early{where} — the file looks cut off")
    return TraceError(path, f"invalid JSON{where}: {exc.msg}")


def _parse_full(path: Path, builder: _ColumnBuilder, why_not_streamed: str = "parser='full' asked for") -> dict[str, Any]:
    raw = _read_all(path, why_not_streamed)
    if not raw.strip():
        raise TraceError(path, "empty file: no bytes to parse" if not raw else "empty file: only whitespace")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _json_error(path, raw, exc) from None
    del raw
    if not isinstance(doc, dict):
        raise NotATraceError(path, f"valid JSON but not a torch-profiler trace: the top level is a {type(doc).__name__}, not an object with 'traceEvents'")
    events = doc.pop("traceEvents", None)
    if not isinstance(events, list):
        keys = ", ".join(list(doc)[:8]) or "none"
        raise NotATraceError(path, f"valid JSON but not a torch-profiler trace: no 'traceEvents' list (top-level keys: {keys})")
    for start in range(0, len(events), 100_000):
        builder.add_dicts(events[start : start + 100_000])
    return doc


# --------------------------------------------------------------------------- metadata


def rank_from_name(name: str) -> int | None:
    """`rank<N>` in a vLLM trace file name (`rank3.<ns>.pt.trace.json.gz`, `x.rank3.pt...`)."""
    found = _RANK_IN_NAME.search(name)
    return int(found.group(1)) if found else None


def _metadata(path: Path, doc: dict[str, Any], rank: int, parser: str, damage: list[str],
              frames_dropped: int | None) -> TraceMetadata:
    dist = doc.get("distributedInfo") if isinstance(doc.get("distributedInfo"), dict) else {}
    props_list = doc.get("deviceProperties")
    props = props_list[0] if isinstance(props_list, list) and props_list and isinstance(props_list[0], dict) else {}
    cc = (
        f"{props['computeMajor']}.{props['computeMinor']}"
        if "computeMajor" in props and "computeMinor" in props
        else None
    )
    extra: dict[str, Any] = {"parser": parser}
    for key in ("trace_id", "schemaVersion", "displayTimeUnit", "host_name", "traceName"):
        if key in doc:
            extra[key] = doc[key]
    if dist.get("backend") is not None:
        extra["distributed_backend"] = dist.get("backend")
    if dist.get("nccl_version") is not None:
        extra["nccl_version"] = dist.get("nccl_version")
    if isinstance(props_list, list) and len(props_list) > 1:
        extra["device_count"] = len(props_list)
    if damage:
        extra[DAMAGE_KEY] = damage
    # None = python frames kept (keep_python_frames=True); else how many non-module frames went.
    if frames_dropped is not None:
        extra["python_frames_dropped"] = frames_dropped
    vllm_version = doc.get("vllm_version")
    return TraceMetadata(
        paths=[str(path)],
        profiler="torch",
        rank=rank,
        world_size=_int_or(dist.get("world_size"), 1),
        gpu_name=props.get("name") if isinstance(props.get("name"), str) else None,
        gpu_sm_count=_int_or(props.get("numSms"), -1) if "numSms" in props else None,
        gpu_memory_bytes=_int_or(props.get("totalGlobalMem"), -1) if "totalGlobalMem" in props else None,
        gpu_compute_capability=cc,
        cuda_driver_version=_int_or(doc.get("cuda_driver_version"), -1) if "cuda_driver_version" in doc else None,
        cuda_runtime_version=_int_or(doc.get("cuda_runtime_version"), -1) if "cuda_runtime_version" in doc else None,
        cupti_version=_int_or(doc.get("cupti_version"), -1) if "cupti_version" in doc else None,
        vllm_version=str(vllm_version) if vllm_version is not None else None,
        with_stack=bool(doc["with_stack"]) if "with_stack" in doc else None,
        base_time_ns=_int_or(doc.get("baseTimeNanoseconds"), -1) if "baseTimeNanoseconds" in doc else None,
        extra=extra,
    )


def _resolve_rank(path: Path, doc: dict[str, Any], rank: int | None) -> int:
    if rank is not None:
        return rank
    dist = doc.get("distributedInfo")
    if isinstance(dist, dict) and _int_or(dist.get("rank")) >= 0:
        return int(dist["rank"])
    from_name = rank_from_name(path.name)
    return from_name if from_name is not None else 0


# --------------------------------------------------------------------------- public API


def read_torch_trace(
    path: str | Path,
    rank: int | None = None,
    *,
    parser: ParserChoice = "auto",
    keep_python_frames: bool = False,
) -> Trace:
    """Read one torch-profiler trace into the normalized event table (see `events.py`).

    `rank` overrides the rank recorded in the trace (`distributedInfo`, else `rank<N>` in the
    file name, else 0). `parser`: "auto" streams Kineto-laid-out files, then any other JSON
    layout (`any_layout`), with bounded memory, and parses the whole document only when neither
    can (invalid JSON: to name the error; refused above FULL_PARSE_MAX_BYTES of JSON);
    "stream" / "any-layout" / "full" force one (tests, benchmarks). `keep_python_frames`: False (default) keeps `python_function` rows only for
    `nn.Module: ...` frames (all the analyses use) and records how many others were dropped in
    `metadata.extra["python_frames_dropped"]`; True keeps every Python stack frame. Raises `TraceError` naming the file for anything that is not a readable trace.
    """
    path = Path(path)
    problem = path_problem(path)
    if problem is not None:
        raise TraceError(path, problem)
    if not path.is_file():
        raise TraceError(path, "a directory, not a trace file (read folders with trace.read_trace_set)")
    if path.stat().st_size == 0:
        raise TraceError(path, "empty file: 0 bytes")
    # Event parsing allocates millions of short-lived objects and no cycles; the cyclic GC
    # would rescan them over and over (measured: ~25 % of read time).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        builder = _ColumnBuilder(keep_python_frames)
        used = parser
        if parser not in ("auto", "stream", "any-layout", "full"):
            raise ValueError(f"parser must be 'auto', 'stream', 'any-layout' or 'full', not {parser!r}")
        doc = None
        why = f"parser={parser!r} asked for"
        if parser in ("auto", "stream"):
            try:
                doc = _parse_streaming(path, builder)
                used = "stream"
            except _LayoutMismatch as exc:
                if parser == "stream":
                    raise TraceError(path, f"not in Kineto's layout, cannot stream it ({exc})") from None
                why = f"not Kineto's line layout: {exc}"
                builder = _ColumnBuilder(keep_python_frames)
        if doc is None and parser in ("auto", "any-layout"):
            try:
                doc = _parse_any_layout(path, builder)
                used = "any-layout"
            except _LayoutMismatch as exc:
                if parser == "any-layout":
                    raise TraceError(path, f"cannot stream this JSON layout ({exc})") from None
                why += f"; any layout: {exc}"
                builder = _ColumnBuilder(keep_python_frames)
        if doc is None:
            doc = _parse_full(path, builder, why)
            used = "full"
        trace_rank = _resolve_rank(path, doc, rank)
        table, damage = builder.table(trace_rank, path)
    finally:
        if gc_was_enabled:
            gc.enable()
    frames_dropped = None if keep_python_frames else builder.python_frames_dropped
    return Trace(events=table, metadata=_metadata(path, doc, trace_rank, used, damage, frames_dropped))
