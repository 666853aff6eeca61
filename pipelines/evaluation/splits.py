"""The validation problem every model of a run is judged on, and the judging.

The baselines and each candidate answer the same question on the same feature set: for each
shopper who bought something new in the validation window, which of those items come up in a
top-k list that leaves out what they already bought? Keeping the split and the scoring in one
place means the figures the gate compares are comparable by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.inputs import Interactions
from pipelines.data.features import FeatureSet
from pipelines.evaluation.metrics import evaluate_topk

K_VALUES = (5, 10, 20)


@dataclass
class Split:
    """The validation problem in matrix form, shared by the model and the baselines."""

    train: sp.csr_matrix  # users x items (feature-spec vocabulary ids), binary
    users: list[str]  # row -> pseudonymised user id
    rows: np.ndarray  # rows with validation items
    test_sets: list[np.ndarray]  # per row in ``rows``: items first bought in the window

    def seen(self) -> list[np.ndarray]:
        """Per row in ``rows``: the items bought before the window, left out of every list."""
        return [self.train[r].indices for r in self.rows]


def validation_split(features: FeatureSet) -> Split:
    """Rows for the known shoppers with items new to them in the validation window's selection
    slice (all of it when the feature set keeps no gate slice): what training, the grid and
    every weight are chosen on.

    The unknown user and the unknown item (vocabulary id 0) are dropped: neither can be judged.
    """
    return _split(features, features.valid)


def gate_split(features: FeatureSet) -> Split:
    """The same question on the gate slice (``FeatureSet.gate``), which nothing was fitted or
    chosen on: what the gate judges every model by. A feature set without one (a benchmark's,
    whose own test set plays that part) judges on its validation events."""
    return _split(features, features.gate if features.gate is not None else features.valid)


def _split(features: FeatureSet, held_out: Interactions) -> Split:
    spec = features.spec
    users = list(spec.users.values)
    train = sp.csr_matrix(
        (np.ones(len(features.train), np.float32), (features.train.user, features.train.item)),
        shape=(spec.users.size, spec.items.size),
    )
    train.data[:] = 1.0
    valid = pd.DataFrame({"user": held_out.user, "item": held_out.item})
    valid = valid[(valid["user"] > 0) & (valid["item"] > 0)]
    rows, test_sets = [], []
    for user, group in valid.groupby("user"):
        seen = train[user].indices
        fresh = np.setdiff1d(group["item"].unique(), seen)
        if len(fresh):
            rows.append(int(user))
            test_sets.append(fresh)
    return Split(train, users, np.array(rows, dtype=np.int64), test_sets)


def evaluate_on_split(topk: np.ndarray, split: Split, features: FeatureSet) -> dict[str, float]:
    """Every metric at ``K_VALUES`` for a top-k matrix with one row per ``split.rows``."""
    categories = np.eye(features.spec.categories.size, dtype=np.float32)[features.table.category]
    return evaluate_topk(
        topk, split.test_sets, K_VALUES, n_items=features.spec.items.size,
        item_popularity=features.table.popularity, item_features=categories,
    )
