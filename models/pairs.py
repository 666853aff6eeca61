"""One user's query features paired with several items: the rows the ranker and IG read.

Shared by the explanation check and the serving endpoint so both explain exactly what the ranker
scored for a recommendation list.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def pair_features(
    recommender, user_key: str, items: np.ndarray, when: pd.Timestamp | None = None
) -> dict[str, np.ndarray]:
    """The user's features repeated once per item index in ``items``, with ``item_id`` added."""
    base = recommender.features_for(user_key, when)
    tiled = {k: np.repeat(v, len(items), axis=0) for k, v in base.items()}
    tiled["item_id"] = np.asarray(items).astype(np.int32)
    return tiled


def typical_pairs(recommender, users: list[str], size: int = 512, seed: int = 0
                  ) -> dict[str, np.ndarray]:
    """Known shoppers at any hour and weekday, each paired with a uniformly drawn catalogue item.

    Averaged (``models.explain.average_baseline``) this is the "typical shopper looking at a
    typical item" reference point of integrated gradients. Averaging over recommended items
    instead would cancel what they all share: often the very preference that got them picked.
    """
    if not users:
        raise ValueError("the model knows no users: nothing to average a baseline over")
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(users), size=size, replace=len(users) < size)
    rows = [recommender.features_for(users[i]) for i in picked]
    pairs = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    pairs["hour"] = rng.integers(0, 24, size).astype(np.int32)
    pairs["day_of_week"] = rng.integers(0, 7, size).astype(np.int32)
    pairs["item_id"] = rng.integers(1, recommender.spec.items.size, size).astype(np.int32)
    return pairs
