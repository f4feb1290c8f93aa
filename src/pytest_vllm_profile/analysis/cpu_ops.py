"""Non-overlapping CPU op time: top-level ops and self time.

`cpu_op` events nest (`aten::linear` contains `aten::addmm` contains ...): summing all of
them counts the same microseconds several times. Two exact ways out, used here:
- top-level ops (not inside another cpu_op of the same thread): their durations add up to
  the thread's op time with nothing counted twice — used for step and layer times;
- self time (duration minus the direct children's durations): splits that same total
  among op names — used for per-op statistics. The self times of all ops sum to the
  top-level total.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _thread_order(ops: pd.DataFrame) -> np.ndarray:
    """Row order by thread, start ascending, longer first (a parent sorts before its child)."""
    return np.lexsort(
        (-ops["dur_us"].to_numpy(), ops["start_us"].to_numpy(), ops["tid"].to_numpy(), ops["pid"].to_numpy())
    )


def top_level_mask(ops: pd.DataFrame) -> np.ndarray:
    """True for ops that lie inside no other op of their thread (vectorized)."""
    if ops.empty:
        return np.zeros(0, dtype=bool)
    order = _thread_order(ops)
    start = ops["start_us"].to_numpy()[order]
    end = ops["end_us"].to_numpy()[order]
    thread = ops["pid"].to_numpy()[order] * 1_000_003 + ops["tid"].to_numpy()[order]
    new_thread = np.ones(len(order), dtype=bool)
    new_thread[1:] = thread[1:] != thread[:-1]
    # running max of previous ends within the thread: an op starting before it is nested
    seg = np.cumsum(new_thread) - 1
    prev_end = np.full(len(order), -np.inf)
    prev_end[1:] = end[:-1]
    prev_end[new_thread] = -np.inf
    frame = pd.DataFrame({"seg": seg, "prev": prev_end})
    running = frame.groupby("seg")["prev"].cummax().to_numpy()
    top_sorted = start >= running
    out = np.empty(len(order), dtype=bool)
    out[order] = top_sorted
    return out


def self_times(ops: pd.DataFrame) -> np.ndarray:
    """Each op's duration minus its direct children's (same thread), in the table's row order.

    One pass with a stack per thread; the work is O(n) on plain Python floats and only runs
    on cpu_op rows of CPU-only traces.
    """
    n = len(ops)
    if n == 0:
        return np.zeros(0)
    order = _thread_order(ops)
    start = ops["start_us"].to_numpy()[order].tolist()
    end = ops["end_us"].to_numpy()[order].tolist()
    dur = ops["dur_us"].to_numpy()[order].tolist()
    thread = (ops["pid"].to_numpy()[order] * 1_000_003 + ops["tid"].to_numpy()[order]).tolist()
    child = [0.0] * n
    stack: list[int] = []
    last_thread = None
    for i in range(n):
        if thread[i] != last_thread:
            stack.clear()
            last_thread = thread[i]
        while stack and start[i] >= end[stack[-1]]:
            stack.pop()
        if stack:
            child[stack[-1]] += dur[i]
        stack.append(i)
    result_sorted = np.maximum(np.asarray(dur) - np.asarray(child), 0.0)
    out = np.empty(n)
    out[order] = result_sorted
    return out
