"""Metrics against hand-worked cases, and the baselines against their textbook definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from models.baselines import EASE, Popularity, Recommender, top_k
from pipelines.evaluation.metrics import (
    catalogue_coverage,
    evaluate_topk,
    hit_rate_at_k,
    intra_list_diversity,
    map_at_k,
    ndcg_at_k,
    novelty,
    recall_at_k,
)

L2 = math.log2

# Three users; the third has no test items and must be ignored by every accuracy metric.
TOPK = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [0, 1, 2, 3]])
TESTS = [np.array([2, 9]), np.array([5]), np.array([], dtype=np.int64)]


def test_recall_hand_case() -> None:
    # user 0: one hit (item 2) of min(|{2, 9}|, 4) = 2 -> 1/2; user 1: item 5 of min(1, 4) -> 1
    assert recall_at_k(TOPK, TESTS, 4) == pytest.approx(0.75)
    # k = 1: user 0 misses (item 1) -> 0/min(2, 1); user 1 hits -> 1/1
    assert recall_at_k(TOPK, TESTS, 1) == pytest.approx(0.5)


def test_ndcg_hand_case() -> None:
    # user 0: hit at rank 2 -> DCG 1/log2(3); ideal puts 2 hits first -> 1 + 1/log2(3)
    # user 1: hit at rank 1 -> 1
    user0 = (1 / L2(3)) / (1 + 1 / L2(3))
    assert ndcg_at_k(TOPK, TESTS, 4) == pytest.approx((user0 + 1) / 2)


def test_map_hand_case() -> None:
    # user 0: precision@2 = 1/2 at its only hit, divided by min(2, 4) -> 0.25; user 1: 1/1 -> 1
    assert map_at_k(TOPK, TESTS, 4) == pytest.approx(0.625)


def test_hit_rate_hand_case() -> None:
    assert hit_rate_at_k(TOPK, TESTS, 4) == pytest.approx(1.0)
    assert hit_rate_at_k(TOPK, TESTS, 1) == pytest.approx(0.5)  # only user 1 hits at rank 1


def test_normalisation_when_test_set_is_larger_than_k() -> None:
    topk = np.array([[1, 9, 2]])
    tests = [np.array([1, 2, 3, 4, 5, 6])]
    # hits at ranks 1 and 3; min(6, 3) = 3
    assert recall_at_k(topk, tests, 3) == pytest.approx(2 / 3)
    # DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) + 1/log2(4)
    assert ndcg_at_k(topk, tests, 3) == pytest.approx(1.5 / (1 + 1 / L2(3) + 0.5))
    # AP = (precision@1 + precision@3) / 3 = (1 + 2/3) / 3
    assert map_at_k(topk, tests, 3) == pytest.approx((1 + 2 / 3) / 3)


def test_perfect_list_scores_one() -> None:
    topk = np.array([[3, 1, 2, 0]])
    tests = [np.array([1, 3, 7, 8, 9])]  # more test items than k = 2
    for metric in (recall_at_k, ndcg_at_k, map_at_k, hit_rate_at_k):
        assert metric(topk, tests, 2) == pytest.approx(1.0), metric.__name__


def test_no_judged_users_gives_zero() -> None:
    assert recall_at_k(np.array([[0, 1]]), [np.array([], dtype=np.int64)], 2) == 0.0


def test_coverage_hand_case() -> None:
    # items {0, 1, 2} of 10
    assert catalogue_coverage(np.array([[0, 1], [1, 2]]), 10) == pytest.approx(0.3)


def test_diversity_hand_case() -> None:
    # one-hot categories: items 0 and 1 share A, item 2 is B
    features = np.array([[1, 0], [1, 0], [0, 1]])
    # [0, 1] -> same category -> 0; [1, 2] -> orthogonal -> 1; mean 0.5
    assert intra_list_diversity(np.array([[0, 1], [1, 2]]), features) == pytest.approx(0.5)
    # pairs (0,1)=0, (0,2)=1, (1,2)=1 -> 2/3; sparse features give the same
    assert intra_list_diversity(np.array([[0, 1, 2]]), sp.csr_matrix(features)) == pytest.approx(
        2 / 3
    )


def test_novelty_hand_case() -> None:
    p = np.array([0.5, 0.25, 0.125, 0.0])
    # -log2 p: 1, 2, 3; lists [0, 1] and [1, 2] -> mean of 1, 2, 2, 3
    assert novelty(np.array([[0, 1], [1, 2]]), p) == pytest.approx(2.0)
    # an item nobody interacted with counts as the rarest seen item, not as infinity
    assert novelty(np.array([[3]]), p) == pytest.approx(3.0)


def test_evaluate_topk_keys_and_values() -> None:
    features = np.eye(10)
    out = evaluate_topk(
        TOPK, TESTS, (1, 4), n_items=10, item_popularity=np.full(10, 0.5), item_features=features
    )
    expected = {
        f"{m}@{k}"
        for k in (1, 4)
        for m in ("recall", "ndcg", "map", "hit_rate", "coverage", "diversity", "novelty")
    }
    assert set(out) == expected
    assert out["recall@4"] == pytest.approx(0.75)
    # beyond-accuracy metrics use judged users only: items {1..8} of 10
    assert out["coverage@4"] == pytest.approx(0.8)
    assert out["diversity@4"] == pytest.approx(1.0)
    assert out["novelty@4"] == pytest.approx(1.0)
    assert "diversity@4" not in evaluate_topk(
        TOPK, TESTS, (4,), n_items=10, item_popularity=np.full(10, 0.5)
    )
    with pytest.raises(ValueError):
        evaluate_topk(TOPK, TESTS, (5,), n_items=10, item_popularity=np.full(10, 0.5))


# --- baselines ---------------------------------------------------------------------------------

X = sp.csr_matrix(
    np.array(
        [
            [1, 1, 0, 0, 1],
            [0, 1, 1, 0, 0],
            [1, 0, 1, 1, 0],
            [0, 0, 0, 1, 1],
            [1, 1, 1, 0, 0],
            [0, 3, 0, 0, 0],  # a count: EASE and popularity must treat it as 1
        ],
        dtype=np.float64,
    )
)


def test_ease_matches_dense_closed_form() -> None:
    lam = 2.0
    xb = (X.toarray() > 0).astype(np.float64)
    p = np.linalg.inv(xb.T @ xb + lam * np.eye(xb.shape[1]))
    b = np.eye(xb.shape[1]) - p / np.diag(p)  # Steck 2019, eq. 8
    model = EASE(lambda_=lam).fit(X)
    assert np.allclose(model.b, b, atol=1e-6)
    assert np.allclose(np.diag(model.b), 0.0)
    rows = np.array([0, 3, 5])
    assert np.allclose(model.score(rows), xb[rows] @ b, atol=1e-6)
    assert model.score(rows).shape == (3, 5)
    assert isinstance(model, Recommender)


def test_popularity_counts_distinct_users() -> None:
    model = Popularity().fit(X)
    # users per item: [3, 4, 3, 2, 2] (user 5's count of 3 counts once)
    assert model.score(np.array([0])).tolist() == [[3, 4, 3, 2, 2]]
    ranked = top_k(model.score(np.array([0, 1])), 5)
    assert ranked[0, 0] == 1
    assert ranked[0, -2:].tolist() in ([3, 4], [4, 3])
    assert isinstance(model, Recommender)


def test_top_k_sorts_and_excludes_seen_items() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7, 0.3], [5.0, 4.0, 3.0, 2.0, 1.0]])
    assert top_k(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2]]
    seen = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [1, 0, 0, 0, 0]]))
    assert top_k(scores, 3, exclude=seen).tolist() == [[2, 4, 0], [1, 2, 3]]
    assert scores[0, 1] == 0.9, "caller's scores are left intact"
    assert top_k(scores, 99).shape == (2, 5)


def test_ease_top_k_never_recommends_seen_items() -> None:
    model = EASE(lambda_=1.0).fit(X)
    rows = np.arange(X.shape[0])
    ranked = top_k(model.score(rows), 2, exclude=X[rows])
    for user, items in zip(rows, ranked, strict=True):
        assert not set(items) & set(X[user].indices)
