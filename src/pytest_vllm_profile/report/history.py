"""The run history: one JSON line per run, so slow drifts below the tolerance become visible.

Each comparison only sees baseline vs now; a kernel that gets 0.5 % slower every week never
fails it. The history keeps, per run, the median step time of each step kind of every test,
and the report plots them over runs.

The file is append-only JSON Lines: a run is one `write` of one line, and a line that is cut
short or corrupted (a killed job, a bad merge of cached files) is skipped with a warning when
read, never a reason to drop or rewrite the file.
"""
from __future__ import annotations

import os
import warnings
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from ..codec import ModelDecodeError, decode_json, encode_json
from ..results import RunResults
from ..summary import STEP_KINDS, TimingDomain
from .tables import ReportInputError, median_step_us, summary_of, verdict_of

HISTORY_SCHEMA_VERSION = 1


class HistoryWarning(UserWarning):
    """A history line was skipped (corrupt or of an unknown layout); the file is left as is."""


class TestHistory(msgspec.Struct):
    __test__ = False  # a result type, not a pytest test class

    verdict: str  # a key of report.tables.VERDICT_LABELS
    median_step_us: dict[str, float] = msgspec.field(default_factory=dict)  # step kind -> median step time
    timing_domain: TimingDomain | None = None


class HistoryEntry(msgspec.Struct):
    date: str  # ISO 8601 UTC of the run (RunResults.created)
    commit: str | None = None
    gpu: str | None = None
    vllm_version: str | None = None
    tests: dict[str, TestHistory] = msgspec.field(default_factory=dict)
    schema: int = HISTORY_SCHEMA_VERSION


def entry_from_results(results: RunResults) -> HistoryEntry:
    """The history line of one run: per test its verdict and median step time per kind."""
    tests = {}
    for test in results.tests:
        current = summary_of(test)  # only the current summary: no baseline or comparison needed
        med: dict[str, float] = {k: v for k in STEP_KINDS if (v := median_step_us(current, k)) is not None}
        tests[test.nodeid] = TestHistory(verdict_of(test), med, current.timing_domain if current else None)
    date = results.created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return HistoryEntry(date=date, commit=results.commit, gpu=results.gpu,
                        vllm_version=results.vllm_version, tests=tests)


def append_run(path: str | Path, results: RunResults) -> HistoryEntry:
    """Append this run's line to the history file (created with its folder when missing)."""
    path = Path(path)
    entry = entry_from_results(results)
    line = encode_json(entry, indent=None, sort_keys=True, ensure_ascii=False) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as fh:
            # A previous writer killed mid-line left no newline: start ours on a line of its
            # own so only that fragment is skipped on read, not our line too.
            if fh.tell() > 0:
                with open(path, "rb") as rd:
                    rd.seek(-1, os.SEEK_END)
                    if rd.read(1) != b"\n":
                        fh.write(b"\n")
            fh.write(line.encode())
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot append to the history file: {exc}") from None
    return entry


def load(path: str | Path) -> list[HistoryEntry]:
    """Every readable run in the history file, oldest first; corrupt lines are skipped with a
    `HistoryWarning` naming the file and line. A missing file is an empty history."""
    path = Path(path)
    if not path.exists():
        return []
    if not path.is_file():
        raise ReportInputError(f"{path}: history path is not a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot read the history file: {exc}") from None
    entries = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(decode_json(line, HistoryEntry))
        except ModelDecodeError as exc:
            warnings.warn(f"{path}:{lineno}: skipped a corrupt history line ({exc})", HistoryWarning, stacklevel=2)
    return entries


def trend_series(entries: list[HistoryEntry], kind: str = "decode") -> dict[str, list[tuple[str, float]]]:
    """Test id -> [(run label, median `kind`-step µs)] over the runs that have that number."""
    out: dict[str, list[tuple[str, float]]] = {}
    for e in entries:
        label = e.date[:10] + (f" {e.commit[:7]}" if e.commit else "")
        for nodeid, t in e.tests.items():
            if kind in t.median_step_us:
                out.setdefault(nodeid, []).append((label, t.median_step_us[kind]))
    return out


def with_current_run(entries: list[HistoryEntry], results: RunResults) -> list[HistoryEntry]:
    """The history plus this run, unless its last line already is this run (appended before)."""
    current = entry_from_results(results)
    if entries and entries[-1].date == current.date and entries[-1].commit == current.commit:
        return entries
    return [*entries, current]
