"""Which interval holds a point: the lookup step and layer detection both make over time ranges."""

from __future__ import annotations

import numpy as np


def enclosing(starts: np.ndarray, ends: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Position of the interval [starts[i], ends[i]] holding each point, or -1 when none does.

    `starts` must be sorted and the intervals must not overlap (steps of a profile, modules of
    one thread), so the last interval starting at or before a point is its only candidate.
    """
    pos = np.searchsorted(starts, points, side="right") - 1
    inside = pos >= 0
    inside[inside] = points[inside] <= ends[pos[inside]]
    return np.where(inside, pos, -1)
