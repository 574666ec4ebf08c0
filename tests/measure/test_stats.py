"""Statistics of measurements: exact values on hand-made cases."""

import math

import numpy as np
import pytest

from memsinks.measure.stats import (
    bootstrap_closure,
    gap,
    mean_nll,
    mean_se,
    over_seeds,
    paired_difference,
)


def test_mean_nll_counts_every_token_once_and_its_error():
    sums, counts = np.array([2.0, 6.0, 4.0]), np.array([2, 3, 4])
    mean, se = mean_nll(sums, counts)
    assert mean == pytest.approx(12 / 9)
    residual = sums - (12 / 9) * counts
    assert se == pytest.approx(math.sqrt((residual**2).sum() / 6) / 3)
    # equal per-token losses: no spread, no error
    assert mean_nll(np.array([1.0, 2.0]), np.array([1, 2]))[1] == pytest.approx(0.0)


def test_gap_and_paired_difference():
    g, se = gap(np.array([3.0, 3.0]), np.array([1, 1]), np.array([1.0, 2.0]), np.array([1, 1]))
    assert g == pytest.approx(1.5)
    assert se == pytest.approx(0.5)
    d, se = paired_difference(np.array([3.0, 5.0]), np.array([2.0, 4.0]), np.array([1, 1]))
    assert (d, se) == (pytest.approx(1.0), pytest.approx(0.0))


def test_bootstrap_closure_exact_cases():
    counts = {"R": np.ones(50), "H": np.ones(50)}
    rng = np.random.default_rng(0)
    h = rng.normal(2.0, 0.1, 50)
    r = rng.normal(1.0, 0.1, 50)
    std = {"R": r, "H": h}
    same = bootstrap_closure(std, std, counts, rounds=200)
    assert same == (pytest.approx(0.0), pytest.approx(0.0))
    # a model whose R loss equals its H loss on average has the whole gap closed
    closed = {"R": r + (h.mean() - r.mean()), "H": h}
    value, se = bootstrap_closure(std, closed, counts, rounds=200)
    assert value == pytest.approx(1.0)
    assert se < 0.05


def test_mean_and_standard_error_of_the_finite_values():
    assert mean_se([1.0, 3.0]) == (2.0, 1.0)  # sd sqrt(2), over sqrt(2) values
    assert mean_se([1.0, float("nan"), 3.0, float("inf")]) == (2.0, 1.0)
    mean, se = mean_se([4.0])
    assert mean == 4.0 and math.isnan(se)
    assert all(math.isnan(v) for v in mean_se([]))


def test_over_seeds_takes_the_spread_of_several_seeds_or_the_one_run_s_own_error():
    assert over_seeds([[1.0, 0.5], [3.0, 0.5]]) == [2.0, 1.0]
    assert over_seeds([[1.0, 0.25]]) == [1.0, 0.25]
