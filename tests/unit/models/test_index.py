"""The approximate index finds what exact search finds, and never returns banned items."""

from __future__ import annotations

import numpy as np

from models.index import BruteForceIndex, HnswIndex, build_index


def _unit(rows: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_hnsw_recalls_exact_neighbours_and_respects_bans() -> None:
    items, queries = _unit(3000, 16, 0), _unit(20, 16, 1)
    banned = [np.array([0, 5, 7])] * len(queries)
    exact_ids, _ = BruteForceIndex(items).search(queries, 10, banned)
    approx_ids, approx_scores = HnswIndex(items).search(queries, 10, banned)

    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx_ids, exact_ids,
                                                                  strict=True)])
    assert recall >= 0.9
    assert not np.isin(approx_ids, [0, 5, 7]).any()
    assert (np.diff(approx_scores, axis=1) <= 1e-6).all(), "best first"


def test_index_kind_follows_catalogue_size() -> None:
    assert isinstance(build_index(_unit(50, 4, 2)), BruteForceIndex)
    assert isinstance(build_index(_unit(50, 4, 2), threshold=10), HnswIndex)
