"""EASE's λ chosen on held-out events, its B over vocabulary ids, and the recent popularity."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models.baselines import EASE, choose_ease_lambda, ease_weights, ndcg
from models.collaborative import (
    choose_lambda,
    fit_collaborative,
    inner_split,
    recent_popularity,
    user_item_matrix,
)


def _blocks(seed: int = 0, users: int = 60, items: int = 20) -> sp.csr_matrix:
    """Users each buying mostly within their own block of items: EASE's easy case."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(users):
        block = (u % 4) * (items // 4)
        for i in rng.choice(items // 4, size=3, replace=False):
            rows.append(u)
            cols.append(block + i)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(users, items))


def test_the_grid_is_scored_as_separate_fits_would_score_it() -> None:
    x = _blocks()
    holdout = [np.array([(u % 4) * 5 + 4]) for u in range(x.shape[0])]
    best, scores = choose_ease_lambda(x, holdout, grid=(1.0, 10.0, 100.0))
    for lam, figure in scores.items():
        predicted = EASE(lam).fit(x).score(np.arange(x.shape[0]))
        predicted[x.nonzero()] = -np.inf
        top = np.argsort(-predicted, axis=1, kind="stable")[:, :10]
        assert figure == pytest.approx(ndcg(top, holdout, 10), abs=1e-6)
    assert scores[best] == max(scores.values())


def test_a_restricted_ease_scores_only_the_popular_items() -> None:
    x = _blocks()
    model = EASE(10.0, max_items=8).fit(x)
    scores = model.score(np.arange(3))
    assert model.restricted and len(model.kept) == 8
    assert np.isneginf(scores[:, np.setdiff1d(np.arange(20), model.kept)]).all()
    assert not EASE(10.0, max_items=100).fit(x).restricted


def test_inner_splits_hold_out_the_latest_or_a_random_share() -> None:
    times = np.arange("2026-01-01", "2026-01-11", dtype="datetime64[D]").astype("datetime64[ns]")
    later = inner_split(times, 0.2, "time", seed=0)
    assert later.tolist() == [False] * 8 + [True] * 2
    random = inner_split(times, 0.3, "random", seed=0)
    assert random.sum() == 3 and (random == inner_split(times, 0.3, "random", seed=0)).all()
    with pytest.raises(ValueError):
        inner_split(times, 0.2, "sideways", seed=0)


def test_collaborative_constants_leave_the_unknown_item_out() -> None:
    users = np.array([1, 1, 2, 2, 3, 3])
    items = np.array([1, 2, 1, 2, 2, 3])
    times = np.array(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-20", "2026-01-20",
                      "2026-01-21"], dtype="datetime64[ns]")
    c = fit_collaborative(users, items, times, 4, 1.0, days=7)
    assert c.matrix.shape == (4, 4) and not c.matrix[0].any() and not c.matrix[:, 0].any()
    assert np.allclose(c.matrix[1:, 1:], ease_weights(user_item_matrix(users, items, 4)[:, 1:],
                                                      1.0), atol=1e-5)
    # The last 7 days hold items 2, 2 and 3: item 1 sold nothing recently.
    assert c.trend[1] == 0 and c.trend[2] > c.trend[3] > 0
    assert recent_popularity(items[:0], times[:0], 4).tolist() == [0, 0, 0, 0]


def test_lambda_is_chosen_from_the_grid_on_later_events() -> None:
    x = _blocks()
    users, items = x.nonzero()
    later = np.zeros(len(users), bool)
    later[::4] = True
    assert choose_lambda(users, items, later, 20, grid=(1.0, 10.0)) in (1.0, 10.0)
