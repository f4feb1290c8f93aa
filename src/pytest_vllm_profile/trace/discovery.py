"""Find and read what one vLLM profile session wrote: a file, or the folder of traces.

vLLM's torch profiler writes, per profile session, into its trace directory:
- one trace per engine rank: `rank<N>.<ns>.pt.trace.json.gz` (or `<prefix>.rank<N>.pt.trace.json.gz`),
  where `<ns>` is the time the file was written (nanoseconds since the epoch);
- the API server's CPU-only trace: `<...>.async_llm.<...>.pt.trace.json.gz`;
- key-averages tables: `profiler_out_<N>.txt` / `<...>.profiler_out<...>.txt`.
A folder used for several profiles holds several files per rank. We never merge two sessions
of one rank: `session="latest"` takes each rank's newest file (by `<ns>`, else by mtime) and
records the files left out in `TraceSet.ranks[r].metadata.extra["older_sessions_skipped"]`;
`session="only"` refuses a folder holding more than one session. When the choice rests on
mtime (names without `<ns>`), the rule and the files left out are stated in a note
(`metadata.extra[READER_NOTES_KEY]`, copied into the summary's notes).
A `.json` in the folder that is not a torch-profiler trace at all (no `traceEvents`) is skipped
with a note when another file is a trace; a damaged trace is never skipped.
Nsight Systems exports (`.sqlite`) go to `nsys_reader.read_nsys_sqlite`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import TraceError
from ..events import Trace, TraceSet
from .nsys_reader import read_nsys_trace_set
from .torch_reader import NotATraceError, rank_from_name, read_torch_trace
from .validation import path_problem

SessionChoice = Literal["latest", "only"]

_TORCH_SUFFIXES = (".json", ".json.gz")
_NS_IN_NAME = re.compile(r"(?:^|\.)(\d{13,})(?=\.)")
_PROFILER_TABLE = re.compile(r"(?:^|\.)profiler_out[^/]*\.txt$")
_API_SERVER_HINT = "the async_llm trace holds only the API server's CPU events"
READER_NOTES_KEY = "reader_notes"  # metadata.extra: what discovery skipped or chose, in words


@dataclass(frozen=True)
class TraceFile:
    """One trace file found in a profile folder, with what its name says."""

    path: Path
    rank: int | None  # from `rank<N>` in the name; None when the name does not say
    written_ns: int | None  # from `.<ns>.` in the name; None when the name does not say
    is_api_server: bool

    def sort_key(self) -> int:
        # Names carry the write time; otherwise the file's mtime is the best we know.
        return self.written_ns if self.written_ns is not None else self.path.stat().st_mtime_ns


def is_torch_trace_name(name: str) -> bool:
    return name.endswith(_TORCH_SUFFIXES)


def classify(path: Path) -> TraceFile:
    name = path.name
    ns = _NS_IN_NAME.search(name)
    return TraceFile(
        path=path,
        rank=rank_from_name(name),
        written_ns=int(ns.group(1)) if ns else None,
        is_api_server="async_llm" in name,
    )


def _pick_newest(
    rank: int, files: list[TraceFile], session: SessionChoice, root: Path
) -> tuple[TraceFile, list[TraceFile]]:
    if len(files) == 1:
        return files[0], []
    listed = ", ".join(sorted(f.path.name for f in files))
    if session == "only":
        raise TraceError(
            root,
            f"{len(files)} profile sessions for rank {rank} ({listed}); pass session='latest' or point at one file",
        )
    ordered = sorted(files, key=TraceFile.sort_key)
    if ordered[-1].sort_key() == ordered[-2].sort_key():
        raise TraceError(
            root,
            f"several traces for rank {rank} ({listed}) and no way to tell which is newest "
            "(no <ns> timestamp in the names, same mtime); point at one file",
        )
    return ordered[-1], ordered[:-1]


def read_trace_set(
    path: str | Path, session: SessionChoice = "latest", *, keep_python_frames: bool = False
) -> TraceSet:
    """Read one profile session: a single trace file, or the folder vLLM wrote traces into.

    `keep_python_frames` is passed to `read_torch_trace`: by default only the `nn.Module: ...`
    Python stack frames are kept (what the analyses use); True keeps every `python_function` row.

    Raises `TraceError` naming the path when nothing readable is there, when the folder holds
    only the API server's trace, or (with `session="only"`) when it holds several sessions.
    """
    if session not in ("latest", "only"):
        raise ValueError(f"session must be 'latest' or 'only', not {session!r}")
    root = Path(path)
    problem = path_problem(root)
    if problem is not None:
        raise TraceError(root, problem)
    if root.is_file():
        return _read_single_file(root, keep_python_frames)
    try:
        files = sorted(p for p in root.iterdir() if p.is_file())
    except OSError as exc:
        raise TraceError(root, f"cannot list the folder: {exc.strerror or exc}") from None
    torch_files = [classify(p) for p in files if is_torch_trace_name(p.name)]
    tables = [p for p in files if _PROFILER_TABLE.search(p.name)]
    sqlite = [p for p in files if p.suffix == ".sqlite"]
    if not torch_files:
        if len(sqlite) == 1:
            return read_nsys_trace_set(sqlite[0])
        if len(sqlite) > 1:
            listed = ", ".join(p.name for p in sqlite)
            raise TraceError(root, f"several Nsight Systems exports ({listed}); point at one")
        if not files:
            raise TraceError(root, "empty directory: no trace files")
        shown = ", ".join(p.name for p in files[:5]) + (" ..." if len(files) > 5 else "")
        raise TraceError(root, f"no torch-profiler trace (*.json / *.json.gz) or .sqlite export here (found: {shown})")

    api_files = [f for f in torch_files if f.is_api_server]
    engine_files = [f for f in torch_files if not f.is_api_server]
    if not engine_files:
        listed = ", ".join(f.path.name for f in api_files)
        raise TraceError(root, f"no engine-rank trace; {_API_SERVER_HINT} ({listed})")

    # Files whose names carry no rank say it inside (distributedInfo); read them to know.
    traces: dict[int, list[tuple[TraceFile, Trace | None]]] = {}
    not_traces: list[NotATraceError] = []
    for f in engine_files:
        if f.rank is not None:
            traces.setdefault(f.rank, []).append((f, None))
            continue
        try:
            trace = read_torch_trace(f.path, keep_python_frames=keep_python_frames)
        except NotATraceError as exc:  # an unrelated .json beside the traces: skipped, and said so below
            not_traces.append(exc)
            continue
        traces.setdefault(trace.metadata.rank, []).append((f, trace))
    if not traces:
        raise not_traces[0]
    skipped_notes = [f"skipped {exc.path}: {exc.problem}" for exc in not_traces]

    ranks: dict[int, Trace] = {}
    for rank in sorted(traces):
        entries = traces[rank]
        chosen, skipped = _pick_newest(rank, [f for f, _ in entries], session, root)
        trace = next(t for f, t in entries if f is chosen) or read_torch_trace(
            chosen.path, rank=rank, keep_python_frames=keep_python_frames
        )
        notes = list(skipped_notes)
        if skipped:
            trace.metadata.extra["older_sessions_skipped"] = [str(f.path) for f in skipped]
            by = (
                "the <ns> write time in the names"
                if chosen.written_ns is not None
                else "file mtime (the names carry no <ns> write time)"
            )
            notes.append(
                f"{len(skipped) + 1} traces for rank {rank} in {root}; read the newest by {by}: "
                f"{chosen.path.name}; not read: {', '.join(f.path.name for f in skipped)}"
            )
        if notes:
            trace.metadata.extra.setdefault(READER_NOTES_KEY, []).extend(notes)
        ranks[rank] = trace

    api_server = None
    if api_files:
        newest_api, _ = _pick_newest(-1, api_files, "latest", root)
        api_server = read_torch_trace(newest_api.path, keep_python_frames=keep_python_frames)
    return TraceSet(ranks=ranks, api_server=api_server, profiler_tables=tables, root=root)


def _read_single_file(path: Path, keep_python_frames: bool = False) -> TraceSet:
    name = path.name
    if path.suffix == ".sqlite":
        return read_nsys_trace_set(path)
    if name.endswith(".nsys-rep"):
        raise TraceError(
            path, "an Nsight Systems report: export it first (`nsys export --type sqlite`) and pass the .sqlite"
        )
    if not is_torch_trace_name(name):
        raise TraceError(
            path, "not a trace file: expected *.json, *.json.gz (torch profiler) or *.sqlite (Nsight Systems)"
        )
    if classify(path).is_api_server:
        raise TraceError(path, f"no engine-rank trace; {_API_SERVER_HINT}")
    trace = read_torch_trace(path, rank=rank_from_name(name), keep_python_frames=keep_python_frames)
    return TraceSet(ranks={trace.metadata.rank: trace}, root=path.parent)
