"""Offline evaluation metrics shared by every model, baseline or neural.

Accuracy metrics take ``topk`` (one row of item indices per user, best first) and ``test_sets``
(the held-out item indices of the same users) and average over users that have test items, so a
model is never rewarded or punished for users the protocol cannot judge. Recall, NDCG and MAP are
normalised by min(|test|, k): a user with 30 held-out items cannot reach recall 1 with 10 slots,
and the protocol should not call a perfect list imperfect. Beyond-accuracy metrics (coverage,
diversity, novelty) show whether a model wins by recommending the same blockbusters to everyone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

TopK = np.ndarray  # int array, n_users x >= k, best first


def _as_topk(topk: np.ndarray | Sequence[Sequence[int]], k: int | None = None) -> np.ndarray:
    arr = np.asarray(topk, dtype=np.int64)
    if arr.ndim != 2:
        raise ValueError(f"topk must be 2-D (users x k), got shape {arr.shape}")
    return arr if k is None else arr[:, :k]


def _hits(topk: np.ndarray, test_sets: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, ...]:
    """Hit matrix (users x k) and test-set sizes, restricted to users with test items.

    Membership is tested in one ``np.isin`` over (user, item) keys instead of a Python loop.
    """
    top = _as_topk(topk, k)
    if len(test_sets) != top.shape[0]:
        raise ValueError(f"{top.shape[0]} top-k rows but {len(test_sets)} test sets")
    sizes = np.array([len(np.unique(t)) for t in test_sets], dtype=np.int64)
    keep = sizes > 0
    top, sizes = top[keep], sizes[keep]
    tests = [
        np.unique(np.asarray(t, dtype=np.int64))
        for t, kept in zip(test_sets, keep, strict=True)
        if kept
    ]
    if not tests:
        return np.zeros((0, top.shape[1]), dtype=bool), sizes
    width = int(max(top.max(initial=0), max(t.max() for t in tests))) + 1
    user = np.arange(len(tests), dtype=np.int64)
    test_keys = np.concatenate([u * width + t for u, t in zip(user, tests, strict=True)])
    hits = np.isin(user[:, None] * width + top, test_keys) & (top >= 0)
    return hits, sizes


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else 0.0


def recall_at_k(topk: np.ndarray, test_sets: Sequence[np.ndarray], k: int) -> float:
    """Mean of hits / min(|test|, k)."""
    hits, sizes = _hits(topk, test_sets, k)
    return _mean(hits.sum(axis=1) / np.minimum(sizes, k))


def hit_rate_at_k(topk: np.ndarray, test_sets: Sequence[np.ndarray], k: int) -> float:
    """Share of users with at least one held-out item in their list."""
    hits, _ = _hits(topk, test_sets, k)
    return _mean(hits.any(axis=1).astype(np.float64))


def ndcg_at_k(topk: np.ndarray, test_sets: Sequence[np.ndarray], k: int) -> float:
    """Binary-gain NDCG; the ideal list puts min(|test|, k) hits at the top."""
    hits, sizes = _hits(topk, test_sets, k)
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = hits @ discounts
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    return _mean(dcg / ideal[np.minimum(sizes, k)])


def map_at_k(topk: np.ndarray, test_sets: Sequence[np.ndarray], k: int) -> float:
    """Mean of AP@k = sum of precision@i at each hit i, divided by min(|test|, k)."""
    hits, sizes = _hits(topk, test_sets, k)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    return _mean((precision * hits).sum(axis=1) / np.minimum(sizes, k))


def catalogue_coverage(topk: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    top = _as_topk(topk)
    return len(np.unique(top[top >= 0])) / n_items if n_items else 0.0


def intra_list_diversity(topk: np.ndarray, item_features: np.ndarray | sp.spmatrix) -> float:
    """Mean over lists of the mean pairwise (1 - cosine similarity) of item feature vectors.

    Items with all-zero features are treated as dissimilar to everything (similarity 0).
    """
    top = _as_topk(topk)
    n, k = top.shape
    if n == 0 or k < 2:
        return 0.0
    feats = item_features.toarray() if sp.issparse(item_features) else np.asarray(item_features)
    feats = feats.astype(np.float64)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    unit = np.divide(feats, norms, out=np.zeros_like(feats), where=norms > 0)
    vectors = unit[top]  # n x k x d
    sims = np.einsum("nid,njd->nij", vectors, vectors)
    off_diagonal = sims.sum(axis=(1, 2)) - np.einsum("nii->n", sims)
    return float(np.mean(1.0 - off_diagonal / (k * (k - 1))))


def novelty(topk: np.ndarray, item_popularity: np.ndarray) -> float:
    """Mean self-information -log2 p(item), p = share of users who interacted with the item.

    Items nobody interacted with get the smallest positive share, so a single cold item cannot
    make the mean infinite.
    """
    top = _as_topk(topk)
    p = np.asarray(item_popularity, dtype=np.float64)
    positive = p[p > 0]
    floor = positive.min() if positive.size else 1.0
    info = -np.log2(np.clip(p, floor, 1.0))
    return _mean(info[top[top >= 0]])


def evaluate_topk(
    topk: np.ndarray,
    test_sets: Sequence[np.ndarray],
    k_values: Sequence[int] = (5, 10, 20),
    *,
    n_items: int,
    item_popularity: np.ndarray,
    item_features: np.ndarray | sp.spmatrix | None = None,
) -> dict[str, float]:
    """All metrics at every k, as ``name@k`` keys.

    Beyond-accuracy metrics use the same users as the accuracy ones (those with test items), so
    every figure in one result describes the same population.
    """
    top = _as_topk(topk)
    if top.shape[1] < max(k_values):
        raise ValueError(f"topk has {top.shape[1]} columns, k_values need {max(k_values)}")
    judged = top[np.array([len(t) > 0 for t in test_sets], dtype=bool)]
    out: dict[str, float] = {}
    for k in k_values:
        out[f"recall@{k}"] = recall_at_k(top, test_sets, k)
        out[f"ndcg@{k}"] = ndcg_at_k(top, test_sets, k)
        out[f"map@{k}"] = map_at_k(top, test_sets, k)
        out[f"hit_rate@{k}"] = hit_rate_at_k(top, test_sets, k)
        out[f"coverage@{k}"] = catalogue_coverage(judged[:, :k], n_items)
        if item_features is not None:
            out[f"diversity@{k}"] = intra_list_diversity(judged[:, :k], item_features)
        out[f"novelty@{k}"] = novelty(judged[:, :k], item_popularity)
    return out
