"""At session end: append the run to the history database (--vllm-history; the controller only
under xdist), then look for change points in the series of this run's tests, for the terminal
section. A history that cannot be written is a warning, never a failed session."""

from __future__ import annotations

import warnings

from ..history import HistoryError, SeriesChange, detect, open_history
from ..history.gate import DEFAULT_GATE_WINDOW
from ..results import RunResults
from .state import SessionState

MAX_NOTES = 10  # terminal lines about change points; the rest: `vllm-profile history`
# Runs of each series searched at session end: E-divisive costs O(runs^2) per shuffle, and a
# change among the newest runs is what this run's terminal section is about (200 runs: ~3 s
# for a series with a change on one core; `vllm-profile history` searches them all).
SESSION_END_RUNS = 100


def _recent(changes: list[SeriesChange], window: int) -> list[SeriesChange]:
    recent = [c for c in changes if c.point.index >= len(c.series.values) - window]
    return sorted(recent, key=lambda c: (not c.is_slowdown, -abs(c.point.relative_change or 0.0)))


def append_and_check(state: SessionState, results: RunResults) -> None:
    """Record `results` in the session's history and keep notes on recent change points."""
    location = state.settings.history
    if location is None or not results.tests:
        return
    nodeids = {t.nodeid for t in results.tests}
    try:
        with open_history(location) as store:
            run_id = store.append_run(results)
            series = [s.tail(SESSION_END_RUNS) for s in store.series(gpu=results.gpu) if s.nodeid in nodeids]
            where = store.location
    except HistoryError as exc:
        warnings.warn(f"pytest-vllm-profile: run not added to the history: {exc}", stacklevel=1)
        return
    state.history_notes.append(f"history: run {run_id} added to {where}")
    recent = _recent(detect(series), DEFAULT_GATE_WINDOW)
    for c in recent[:MAX_NOTES]:
        mark = "SLOWDOWN " if c.is_slowdown else ""
        state.history_notes.append(f"  {mark}{c.series.nodeid}: {c.describe()}")
    if len(recent) > MAX_NOTES:
        state.history_notes.append(f"  ... {len(recent) - MAX_NOTES} more: vllm-profile history --history={where}")
