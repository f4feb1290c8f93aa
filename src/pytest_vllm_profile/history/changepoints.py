"""Change points in a metric's series over runs: E-divisive means with a permutation test.

The method of Matteson & James, "A Nonparametric Approach for Multiple Change Point Analysis
of Multivariate Data" (JASA 2014), as MongoDB's signal-processing-algorithms and Apache Otava
(formerly Hunter) apply it to performance histories: split the series where the energy
distance between the two sides, scaled by their sizes, is largest (Q-hat); keep the split only
when a permutation test says a split that large is unlikely in a series without one; repeat
inside each segment until no split is significant.

With alpha = 1 (the paper's default) and univariate data, for X = Z[s:t] and Y = Z[t:k]:

    E(X, Y) = 2/(m n) sum|X_i - Y_j| - 1/C(m,2) sum_{i<k}|X_i - X_k| - 1/C(n,2) sum_{i<k}|Y_i - Y_k|
    Q(t, k) = m n / (m + n) * E(X, Y)

The best split is searched over its place t and over the end k of its right side, Y = Z[t:k],
as the paper does (a change followed by a change back is seen). The permutation test
shuffles the values inside the segment being split and counts how often the best split of
the shuffled segment reaches the observed Q: p = (hits + 1) / (permutations + 1). The
shuffles come from one `numpy.random.Generator` seeded from `seed`, so the same series always
gives the same change points.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_PVALUE = 0.01  # MongoDB's default significance level
DEFAULT_PERMUTATIONS = 199  # smallest p-value (1 / 200) well under DEFAULT_PVALUE
DEFAULT_MIN_SIZE = 3  # runs on each side of a split: one run alone is noise, not a level
DEFAULT_SEED = 0


@dataclass(frozen=True)
class ChangePoint:
    index: int  # position in the series of the first value after the change
    qhat: float
    pvalue: float
    mean_before: float  # mean of the segment that ends at `index`
    mean_after: float  # mean of the segment that starts at `index`

    @property
    def relative_change(self) -> float | None:
        """(after - before) / before; None when the level before is 0."""
        return None if self.mean_before == 0 else (self.mean_after - self.mean_before) / abs(self.mean_before)


def _prefix(values: np.ndarray) -> np.ndarray:
    """c[a, b] = sum of |Z_i - Z_j| over i < a, j < b: any block of the distance matrix in O(1)."""
    n = len(values)
    c = np.zeros((n + 1, n + 1))
    c[1:, 1:] = np.abs(values[:, None] - values[None, :]).cumsum(0).cumsum(1)
    return c


def _qhat(c: np.ndarray, t: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Q of X = Z[:t] against Y = Z[t:k], element-wise over the arrays t and k."""
    m = t.astype(float)
    n = (k - t).astype(float)
    within_left = c[t, t] / 2.0
    within_right = (c[k, k] - c[t, k] - c[k, t] + c[t, t]) / 2.0
    between = c[t, k] - c[t, t]
    e = 2.0 * between / (m * n) - within_left / (m * (m - 1) / 2.0) - within_right / (n * (n - 1) / 2.0)
    return m * n / (m + n) * e


def _qhat_all(values: np.ndarray, min_size: int) -> np.ndarray:
    """Q(t) with Y running to the end, for every split t (index t: first value of the right
    side); -inf where a side would be shorter than `min_size`."""
    n = len(values)
    q = np.full(n, -np.inf)
    if n < 2 * min_size:
        return q
    t = np.arange(min_size, n - min_size + 1)
    q[t] = _qhat(_prefix(values), t, np.full_like(t, n))
    return q


def _best_split(values: np.ndarray, min_size: int) -> tuple[int, float]:
    """The split t maximizing Q(t, k) over the split and the end k of the right side (the
    paper's search: the right side need not run to the end, so a change followed by another
    one back is still seen); (t, -inf) when the segment is too short."""
    n = len(values)
    if n < 2 * min_size:
        return 0, -np.inf
    t, k = np.meshgrid(np.arange(min_size, n - min_size + 1), np.arange(2 * min_size, n + 1), indexing="ij")
    valid = k - t >= min_size
    q = np.where(valid, _qhat(_prefix(values), t, np.where(valid, k, n)), -np.inf)
    i = int(np.argmax(q))
    return int(t.flat[i]), float(q.flat[i])


def e_divisive(
    series: Sequence[float],
    *,
    pvalue: float = DEFAULT_PVALUE,
    permutations: int = DEFAULT_PERMUTATIONS,
    min_size: int = DEFAULT_MIN_SIZE,
    seed: int = DEFAULT_SEED,
) -> list[ChangePoint]:
    """The significant change points of `series`, in series order.

    Each round splits the segment (of those the found points make) whose best split has the
    largest Q, if its permutation p-value is <= `pvalue`; otherwise the search stops. A series
    shorter than 2 * `min_size` has none. ValueError for non-finite values or bad parameters.
    """
    if min_size < 2:
        raise ValueError(f"min_size={min_size}: each side needs at least 2 values for its spread")
    if permutations < 1 or not 0 < pvalue < 1:
        raise ValueError(f"permutations={permutations}, pvalue={pvalue}: need permutations >= 1 and 0 < pvalue < 1")
    z = np.asarray(series, dtype=float)
    if z.ndim != 1 or not np.all(np.isfinite(z)):
        raise ValueError("the series must be one-dimensional and finite (no NaN/inf)")
    rng = np.random.default_rng(seed)
    cuts = [0, len(z)]
    found: list[tuple[int, float, float]] = []  # (index, qhat, p)
    while True:
        best: tuple[float, int, int, int] | None = None  # (q, split, seg start, seg end)
        for start, end in itertools.pairwise(cuts):
            if end - start < 2 * min_size:
                continue
            t, q = _best_split(z[start:end], min_size)
            if np.isfinite(q) and (best is None or q > best[0]):
                best = (q, start + t, start, end)
        if best is None:
            break
        q_obs, split, start, end = best
        segment = z[start:end].copy()
        # Past this many hits p > pvalue whatever the remaining shuffles give: stop early (a
        # series without a change costs a few shuffles, not all of them).
        allowed = int(pvalue * (permutations + 1) + 1e-9) - 1
        hits = 0
        for _ in range(permutations):
            rng.shuffle(segment)
            if _best_split(segment, min_size)[1] >= q_obs:
                hits += 1
                if hits > allowed:
                    break
        if hits > allowed:
            break
        p = (hits + 1) / (permutations + 1)
        found.append((split, q_obs, p))
        cuts = sorted([*cuts, split])
    points = []
    for split, q, p in sorted(found):
        i = cuts.index(split)
        before, after = z[cuts[i - 1] : split], z[split : cuts[i + 1]]
        points.append(ChangePoint(split, q, p, float(before.mean()), float(after.mean())))
    return points
