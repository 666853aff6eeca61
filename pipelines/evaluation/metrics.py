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


def accuracy_per_user(
    topk: np.ndarray, test_sets: Sequence[np.ndarray], k: int
) -> dict[str, np.ndarray]:
    """Recall, NDCG, MAP and hit rate at k, one value per user with test items (in order).

    The aggregate metrics are these vectors' means, and the gate's bootstrap resamples them:
    one code path, so an interval always belongs to the point value it is printed with.
    """
    hits, sizes = _hits(topk, test_sets, k)
    judged = np.minimum(sizes, k)
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    return {
        "recall": hits.sum(axis=1) / judged,
        "ndcg": (hits @ discounts) / ideal[judged],
        "map": (precision * hits).sum(axis=1) / judged,
        "hit_rate": hits.any(axis=1).astype(np.float64),
    }


def recall_at_k(topk: np.ndarray, test_sets: Sequence[np.ndarray], k: int) -> float:
    """Mean of hits / min(|test|, k)."""
    return _mean(accuracy_per_user(topk, test_sets, k)["recall"])


def hit_rate_at_k(topk: np.ndarray, test_sets: Sequence[np.ndarray], k: int) -> float:
    """Share of users with at least one held-out item in their list."""
    return _mean(accuracy_per_user(topk, test_sets, k)["hit_rate"])


def ndcg_at_k(topk: np.ndarray, test_sets: Sequence[np.ndarray], k: int) -> float:
    """Binary-gain NDCG; the ideal list puts min(|test|, k) hits at the top."""
    return _mean(accuracy_per_user(topk, test_sets, k)["ndcg"])


def map_at_k(topk: np.ndarray, test_sets: Sequence[np.ndarray], k: int) -> float:
    """Mean of AP@k = sum of precision@i at each hit i, divided by min(|test|, k)."""
    return _mean(accuracy_per_user(topk, test_sets, k)["map"])


def catalogue_coverage(topk: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    top = _as_topk(topk)
    return len(np.unique(top[top >= 0])) / n_items if n_items else 0.0


def diversity_per_list(topk: np.ndarray, item_features: np.ndarray | sp.spmatrix) -> np.ndarray:
    """Per list: the mean pairwise (1 - cosine similarity) of its items' feature vectors.

    Items with all-zero features are treated as dissimilar to everything (similarity 0).
    """
    top = _as_topk(topk)
    n, k = top.shape
    if n == 0 or k < 2:
        return np.zeros(n)
    feats = item_features.toarray() if sp.issparse(item_features) else np.asarray(item_features)
    feats = feats.astype(np.float64)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    unit = np.divide(feats, norms, out=np.zeros_like(feats), where=norms > 0)
    vectors = unit[top]  # n x k x d
    sims = np.einsum("nid,njd->nij", vectors, vectors)
    off_diagonal = sims.sum(axis=(1, 2)) - np.einsum("nii->n", sims)
    return 1.0 - off_diagonal / (k * (k - 1))


def intra_list_diversity(topk: np.ndarray, item_features: np.ndarray | sp.spmatrix) -> float:
    """Mean over lists of ``diversity_per_list``."""
    return _mean(diversity_per_list(topk, item_features))


def novelty_per_list(topk: np.ndarray, item_popularity: np.ndarray) -> np.ndarray:
    """Per list: mean self-information -log2 p(item) of its items, p = share of users who
    interacted with the item (padding slots, -1, left out; an all-padding list scores 0).

    Items nobody interacted with get the smallest positive share, so a single cold item cannot
    make the mean infinite.
    """
    top = _as_topk(topk)
    p = np.asarray(item_popularity, dtype=np.float64)
    positive = p[p > 0]
    floor = positive.min() if positive.size else 1.0
    info = -np.log2(np.clip(p, floor, 1.0))
    valid = top >= 0
    total = np.where(valid, info[np.where(valid, top, 0)], 0.0).sum(axis=1)
    return total / np.maximum(valid.sum(axis=1), 1)


def novelty(topk: np.ndarray, item_popularity: np.ndarray) -> float:
    """Mean over lists of ``novelty_per_list``."""
    return _mean(novelty_per_list(topk, item_popularity))


def popularity_bias_per_list(
    topk: np.ndarray, item_popularity: np.ndarray, head_share: float = 0.1
) -> np.ndarray:
    """Per list: the share of its slots taken by the most popular ``head_share`` of the items
    with any interactions: a model that wins by pushing blockbusters shows up here."""
    top = _as_topk(topk)
    p = np.asarray(item_popularity, dtype=np.float64)
    active = np.flatnonzero(p > 0)
    head = active[np.argsort(-p[active], kind="stable")][: max(1, int(np.ceil(head_share
                                                                              * active.size)))]
    in_head = np.isin(top, head) & (top >= 0)
    return in_head.sum(axis=1) / max(top.shape[1], 1)


def per_user_metrics(
    topk: np.ndarray,
    test_sets: Sequence[np.ndarray],
    k_values: Sequence[int] = (5, 10, 20),
    *,
    item_popularity: np.ndarray,
    item_features: np.ndarray | sp.spmatrix | None = None,
) -> dict[str, np.ndarray]:
    """Every per-user metric at every k (``name@k``), one value per user with test items.

    Beyond-accuracy metrics use the same users as the accuracy ones, so every vector of one
    result is aligned on the same population (and two models' vectors on the same users pair).
    """
    top = _as_topk(topk)
    if top.shape[1] < max(k_values):
        raise ValueError(f"topk has {top.shape[1]} columns, k_values need {max(k_values)}")
    judged = top[np.array([len(t) > 0 for t in test_sets], dtype=bool)]
    out: dict[str, np.ndarray] = {}
    for k in k_values:
        out |= {f"{name}@{k}": v for name, v in accuracy_per_user(top, test_sets, k).items()}
        if item_features is not None:
            out[f"diversity@{k}"] = diversity_per_list(judged[:, :k], item_features)
        out[f"novelty@{k}"] = novelty_per_list(judged[:, :k], item_popularity)
    return out


def evaluate_topk(
    topk: np.ndarray,
    test_sets: Sequence[np.ndarray],
    k_values: Sequence[int] = (5, 10, 20),
    *,
    n_items: int,
    item_popularity: np.ndarray,
    item_features: np.ndarray | sp.spmatrix | None = None,
) -> dict[str, float]:
    """All metrics at every k, as ``name@k`` keys: the means of ``per_user_metrics`` and the
    catalogue coverage of the same users' lists."""
    per_user = per_user_metrics(topk, test_sets, k_values, item_popularity=item_popularity,
                                item_features=item_features)
    top = _as_topk(topk)
    judged = top[np.array([len(t) > 0 for t in test_sets], dtype=bool)]
    out = {name: _mean(values) for name, values in per_user.items()}
    for k in k_values:
        out[f"coverage@{k}"] = catalogue_coverage(judged[:, :k], n_items)
    return out
