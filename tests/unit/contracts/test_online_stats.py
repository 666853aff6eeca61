"""Rates over shoppers: the running sums equal the batch formula, the interval covers, the rule."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from contracts.online_stats import (
    PASS,
    ROLL_BACK,
    WAIT,
    Z95,
    Estimate,
    Moments,
    at_least,
    decide,
    difference,
    moments_of,
    sequence,
    sequence_factor,
    wilson,
)


def _direct(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The delta-method ratio estimate and its standard error, straight from the arrays."""
    rate = y.sum() / x.sum()
    n = len(x)
    se = math.sqrt(((y - rate * x) ** 2).sum() / (n * (n - 1))) / x.mean()
    return rate, se


def test_running_sums_moved_one_shopper_at_a_time_equal_the_batch_formula() -> None:
    rng = random.Random(3)
    sums: dict[int, list[float]] = {}
    found = Moments()
    for _ in range(2000):  # impressions and outcomes arriving in any order
        shopper, clicked = rng.randrange(60), rng.random() < 0.3
        before = tuple(sums[shopper]) if shopper in sums else None
        row = sums.setdefault(shopper, [0.0, 0.0])
        row[0] += 1
        row[1] += clicked
        found.change(before, tuple(row))
    x = np.array([r[0] for r in sums.values()])
    y = np.array([r[1] for r in sums.values()])
    rate, se = _direct(x, y)
    got = found.ratio()
    assert found.n == len(sums)
    assert math.isclose(got.value, rate, rel_tol=1e-12)
    assert math.isclose(got.high - got.value, 1.959964 * se, rel_tol=1e-9)
    assert math.isclose(got.value - got.low, got.high - got.value, rel_tol=1e-9)
    assert moments_of(list(zip(x, y, strict=True))).ratio() == got


def test_the_interval_is_over_shoppers_and_covers_the_true_rate() -> None:
    """Shoppers differ (each has a click rate of their own), so requests are not independent: a
    per-request interval would be too narrow; this one covers ~95 % of the time."""
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(300):
        propensity = rng.beta(1, 9, size=150)  # true mean rate 0.1
        shown = rng.integers(1, 30, size=150).astype(float)
        clicks = rng.binomial(shown.astype(int), propensity).astype(float)
        true_rate = 0.1  # the population's: shoppers are a sample of it too
        got = moments_of(list(zip(shown, clicks, strict=True))).ratio()
        covered += got.low <= true_rate <= got.high
    assert 0.9 <= covered / 300 <= 0.99, covered


def test_no_interval_below_two_shoppers_or_without_impressions() -> None:
    assert Moments().ratio() == Estimate(None, None, None)
    assert moments_of([(4.0, 1.0)]).ratio() == Estimate(0.25, None, None)
    assert difference(Estimate(0.2, None, None), Estimate(0.1, 0.05, 0.15)).low is None


def test_the_difference_of_independent_groups_adds_variances() -> None:
    a, b = Estimate(0.30, 0.20, 0.40), Estimate(0.10, 0.07, 0.13)
    diff = difference(a, b)
    assert math.isclose(diff.value, 0.20)
    assert math.isclose(diff.high - diff.value, math.hypot(0.10, 0.03), rel_tol=1e-6)
    assert Estimate(0.5, 0.4, 0.6).scaled(2, -1) == Estimate(0.0, -0.19999999999999996,
                                                             0.19999999999999996)


def test_the_rule_passes_rolls_back_or_waits() -> None:
    above, below, straddle = (Estimate(0.05, 0.03, 0.07), Estimate(-0.05, -0.07, -0.03),
                              Estimate(0.0, -0.04, 0.04))
    assert decide(above, 100, 30, 100, 0.0, "x")[0] == PASS
    verdict, reason = decide(below, 100, 30, 100, 0.0, "click rate difference")
    assert verdict == ROLL_BACK and reason.startswith("click rate difference -0.0500")
    assert "below the margin +0.0000" in reason and "100 shoppers" in reason
    assert "confidence sequence" in reason
    assert decide(straddle, 100, 30, 100, 0.0, "x")[0] == WAIT
    assert decide(straddle, 100, 30, 100, -0.08, "x")[0] == PASS, "non-inferiority margin"
    verdict, reason = decide(above, 99, 30, 100, 0.0, "x")
    assert verdict == WAIT and reason == "99 of the 100 shoppers needed to judge x"
    assert decide(Estimate(0.0, 0.0, 0.0), 500, 0, 100, -0.01, "x")[0] == WAIT, "no outcome yet"
    fixed_passes = Estimate(0.05, 0.01, 0.09)  # its 95 % interval is above 0 ...
    assert decide(fixed_passes, 100, 30, 10, 0.0, "x")[0] == WAIT, "... its sequence is not"
    assert decide(fixed_passes, 100, 30, 10, 0.0, "x", observed=20)[0] == WAIT


def test_the_confidence_sequence_is_wider_early_and_tightest_where_set() -> None:
    factors = [sequence_factor(n) for n in (20, 100, 500, 5000)]
    assert factors[0] > factors[1] > factors[2] > 1.96
    assert factors[3] > factors[2], "tightest at SEQUENCE_TIGHTEST_AT shoppers"
    assert 2.9 < factors[2] < 3.1 and 3.3 < factors[1] < 3.5 and 5.0 < factors[0] < 5.2
    assert sequence(Estimate(0.1, 0.0, 0.3), 500).low < 0.0 < 0.1 < 0.3 < \
        sequence(Estimate(0.1, 0.0, 0.3), 500).high, "each side scaled alike"


def test_looking_after_every_shopper_keeps_the_error_rate_with_the_sequence() -> None:
    """Two equal models, judged after every shopper: a fixed 95 % interval leaves the true
    difference (0) at some look in far more than 5 % of canaries; the sequence in about 5 %."""
    rng = np.random.default_rng(0)
    paths, looks = 2000, 1000
    draws = rng.normal(size=(paths, looks))
    n = np.arange(1, looks + 1)
    mean = np.cumsum(draws, axis=1) / n
    var = (np.cumsum(draws**2, axis=1) - n * mean**2) / np.maximum(n - 1, 1)
    se = np.sqrt(var / n)
    start = 20  # the floor: fewer shoppers are never judged
    fixed = (np.abs(mean) > Z95 * se)[:, start:].any(axis=1).mean()
    factors = np.array([sequence_factor(int(k)) for k in n])
    sequential = (np.abs(mean) > factors * se)[:, start:].any(axis=1).mean()
    assert fixed > 0.2, fixed
    assert sequential < 0.06, sequential


def test_the_wilson_interval_keeps_a_width_when_every_trial_went_one_way() -> None:
    low, high = wilson(1, 1)
    assert math.isclose(low, 1 / (1 + Z95**2), rel_tol=1e-9) and math.isclose(high, 1.0)
    low, high = wilson(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12) and 0.27 < high < 0.28
    assert wilson(3, 0) is None
    narrow = Estimate(0.5, 0.49, 0.51)
    assert at_least(narrow, (0.4, 0.6)) == Estimate(0.5, 0.4, 0.6)
    assert at_least(narrow, (0.495, 0.505)) == narrow, "never narrowed"
    assert at_least(Estimate(0.5, None, None), (0.4, 0.6)) == Estimate(0.5, None, None)
