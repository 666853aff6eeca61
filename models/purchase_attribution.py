"""Which past purchases an explanation credits: the wide part's per-purchase attributions
summed by item (``because you bought``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def purchase_attributions(purchases: np.ndarray, slots: Sequence[float]) -> dict[int, float]:
    """Item id -> the wide part's attribution of that past purchase (summed, should an id
    fill several slots)."""
    totals: dict[int, float] = {}
    for item, value in zip(np.asarray(purchases).reshape(-1), slots, strict=True):
        if item:
            totals[int(item)] = totals.get(int(item), 0.0) + float(value)
    return totals


def strongest_purchases(history: np.ndarray, slots: np.ndarray | Sequence, most: int = 2
                        ) -> list[list[tuple[int, float]]]:
    """Per row, the past purchases whose history slots' summed attribution is positive,
    strongest first, at most ``most``: ``purchase_attributions`` for a page of rows at once."""
    ids = np.asarray(history, np.int64)
    values = np.asarray(slots, np.float64).reshape(ids.shape)
    n, length = ids.shape
    if not n or not length:
        return [[] for _ in range(n)]
    order = np.argsort(ids, axis=1, kind="stable")
    ids, values = np.take_along_axis(ids, order, 1), np.take_along_axis(values, order, 1)
    starts = np.ones(ids.shape, bool)  # each distinct item's first slot once sorted
    starts[:, 1:] = ids[:, 1:] != ids[:, :-1]
    group = np.cumsum(starts, axis=1) - 1  # the item's column in its row's totals
    totals = np.bincount((group + np.arange(n)[:, None] * length).ravel(),
                         weights=values.ravel(), minlength=n * length).reshape(n, length)
    item = np.zeros(ids.shape, np.int64)
    item[np.nonzero(starts)[0], group[starts]] = ids[starts]
    wanted = (item != 0) & (totals > 0)
    best = np.argsort(np.where(wanted, -totals, np.inf), axis=1, kind="stable")[:, :most]
    return [[(int(item[r, c]), float(totals[r, c])) for c in best[r] if wanted[r, c]]
            for r in range(n)]
