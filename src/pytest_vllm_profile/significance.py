"""Decide from samples, with a stated error rate, whether a time metric moved.

A metric's samples are the per-step times of every repeat (one sample per step of a kind, a
group per repeat) or the per-request latencies of the timed pass (one group). The rule:

* effect estimate: the Hodges-Lehmann shift, median of all pairwise differences candidate -
  baseline, relative to the baseline median (robust to the odd slow step a CPU run has);
* its interval: a percentile bootstrap at confidence 1 - alpha, two-level when a side has
  several repeats (repeats resampled first, then steps within each), so the run-to-run
  noise of a CPU runner widens the interval while a GPU's stays tight: nothing hand-set;
* significance: the interval excludes 0 AND the Mann-Whitney U test (scipy.stats, as
  asv and Google Benchmark's compare.py use) rejects "no shift" at alpha;
* big enough to matter: |estimate| >= the threshold: the rule's minimum effect, or
  noise_multiplier x the step-to-step noise the samples show (what tells a CPU runner, ~7 %,
  from an H100, ~0.1 %), or the metric's absolute floor, whichever is largest.

A regression needs all of it. Fewer than `min_samples` samples on a side is its own outcome,
"too-few-samples", which the comparison reports (and judges by the fixed tolerance instead).
The bootstrap draws from a generator seeded by the rule's `seed`: the same inputs always give
the same verdict. Defaults: benchmarks/bench_calibration.py and benchmarks/RESULTS.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Outcome = Literal["regression", "improvement", "no-change", "too-few-samples"]

# Defaults chosen from the calibration curve (benchmarks/RESULTS.md, "Decision rule defaults").
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_EFFECT = 0.01  # 1 %: above the 0.2-0.3 % shifts between same-config H100 runs
DEFAULT_RESAMPLES = 400
DEFAULT_SEED = 0
# Two-sided Mann-Whitney U cannot reach p < 0.01 with fewer than 5 samples a side (5 vs 5: p >= 0.008).
DEFAULT_MIN_SAMPLES = 5
DEFAULT_NOISE_MULTIPLIER = 4.0


class RepeatSamples(tuple[float, ...]):
    """A flat sequence of samples that remembers which repeat each came from.

    Passes anywhere a `Sequence[float]` goes (e.g. `MetricJudge.time(baseline_samples=...)`);
    `groups` gives back the per-repeat lists for the two-level bootstrap.
    """

    lengths: tuple[int, ...]

    def __new__(cls, groups: Sequence[Sequence[float]]) -> RepeatSamples:
        flat = [float(v) for group in groups for v in group]
        out = super().__new__(cls, flat)
        out.lengths = tuple(len(g) for g in groups if len(g))
        return out

    @property
    def groups(self) -> list[list[float]]:
        out, start = [], 0
        for n in self.lengths:
            out.append(list(self[start : start + n]))
            start += n
        return out


def groups_of(samples: Sequence[float]) -> list[list[float]]:
    """Per-repeat groups of `samples` (one group unless it is a `RepeatSamples`)."""
    if isinstance(samples, RepeatSamples):
        return samples.groups
    return [[float(v) for v in samples]] if len(samples) else []


def relative_noise(samples: Sequence[float]) -> float:
    """Step-to-step noise of a sample set: 1.4826 x MAD / median within each repeat (a normal's
    sigma, robust to an odd slow step), the largest over the repeats; 0 for fewer than 2 samples."""
    worst = 0.0
    for group in groups_of(samples):
        values = np.asarray(group, dtype=float)
        mid = float(np.median(values)) if len(values) > 1 else 0.0
        if mid > 0:
            worst = max(worst, 1.4826 * float(np.median(np.abs(values - mid))) / mid)
    return worst


@dataclass(frozen=True)
class DecisionRule:
    """The statistical rule's settings (see the module doc)."""

    alpha: float = DEFAULT_ALPHA
    min_effect: float = DEFAULT_MIN_EFFECT  # relative, 0.01 = 1 %
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    min_samples: int = DEFAULT_MIN_SAMPLES
    # The threshold is also at least noise_multiplier x the step-to-step noise the samples show
    # (relative_noise): between unchanged CPU runs the level moved by up to 3.7 sigma of that noise
    # (benchmarks/RESULTS.md); on an H100 4 sigma is <= 0.5 %, below min_effect: it changes nothing there.
    noise_multiplier: float = DEFAULT_NOISE_MULTIPLIER

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"decision rule alpha={self.alpha!r} must be between 0 and 1")
        if self.min_effect < 0:
            raise ValueError(f"decision rule min_effect={self.min_effect!r} must be >= 0")
        if self.resamples < 50:
            raise ValueError(f"decision rule resamples={self.resamples!r} must be >= 50")
        if self.min_samples < 2:
            raise ValueError(f"decision rule min_samples={self.min_samples!r} must be >= 2")


