"""The run history: every run's per-test metrics in a database (SQLite file or PostgreSQL URL),
and change-point detection over each metric's series (docs/history.md).

No pytest imports; the plugin appends each run (plugin/reporting.py), `vllm-profile history`
lists series and change points (cli/history.py), the HTML report plots them (report/history.py).
"""

from __future__ import annotations

from .changepoints import ChangePoint, e_divisive
from .gate import SeriesChange, current_slowdowns, detect, metric_label
from .legacy import HistoryEntry, HistoryWarning, TestHistory, import_jsonl, load_jsonl
from .store import SCHEMA_VERSION, HistoryError, HistoryStore, RunRecord, Series, is_postgres, open_history, runner_name

__all__ = [
    "SCHEMA_VERSION",
    "ChangePoint",
    "HistoryEntry",
    "HistoryError",
    "HistoryStore",
    "HistoryWarning",
    "RunRecord",
    "Series",
    "SeriesChange",
    "TestHistory",
    "current_slowdowns",
    "detect",
    "e_divisive",
    "import_jsonl",
    "is_postgres",
    "load_jsonl",
    "metric_label",
    "open_history",
    "runner_name",
]
