"""The collaborative statistics the ranker reads as constants: EASE's item-item matrix and the
items' recent popularity, both as of the end of the events they are fitted on.

Why constants beside learned weights: a closed-form item-item model (EASE, Steck 2019) is hard
to beat on implicit data, so the ranker starts from it (the wide part) rather than relearning it
from sparse ids, and adds what EASE cannot see, such as what is selling now. The ranker learns
on events *later* than the ones the statistics were fitted on (``inner_split``), the situation it
serves in, and the statistics are refitted on all events afterwards. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from models.baselines import LAMBDA_GRID, choose_ease_lambda, ease_weights

TREND_DAYS = 7


@dataclass(frozen=True)
class Collaborative:
    """EASE's B over vocabulary ids (row and column 0, the unknown item, are zero), its λ, and
    each item's recent popularity feature."""

    matrix: np.ndarray  # (n, n) float32
    lambda_: float
    trend: np.ndarray  # (n,) float32: log(1 + share of the last days' events x n)


def user_item_matrix(users: np.ndarray, items: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Binary users x items matrix (rows: user ids as given) from event arrays."""
    n_users = int(users.max()) + 1 if len(users) else 1
    x = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def inner_split(timestamps: np.ndarray, share: float, kind: str, seed: int) -> np.ndarray:
    """Mask of the events held out as "later": the latest ``share`` of time (``time``) or a
    seeded random ``share`` (``random``, for data whose evaluation split is random)."""
    n = len(timestamps)
    if kind == "time":
        ns = np.asarray(timestamps).astype("datetime64[ns]").astype(np.int64)
        return ns >= np.quantile(ns, 1 - share) if n else np.zeros(0, bool)
    if kind == "random":
        held = np.zeros(n, bool)
        held[np.random.default_rng(seed).permutation(n)[: int(n * share)]] = True
        return held
    raise ValueError(f"unknown inner split {kind!r}: 'time' or 'random'")


def holdout_sets(fit: sp.csr_matrix, users: np.ndarray, items: np.ndarray) -> list[np.ndarray]:
    """Per row of ``fit``: the held-out items it does not already hold (the answers λ is chosen
    on: EASE never recommends what a shopper has)."""
    later = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=fit.shape)
    later = later - later.multiply(fit > 0)
    later.eliminate_zeros()
    later.sort_indices()
    return [later.indices[later.indptr[r] : later.indptr[r + 1]] for r in range(fit.shape[0])]


def choose_lambda(users: np.ndarray, items: np.ndarray, later: np.ndarray, n_items: int,
                  grid: tuple[float, ...] = LAMBDA_GRID) -> float:
    """EASE's λ chosen on the events: fitted on the earlier ones, judged on the ``later``."""
    fit = user_item_matrix(users[~later], items[~later], n_items)
    fit.resize((max(fit.shape[0], int(users.max()) + 1), n_items))
    holdout = holdout_sets(fit, users[later], items[later])
    holdout = [h[h != 0] for h in holdout]
    if not any(len(h) for h in holdout):
        return float(grid[len(grid) // 2])
    return choose_ease_lambda(fit, holdout, grid)[0]


def recent_popularity(items: np.ndarray, timestamps: np.ndarray, n_items: int,
                      days: int = TREND_DAYS) -> np.ndarray:
    """log(1 + n x share of the events in the last ``days`` days): what is selling now."""
    trend = np.zeros(n_items, np.float32)
    if len(items) == 0:
        return trend
    ns = np.asarray(timestamps).astype("datetime64[ns]")
    recent = ns >= ns.max() - np.timedelta64(days, "D")
    counts = np.bincount(items[recent], minlength=n_items).astype(np.float64)
    counts[0] = 0.0
    share = counts / max(counts.sum(), 1.0)
    return np.log1p(share * n_items).astype(np.float32)


def fit_collaborative(users: np.ndarray, items: np.ndarray, timestamps: np.ndarray,
                      n_items: int, lambda_: float, days: int = TREND_DAYS) -> Collaborative:
    """EASE's B at ``lambda_`` and the recent popularity, from these events."""
    b = ease_weights(user_item_matrix(users, items, n_items), lambda_)
    b[0, :] = 0.0
    b[:, 0] = 0.0
    return Collaborative(b, lambda_, recent_popularity(items, timestamps, n_items, days))
