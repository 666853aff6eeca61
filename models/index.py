"""Candidate indexes for the retrieval stage, chosen by catalogue size.

Small catalogues are scored exactly with one matrix product (fast, and exact is free). Large ones
use an approximate HNSW index from faiss (ScaNN's ops do not load against TF 2.21): it searches a
few more neighbours than asked so that excluded or filtered items can be dropped afterwards.
"""

from __future__ import annotations

import numpy as np

ANN_THRESHOLD = 20_000  # items; below this brute force is as fast and exact


class BruteForceIndex:
    def __init__(self, embeddings: np.ndarray) -> None:
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)

    def search(
        self, queries: np.ndarray, n: int, banned: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` item ids and scores per query, never returning a banned id (score -inf)."""
        scores = queries @ self.embeddings.T
        for row, items in enumerate(banned):
            scores[row, items] = -np.inf
        n = min(n, scores.shape[1])
        ids = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        return ids, np.take_along_axis(scores, ids, axis=1)


class HnswIndex:
    """Approximate inner-product search; embeddings are unit vectors, so this is cosine."""

    def __init__(self, embeddings: np.ndarray, neighbours: int = 32, ef_search: int = 256):
        import faiss

        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.index = faiss.IndexHNSWFlat(self.embeddings.shape[1], neighbours,
                                         faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efSearch = ef_search
        self.index.add(self.embeddings)

    def search(
        self, queries: np.ndarray, n: int, banned: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        extra = max((len(b) for b in banned), default=0)
        want = min(n + extra, len(self.embeddings))
        scores, ids = self.index.search(np.ascontiguousarray(queries, np.float32), want)
        out_ids = np.zeros((len(queries), n), np.int64)
        out_scores = np.full((len(queries), n), -np.inf, np.float32)
        for row in range(len(queries)):
            keep = (ids[row] >= 0) & ~np.isin(ids[row], banned[row])
            found = ids[row][keep][:n]
            out_ids[row, : len(found)] = found
            out_scores[row, : len(found)] = scores[row][keep][:n]
        return out_ids, out_scores


def build_index(embeddings: np.ndarray, threshold: int = ANN_THRESHOLD):
    return HnswIndex(embeddings) if len(embeddings) > threshold else BruteForceIndex(embeddings)
