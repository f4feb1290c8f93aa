"""The 0.1 JSON Lines history (one run per line) and its import into the database, once.

0.1 appended one JSON line per run (`HistoryEntry`) to a file; 0.2 keeps the history in a
database (history/store.py). `import_jsonl` turns each readable line into a run with its tests'
verdicts and median step times (the only metrics 0.1 kept: `step.<kind>.median_us`). A line's
import key is its date, commit and GPU, so importing the same file again (or a copy restored
from a CI cache) adds nothing. Corrupt lines are skipped with a `HistoryWarning`, as 0.1 did.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import msgspec

from ..codec import ModelDecodeError, decode_json
from ..summary import TimingDomain
from .store import HistoryError, HistoryStore, RunRecord

HISTORY_SCHEMA_VERSION = 1  # of the JSON Lines layout


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


def load_jsonl(path: str | Path) -> list[HistoryEntry]:
    """Every readable run of a JSON Lines history, oldest first (corrupt lines: HistoryWarning)."""
    path = Path(path)
    if not path.is_file():
        raise HistoryError(f"{path}: no such JSON Lines history file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HistoryError(f"{path}: cannot read the history file: {exc}") from None
    entries = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(decode_json(line, HistoryEntry))
        except ModelDecodeError as exc:
            warnings.warn(f"{path}:{lineno}: skipped a corrupt history line ({exc})", HistoryWarning, stacklevel=2)
    return entries


def import_jsonl(store: HistoryStore, path: str | Path) -> tuple[int, int]:
    """(runs imported, runs already there) from the JSON Lines history at `path`."""
    imported = present = 0
    for entry in load_jsonl(path):
        key = f"jsonl:{entry.date}:{entry.commit or ''}:{entry.gpu or ''}"
        if store.has_import(key):
            present += 1
            continue
        metrics = {
            nodeid: {f"step.{kind}.median_us": (us, "us") for kind, us in t.median_step_us.items()}
            for nodeid, t in entry.tests.items()
        }
        verdicts = {nodeid: t.verdict for nodeid, t in entry.tests.items()}
        run = RunRecord(0, entry.date, entry.commit, entry.vllm_version, entry.gpu, None)
        store.add_imported_run(run, metrics, verdicts, key)
        imported += 1
    return imported, present