@dataclass(frozen=True)
class SampleDecision:
    """What the rule concluded about one metric; relative numbers (0.02 = +2 %)."""

    outcome: Outcome
    estimate: float | None  # Hodges-Lehmann shift / baseline median
    low: float | None  # interval at confidence 1 - alpha
    high: float | None
    threshold: float  # the smallest |estimate| that counts
    p_value: float | None  # two-sided Mann-Whitney U
    baseline_n: int
    candidate_n: int
    baseline_repeats: int
    candidate_repeats: int

    def interval_words(self) -> str:
        if self.estimate is None or self.low is None or self.high is None:
            return f"{self.baseline_n} vs {self.candidate_n} samples"
        return (
            f"shift {100 * self.estimate:+.2f}% [{100 * self.low:+.2f}%, {100 * self.high:+.2f}%], "
            f"threshold ±{100 * self.threshold:.2f}%, p={self.p_value:.2g}, "
            f"{self.baseline_n} vs {self.candidate_n} samples"
        )


def hodges_lehmann(baseline: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Median of the pairwise differences candidate - baseline, over the last axis (batched)."""
    diffs = candidate[..., None, :] - baseline[..., :, None]
    return np.median(diffs.reshape(*diffs.shape[:-2], -1), axis=-1)


def _bootstrap_draws(groups: list[np.ndarray], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n) draws: repeats resampled with replacement, then samples within each.

    Slot r of a draw takes len(groups[r]) samples from the repeat drawn for it, so every draw
    has the side's sample count.
    """
    flat = np.concatenate(groups)
    lengths = np.array([len(g) for g in groups])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    slot_of_sample = np.repeat(np.arange(len(groups)), lengths)  # which slot each position belongs to
    if len(groups) > 1:
        chosen = rng.integers(0, len(groups), size=(resamples, len(groups)))
    else:
        chosen = np.zeros((resamples, 1), dtype=np.int64)
    chosen_per_position = chosen[:, slot_of_sample]  # (resamples, n)
    u = rng.random((resamples, len(flat)))
    index = offsets[chosen_per_position] + (u * lengths[chosen_per_position]).astype(np.int64)
    return flat[index]


def compare_samples(
    baseline: Sequence[float], candidate: Sequence[float], rule: DecisionRule | None = None, floor: float = 0.0
) -> SampleDecision:
    """Apply the rule to two sample sets (`RepeatSamples` keep their repeats); `floor` is an absolute
    threshold in the samples' unit (e.g. µs jitter), used when larger than min_effect x baseline median."""
    rule = rule or DecisionRule()
    b_groups = [np.asarray(g, dtype=float) for g in groups_of(baseline)]
    c_groups = [np.asarray(g, dtype=float) for g in groups_of(candidate)]
    nb, nc = sum(len(g) for g in b_groups), sum(len(g) for g in c_groups)
    for side, groups in (("baseline", b_groups), ("candidate", c_groups)):
        if any(not np.all(np.isfinite(g)) for g in groups):
            raise ValueError(f"{side} samples hold a NaN or infinite value")
    b = np.concatenate(b_groups) if b_groups else np.empty(0)
    c = np.concatenate(c_groups) if c_groups else np.empty(0)
    scale = float(np.median(b)) if nb else 0.0
    noise = max(relative_noise(baseline), relative_noise(candidate))
    threshold = max(rule.min_effect, rule.noise_multiplier * noise, floor / scale if scale > 0 else 0.0)
    if nb < rule.min_samples or nc < rule.min_samples or scale <= 0:
        return SampleDecision(
            "too-few-samples", None, None, None, threshold, None, nb, nc, len(b_groups), len(c_groups)
        )
    estimate = float(hodges_lehmann(b, c)) / scale
    if abs(estimate) < threshold:  # too small to matter whatever the test says: skip the costly part
        return SampleDecision("no-change", estimate, None, None, threshold, None, nb, nc, len(b_groups), len(c_groups))
    rng = np.random.default_rng(rule.seed)
    boot = (
        hodges_lehmann(_bootstrap_draws(b_groups, rule.resamples, rng), _bootstrap_draws(c_groups, rule.resamples, rng))
        / scale
    )
    low, high = (float(v) for v in np.quantile(boot, [rule.alpha / 2, 1 - rule.alpha / 2]))
    if np.ptp(b) == 0 and np.ptp(c) == 0:  # constant samples: MWU is undefined, the shift is exact
        p_value = 0.0 if b[0] != c[0] else 1.0
    else:
        p_value = float(stats.mannwhitneyu(c, b, alternative="two-sided").pvalue)
    significant = p_value < rule.alpha and (low > 0 or high < 0)
    outcome: Outcome = "no-change"
    if significant and abs(estimate) >= threshold:
        outcome = "regression" if estimate > 0 else "improvement"
    return SampleDecision(outcome, estimate, low, high, threshold, p_value, nb, nc, len(b_groups), len(c_groups))
