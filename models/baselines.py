"""Strong non-neural baselines the TFRS model has to beat, and the shared top-k helper.

Popularity is the floor every recommender must clear; EASE (Steck 2019) is a closed-form linear
item-item model that is notoriously hard to beat on small implicit data sets, so a neural model
that loses to it is not worth serving. Both work on a users x items CSR matrix of the training
interactions; ``score`` takes row indices of that matrix so that evaluation code can batch users
without knowing which model it is driving. Pure: no file or network I/O.
"""

from __future__ import annotations

from typing import Protocol, Self, runtime_checkable

import numpy as np
import scipy.sparse as sp


@runtime_checkable
class Recommender(Protocol):
    """What the benchmark protocols need from a model, baseline or neural."""

    def fit(self, train: sp.csr_matrix) -> Self:
        """Learn from the users x items training matrix."""
        ...

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        """Scores of every item for the given training-matrix rows, len(user_rows) x n_items."""
        ...


def _binary(train: sp.spmatrix) -> sp.csr_matrix:
    """0/1 copy: repeat purchases or ratings must not weigh more than a single interaction."""
    x = sp.csr_matrix(train, dtype=np.float64, copy=True)
    x.sum_duplicates()
    x.eliminate_zeros()
    x.data[:] = 1.0
    return x


class Popularity:
    """Recommend the items most users interacted with, the same list for everyone."""

    def __init__(self) -> None:
        self.item_counts: np.ndarray | None = None

    def fit(self, train: sp.csr_matrix) -> Self:
        # Distinct users per item, so a few bulk buyers cannot make an item "popular".
        self.item_counts = np.asarray(_binary(train).sum(axis=0)).ravel()
        return self

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        if self.item_counts is None:
            raise RuntimeError("Popularity.score called before fit")
        rows = np.asarray(user_rows)
        return np.broadcast_to(self.item_counts, (len(rows), len(self.item_counts))).copy()


class EASE:
    """Embarrassingly Shallow Autoencoder: B = -P / diag(P), diag(B) = 0, P = (X^T X + λI)^-1.

    The inverse is taken in float64 (G is ill-conditioned for small λ); B is kept in float32,
    which halves memory and scoring time with no visible effect on rankings.
    """

    def __init__(self, lambda_: float = 500.0) -> None:
        if lambda_ <= 0:
            raise ValueError("lambda_ must be positive")
        self.lambda_ = lambda_
        self.x: sp.csr_matrix | None = None
        self.b: np.ndarray | None = None

    def fit(self, train: sp.csr_matrix) -> Self:
        x = _binary(train)
        g = (x.T @ x).toarray()
        g[np.diag_indices_from(g)] += self.lambda_
        p = np.linalg.inv(g)
        b = p / (-np.diag(p))  # column j divided by -P_jj
        b[np.diag_indices_from(b)] = 0.0
        self.x = x.astype(np.float32)
        self.b = b.astype(np.float32)
        return self

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        if self.x is None or self.b is None:
            raise RuntimeError("EASE.score called before fit")
        return np.asarray(self.x[np.asarray(user_rows)] @ self.b)


def top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Indices of the k best items per row, best first, never recommending excluded items.

    ``exclude`` holds one CSR row per score row (usually the users' training items); those
    entries are set to -inf on a copy so the caller's scores stay intact. argpartition keeps this
    O(n_items) per user; only the k winners are sorted.
    """
    scores = np.array(scores, dtype=np.float64, copy=True, ndmin=2)
    n_rows, n_items = scores.shape
    if exclude is not None:
        exclude = sp.csr_matrix(exclude)
        if exclude.shape[0] != n_rows:
            raise ValueError(f"exclude has {exclude.shape[0]} rows, scores have {n_rows}")
        rows = np.repeat(np.arange(n_rows), np.diff(exclude.indptr))
        scores[rows, exclude.indices] = -np.inf
    k = min(k, n_items)
    if k <= 0:
        return np.empty((n_rows, 0), dtype=np.int64)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)
