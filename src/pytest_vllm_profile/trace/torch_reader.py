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
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgspec
import orjson

from ..errors import TraceError
from ..events import Trace, TraceMetadata
from ..summary import DeviceInfo, RuntimeInfo
from .any_layout import LayoutMismatch, parse_events
from .byte_source import iter_blocks
from .kineto_columns import MODULE_FRAME_PREFIX, ColumnBuilder, decode_slice, int_or
from .validation import DAMAGE_KEY, path_problem

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

# How Kineto starts every python_function event, right after the `{` of the event: the
# streaming parser drops non-module frames by this prefix before decoding them.
_PY_FRAME_START = b'\n    "ph": "X", "cat": "python_function", "name": "'
_MODULE_FRAME_BYTES = MODULE_FRAME_PREFIX.encode()
_LEADING_SPACE = re.compile(rb"[\n ]*")

_DOC_DECODER = msgspec.json.Decoder()


class NotATraceError(TraceError):
    """The file is not a torch-profiler trace at all (not JSON, or JSON without `traceEvents`)."""


_LayoutMismatch = LayoutMismatch  # the streaming parsers met something they do not handle


def _read_all(path: Path, why_not_streamed: str) -> bytes:
    """The whole decompressed text; refused above FULL_PARSE_MAX_BYTES (memory would not be bounded)."""
    parts, size = [], 0
    for block in iter_blocks(path, _BLOCK_BYTES):
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


# --------------------------------------------------------------------------- parsers


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


def _parse_any_layout(path: Path, builder: ColumnBuilder) -> dict[str, Any]:
    """Bounded-memory parse of any JSON layout (`any_layout`); returns the document without its events."""
    blocks = iter_blocks(path, _BLOCK_BYTES)
    header, rest = _header(path, blocks)
    trailer = parse_events(blocks, rest, lambda text: decode_slice(builder, text))
    return _document(header, trailer)


def _parse_streaming(path: Path, builder: ColumnBuilder) -> dict[str, Any]:
    """Stream the events into `builder`; returns the document without its events."""
    blocks = iter_blocks(path, _BLOCK_BYTES)
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
            decode_slice(builder, b"".join((b"[{", memoryview(data)[start:stop], b"\n  }]")))
            return
        kept, dropped = _drop_python_frames(data[start:stop])
        builder.python_frames_dropped += dropped
        if kept:
            kept[0] = b"[{" + kept[0]
            kept[-1] += b"\n  }]"
            decode_slice(builder, _EVENT_BOUNDARY.join(kept))

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
    hint = ""
    if isinstance(pos, int) and raw[pos : pos + 9].lstrip(b"-").startswith((b"NaN", b"Infinity")):
        hint = " (NaN / Infinity, as Python's json writes non-finite floats, are not valid JSON)"
    return TraceError(path, f"invalid JSON{where}: {exc.msg}{hint}")


def _parse_full(
    path: Path, builder: ColumnBuilder, why_not_streamed: str = "parser='full' asked for"
) -> dict[str, Any]:
    raw = _read_all(path, why_not_streamed)
    if not raw.strip():
        raise TraceError(path, "empty file: no bytes to parse" if not raw else "empty file: only whitespace")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _json_error(path, raw, exc) from None
    del raw
    if not isinstance(doc, dict):
        raise NotATraceError(
            path,
            f"valid JSON but not a torch-profiler trace: the top level is a "
            f"{type(doc).__name__}, not an object with 'traceEvents'",
        )
    events = doc.pop("traceEvents", None)
    if not isinstance(events, list):
        keys = ", ".join(list(doc)[:8]) or "none"
        raise NotATraceError(
            path, f"valid JSON but not a torch-profiler trace: no 'traceEvents' list (top-level keys: {keys})"
        )
    for start in range(0, len(events), 100_000):
        builder.add_dicts(events[start : start + 100_000])
    return doc


# --------------------------------------------------------------------------- metadata


def rank_from_name(name: str) -> int | None:
    """`rank<N>` in a vLLM trace file name (`rank3.<ns>.pt.trace.json.gz`, `x.rank3.pt...`)."""
    found = _RANK_IN_NAME.search(name)
    return int(found.group(1)) if found else None


def _metadata(
    path: Path, doc: dict[str, Any], rank: int, parser: str, damage: list[str], frames_dropped: int | None
) -> TraceMetadata:
    dist_info = doc.get("distributedInfo")
    dist: dict[str, Any] = dist_info if isinstance(dist_info, dict) else {}
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
    runtime_version = int_or(doc.get("cuda_runtime_version"), -1) if "cuda_runtime_version" in doc else None
    return TraceMetadata(
        paths=[str(path)],
        runtime=RuntimeInfo(
            profiler="torch",
            cuda_driver_version=int_or(doc.get("cuda_driver_version"), -1) if "cuda_driver_version" in doc else None,
            cuda_runtime_version=runtime_version,
            cupti_version=int_or(doc.get("cupti_version"), -1) if "cupti_version" in doc else None,
            vllm_version=str(vllm_version) if vllm_version is not None else None,
        ),
        device=DeviceInfo(
            name=props.get("name") if isinstance(props.get("name"), str) else None,
            sm_count=int_or(props.get("numSms"), -1) if "numSms" in props else None,
            memory_bytes=int_or(props.get("totalGlobalMem"), -1) if "totalGlobalMem" in props else None,
            compute_capability=cc,
        ),
        rank=rank,
        world_size=int_or(dist.get("world_size"), 1),
        with_stack=bool(doc["with_stack"]) if "with_stack" in doc else None,
        base_time_ns=int_or(doc.get("baseTimeNanoseconds"), -1) if "baseTimeNanoseconds" in doc else None,
        extra=extra,
    )


def _resolve_rank(path: Path, doc: dict[str, Any], rank: int | None) -> int:
    if rank is not None:
        return rank
    dist = doc.get("distributedInfo")
    if isinstance(dist, dict) and int_or(dist.get("rank")) >= 0:
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
    "stream" / "any-layout" / "full" force one (tests, benchmarks). `keep_python_frames`: False
    (default) keeps `python_function` rows only for `nn.Module: ...` frames (all the analyses
    use) and records how many others were dropped in `metadata.extra["python_frames_dropped"]`;
    True keeps every Python stack frame. Bad values and duplicate events are dropped with a note
    in `metadata.extra["damage"]`, or refused (`trace.validation`). Raises `TraceError` naming
    the file for anything that is not a readable trace.
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
        builder = ColumnBuilder(keep_python_frames)
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
                builder = ColumnBuilder(keep_python_frames)
        if doc is None and parser in ("auto", "any-layout"):
            try:
                doc = _parse_any_layout(path, builder)
                used = "any-layout"
            except _LayoutMismatch as exc:
                if parser == "any-layout":
                    raise TraceError(path, f"cannot stream this JSON layout ({exc})") from None
                why += f"; any layout: {exc}"
                builder = ColumnBuilder(keep_python_frames)
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
