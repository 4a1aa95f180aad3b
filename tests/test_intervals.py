"""The held-out reports' 95% intervals (train/intervals.py) against textbook values and their defining properties."""

from __future__ import annotations

import numpy as np
import pytest

from train.intervals import bootstrap, poisson_rate, wilson


def test_wilson_matches_the_textbook_values():
    # Newcombe (1998): 0 of 10 -> [0, 0.2775]; 10 of 10 -> [0.7225, 1]; 81 of 263 -> [0.2553, 0.3662]
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_poisson_rate_matches_the_exact_garwood_limits_and_scales_with_exposure():
    # chi-square limits: k=0 -> [0, 3.689]; k=1 -> [0.0253, 5.572]; k=10 -> [4.795, 18.39]
    assert poisson_rate(0, 1.0) == pytest.approx((0.0, 3.689), abs=1e-3)
    assert poisson_rate(1, 1.0) == pytest.approx((0.0253, 5.572), abs=1e-3)
    assert poisson_rate(10, 1.0) == pytest.approx((4.795, 18.39), abs=1e-2)
    lo, hi = poisson_rate(10, 0.5)
    assert (lo, hi) == pytest.approx((9.59, 36.78), abs=2e-2)


def test_bootstrap_resamples_whole_groups_so_one_bad_person_widens_the_interval():
    rng = np.random.default_rng(1)
    correct = rng.random(600) < 0.97
    people = np.repeat(np.arange(6), 100)
    correct[people == 5] = rng.random(100) < 0.6  # one person the model gets wrong a lot

    def accuracy(idx):
        return float(correct[idx].mean())

    lo, hi = bootstrap(accuracy, people)
    assert lo < correct.mean() < hi
    crop_lo, crop_hi = bootstrap(accuracy, np.arange(600))  # treating crops as independent
    assert hi - lo > 2 * (crop_hi - crop_lo)  # people are the unit: six of them say little
    assert bootstrap(accuracy, people) == (lo, hi)  # seeded: the report does not change between runs


def test_bootstrap_of_a_single_group_is_that_groups_value():
    values = np.array([0.0, 1.0, 1.0, 1.0])
    assert bootstrap(lambda idx: float(values[idx].mean()), np.zeros(4)) == (0.75, 0.75)
