"""A tiny shop and training config, small enough to train both stages in seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.train_config import TrainConfig

TINY = TrainConfig(retrieval_epochs=2, ranking_epochs=1, batch_size=16, dim=8, negatives=2,
                   hard_pool=3, retrieve_n=5, history_length=4, item_item=True, item_item_n=4,
                   # The deep part always counts: a tiny-shop shopper soon owns every item the
                   # wide part links to, and the wide part alone would score what is left 0.
                   deep_weights=(1.0,))


def tiny_shop() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    items = pd.DataFrame({
        "item_id": [f"I{i}" for i in range(12)],
        "title": [f"Red lamp {i}" if i % 2 else f"Blue mug {i}" for i in range(12)],
        "category": ["lighting" if i % 2 else "kitchen" for i in range(12)],
        "brand": ["Nord" if i < 6 else None for i in range(12)],
        "price": [5.0 + i for i in range(12)],
    })
    n = 200
    events = pd.DataFrame({
        "event_id": [f"E{i}" for i in range(n)],
        "user_id": [f"u_{i % 10:016x}" for i in range(n)],
        "item_id": [f"I{(i % 10) % 2 + 2 * int(rng.integers(0, 6))}" for i in range(n)],
        "timestamp": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
    })
    users = pd.DataFrame({"user_id": events["user_id"].unique(), "country": "UK"})
    return events, items, users
