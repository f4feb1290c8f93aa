"""E-divisive means (Matteson & James 2014) with its permutation test, on series whose change
points are known: steps in the mean, a change in spread only, none at all."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pytest_vllm_profile.history.changepoints import _qhat_all, e_divisive


def _qhat_by_definition(z: np.ndarray, t: int) -> float:
    """Q-hat of the split at t straight from the paper's formula (alpha = 1), pair by pair."""
    x, y = z[:t], z[t:]
    m, n = len(x), len(y)
    between = sum(abs(a - b) for a in x for b in y)
    within_x = sum(abs(a - b) for a, b in itertools.combinations(x, 2))
    within_y = sum(abs(a - b) for a, b in itertools.combinations(y, 2))
    e = 2 * between / (m * n) - within_x / (m * (m - 1) / 2) - within_y / (n * (n - 1) / 2)
    return m * n / (m + n) * e


def test_qhat_of_a_two_level_series_by_hand() -> None:
    # X = [0, 0, 0], Y = [1, 1, 1]: E = 2 * 9 / 9 = 2, Q = 3 * 3 / 6 * 2 = 3
    q = _qhat_all(np.array([0.0, 0, 0, 1, 1, 1]), min_size=3)
    assert q[3] == pytest.approx(3.0)
    assert np.isneginf(q[[0, 1, 2, 4, 5]]).all()  # splits leaving a side under min_size are not candidates
    # min_size 2, split at 2: X = [0, 0], Y = [0, 1, 1, 1]: E = 12/8 - 3/6 = 1, Q = 8/6
    assert _qhat_all(np.array([0.0, 0, 0, 1, 1, 1]), min_size=2)[2] == pytest.approx(4 / 3)


def test_qhat_matches_the_definition_on_random_data() -> None:
    z = np.random.default_rng(7).normal(size=17)
    q = _qhat_all(z, min_size=2)
    for t in range(2, 16):
        assert q[t] == pytest.approx(_qhat_by_definition(z, t), rel=1e-9)


def test_a_four_percent_step_is_found_where_it_is() -> None:
    rng = np.random.default_rng(1)
    series = np.r_[6000 + rng.normal(0, 30, 25), 6240 + rng.normal(0, 30, 15)]  # +4 % at run 25, 0.5 % noise
    (cp,) = e_divisive(series)
    assert cp.index == 25
    assert cp.relative_change == pytest.approx(0.04, abs=0.005)
    assert cp.pvalue <= 0.01


def test_up_then_down_gives_two_change_points() -> None:
    rng = np.random.default_rng(2)
    series = np.r_[rng.normal(10, 1, 30), rng.normal(13, 1, 30), rng.normal(10, 1, 30)]
    points = e_divisive(series)
    assert [p.index for p in points] == [30, 60]
    assert points[0].mean_after > points[0].mean_before and points[1].mean_after < points[1].mean_before


def test_a_change_followed_by_a_change_back_inside_one_segment() -> None:
    # A short raised stretch in the middle: no split with the right side running to the end
    # separates it well; the paper's search over the right side's end does.
    rng = np.random.default_rng(5)
    series = np.r_[rng.normal(0, 0.5, 20), rng.normal(4, 0.5, 8), rng.normal(0, 0.5, 20)]
    assert [p.index for p in e_divisive(series)] == [20, 28]


@pytest.mark.parametrize("seed", range(10))
def test_noise_without_a_change_has_none(seed: int) -> None:
    series = np.random.default_rng(100 + seed).normal(6000, 30, 40)
    assert e_divisive(series) == []


def test_same_series_same_answer_and_the_seed_is_the_only_randomness() -> None:
    rng = np.random.default_rng(4)
    series = list(np.r_[rng.normal(0, 1, 12), rng.normal(1.5, 1, 12)])
    assert e_divisive(series) == e_divisive(series)
    assert e_divisive(series, seed=5) == e_divisive(series, seed=5)


def test_short_series_and_constant_series_have_none() -> None:
    assert e_divisive([1.0, 2.0, 9.0, 9.0, 9.0]) == []  # under 2 * min_size
    assert e_divisive([5.0] * 30) == []


def test_bad_input_is_refused_with_the_cause() -> None:
    with pytest.raises(ValueError, match="finite"):
        e_divisive([1.0, float("nan"), 2.0, 3.0, 4.0, 5.0])
    with pytest.raises(ValueError, match="min_size"):
        e_divisive([1.0] * 10, min_size=1)
    with pytest.raises(ValueError, match="pvalue"):
        e_divisive([1.0] * 10, pvalue=1.5)


def test_mongodb_signal_processing_sanity_vector() -> None:
    # signal-processing-algorithms' tests/test_e_divisive.py: fit_predict([0] * cp + [1] * cp) == [cp]
    # for cp in 4..99. Here from cp = 5: with 2 * 4 values only 70 orderings exist, 2 of them as
    # extreme as the observed one, so no permutation test can reach p <= 0.01 (it does at 0.05).
    for cp in [*range(5, 13), 20, 40, 99]:  # a sample: all 95 take 30 s here
        assert [p.index for p in e_divisive([0.0] * cp + [1.0] * cp)] == [cp], cp
    assert [p.index for p in e_divisive([0.0] * 4 + [1.0] * 4, pvalue=0.05)] == [4]
    assert e_divisive([0.0] * 4 + [1.0] * 4) == []
