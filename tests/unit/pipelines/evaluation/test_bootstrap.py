"""Bootstrap intervals over shoppers, and the per-shopper metric vectors they resample."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.evaluation.bootstrap import Resamples
from pipelines.evaluation.metrics import evaluate_topk, per_user_metrics, popularity_bias_per_list


def test_resamples_draw_every_shopper_set_reproducibly() -> None:
    first, again = Resamples(40), Resamples(40)
    np.testing.assert_array_equal(first.counts, again.counts)
    assert first.counts.shape == (1000, 40)
    assert (first.counts.sum(axis=1) == 40).all(), "each resample draws n shoppers"
    assert not np.array_equal(first.counts, Resamples(40, seed=1).counts)


def test_the_interval_holds_the_mean_and_narrows_with_more_shoppers() -> None:
    rng = np.random.default_rng(0)
    few, many = rng.binomial(1, 0.3, 50).astype(float), rng.binomial(1, 0.3, 2000).astype(float)
    small, large = Resamples(50).interval(few), Resamples(2000).interval(many)
    assert small.value == pytest.approx(few.mean()) and small.low <= small.value <= small.high
    assert large.low <= large.value <= large.high
    assert large.high - large.low < (small.high - small.low) / 3
    assert 0.25 < large.low < 0.3 < large.high < 0.35, "covers the true share"
    with pytest.raises(ValueError, match="values for 50"):
        Resamples(50).interval(many)


def test_pairing_removes_the_spread_both_models_share() -> None:
    rng = np.random.default_rng(1)
    easy = rng.normal(0.0, 0.3, 200)  # which shoppers are easy: the same for both models
    a = 0.40 + easy + rng.normal(0, 0.01, 200)
    b = 0.38 + easy + rng.normal(0, 0.01, 200)
    resamples = Resamples(200)
    paired = resamples.paired(a, b)
    unpaired_width = (resamples.interval(a).high - resamples.interval(a).low
                      + resamples.interval(b).high - resamples.interval(b).low)
    assert paired.low > 0, "a small but consistent gain is visible when paired"
    assert paired.high - paired.low < unpaired_width / 10
    assert resamples.paired(a, a).to_json() == {"value": 0.0, "ci95": [0.0, 0.0]}


def test_no_shoppers_gives_no_interval_rather_than_nan() -> None:
    assert Resamples(0).interval(np.zeros(0)).to_json() == {"value": None, "ci95": None}


def test_per_user_vectors_average_to_the_aggregate_metrics() -> None:
    topk = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 1, 2, 3]])
    tests = [np.array([2, 9]), np.array([], np.int64), np.array([1])]
    popularity = np.linspace(0.05, 0.5, 10)
    per_user = per_user_metrics(topk, tests, (1, 4), item_popularity=popularity,
                                item_features=np.eye(10))
    totals = evaluate_topk(topk, tests, (1, 4), n_items=10, item_popularity=popularity,
                           item_features=np.eye(10))
    assert all(len(v) == 2 for v in per_user.values()), "only shoppers with test items"
    for name, values in per_user.items():
        assert values.mean() == pytest.approx(totals[name]), name
    np.testing.assert_allclose(per_user["recall@4"], [0.5, 1.0])


def test_popularity_bias_is_the_share_of_slots_from_the_head() -> None:
    popularity = np.array([0.0, *np.arange(1, 21) / 20])  # item 20 most popular; 0 unknown
    lists = np.array([[20, 19, 1, 2], [1, 2, 3, 4]])  # the top 10 % of 20 items: 20 and 19
    np.testing.assert_allclose(popularity_bias_per_list(lists, popularity), [0.5, 0.0])
