"""Strong non-neural baselines the TFRS model has to beat, and the shared top-k helper.

Popularity is the floor every recommender must clear; EASE (Steck 2019) is a closed-form linear
item-item model that is notoriously hard to beat on small implicit data sets, so a neural model
that loses to it is not worth serving. Both work on a users x items CSR matrix of the training
interactions; ``score`` takes row indices of that matrix so that evaluation code can batch users
without knowing which model it is driving. Pure: no file or network I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
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


# EASE's λ grid, log-spaced: chosen per data set on a validation split, never hard-coded.
LAMBDA_GRID: tuple[float, ...] = (10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 3000.0)


class EASE:
    """Embarrassingly Shallow Autoencoder: B = -P / diag(P), diag(B) = 0, P = (X^T X + λI)^-1.

    The inverse is taken in float64 (G is ill-conditioned for small λ); B is kept in float32,
    which halves memory and scoring time with no visible effect on rankings. It costs
    O(items^3): with ``max_items`` set and a larger catalogue, B covers only the ``max_items``
    most popular items (``kept``) and every other item scores -inf (never recommended).
    """

    def __init__(self, lambda_: float = 500.0, max_items: int | None = None) -> None:
        if lambda_ <= 0:
            raise ValueError("lambda_ must be positive")
        self.lambda_ = lambda_
        self.max_items = max_items
        self.x: sp.csr_matrix | None = None
        self.b: np.ndarray | None = None
        self.kept: np.ndarray | None = None  # item columns B covers, when restricted

    @property
    def restricted(self) -> bool:
        return self.kept is not None

    def fit(self, train: sp.csr_matrix) -> Self:
        x = _binary(train)
        self.kept = popular_items(x, self.max_items)
        if self.kept is not None:
            x = x[:, self.kept]
        self.x = x.astype(np.float32)
        self.b = ease_weights(x, self.lambda_)
        self.n_items = train.shape[1]
        return self

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        if self.x is None or self.b is None:
            raise RuntimeError("EASE.score called before fit")
        scores = np.asarray(self.x[np.asarray(user_rows)] @ self.b)
        if self.kept is None:
            return scores
        full = np.full((scores.shape[0], self.n_items), -np.inf, np.float32)
        full[:, self.kept] = scores
        return full


def restricted_size(n_items: int, max_items: int | None) -> int | None:
    """How many items EASE covers in a catalogue of ``n_items``: ``max_items`` when the catalogue
    is larger (the one rule for restricting EASE), None when it covers them all."""
    return None if max_items is None or n_items <= max_items else max_items


def popular_items(train: sp.spmatrix, max_items: int | None) -> np.ndarray | None:
    """The ``max_items`` columns with most users, sorted; None when the catalogue fits."""
    if restricted_size(train.shape[1], max_items) is None:
        return None
    counts = np.asarray(_binary(train).sum(axis=0)).ravel()
    return np.sort(np.argsort(-counts, kind="stable")[:max_items])


def ease_weights(train: sp.spmatrix, lambda_: float) -> np.ndarray:
    """EASE's closed form B (items x items, zero diagonal, float32) for a binary matrix."""
    x = _binary(train)
    g = (x.T @ x).toarray()
    g[np.diag_indices_from(g)] += lambda_
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))  # column j divided by -P_jj
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def choose_ease_lambda(
    fit: sp.csr_matrix,
    holdout: Sequence[np.ndarray],
    grid: Sequence[float] = LAMBDA_GRID,
    k: int = 10,
    max_items: int | None = None,
) -> tuple[float, dict[float, float]]:
    """The λ of ``grid`` with the best NDCG@k on ``holdout`` (per row of ``fit``: item columns
    held out of it), and every λ's figure. Ties go to the larger λ (the smoother model). With
    more than ``max_items`` items, chosen as ``EASE(max_items=...)`` fits: on the popular ones.

    One eigendecomposition G = V diag(s) V^T serves the whole grid: (G + λI)^-1 = P =
    V diag(1 / (s + λ)) V^T. The judged rows' scores X B are (X V) diag(1 / (s + λ)) V^T with
    column j divided by -P_jj: one rows x n x n product per λ, never B itself (n x n x n). B's
    zero diagonal only changes the scores of items a row holds, which are never recommended.
    """
    if not grid:
        raise ValueError("the λ grid is empty")
    x = _binary(fit)
    kept = popular_items(x, max_items)
    if kept is not None:
        x = x[:, kept]
        holdout = [np.flatnonzero(np.isin(kept, h)) for h in holdout]
    rows = np.flatnonzero([len(h) > 0 for h in holdout])
    s, v = np.linalg.eigh((x.T @ x).toarray())
    v = v.astype(np.float32)  # the scores only need their order; float32 halves the products
    judged = x[rows]
    projected = np.asarray(judged @ v, np.float32)  # (rows, n): X V, shared by every λ
    held = judged.nonzero()
    relevant = [holdout[r] for r in rows]
    scores: dict[float, float] = {}
    for lambda_ in grid:
        inverse = (1.0 / (s + lambda_)).astype(np.float32)
        diagonal = (v * v) @ inverse  # P_jj
        predicted = ((projected * inverse) @ v.T) / -diagonal
        predicted[held] = -np.inf
        scores[float(lambda_)] = ndcg(top_k(predicted, k), relevant, k)
    best = max(scores, key=lambda lam: (scores[lam], lam))
    return best, scores


def ndcg(topk: np.ndarray, relevant: Sequence[np.ndarray], k: int) -> float:
    """Mean NDCG@k of ranked lists against sets of relevant items (binary gains)."""
    if len(relevant) == 0:
        return 0.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    total = 0.0
    for row, items in zip(topk[:, :k], relevant, strict=True):
        hits = np.isin(row, items)
        total += float(discounts[: len(row)][hits].sum() / discounts[: min(len(items), k)].sum())
    return total / len(relevant)


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
