"""The ranker's hard negatives are never the shopper's own positives (nor the unknown item).

Labelling a shopper's other purchases as negatives would teach the ranker to demote exactly what
they like. Checked on the tiny shop's training interactions with every negative hard
(``hard_share=1``) and an untrained retrieval model: the property must not depend on training.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.fit import retrieval_model
from models.training_data import ranking_set
from pipelines.data.features import FeatureSet, build_features
from tests.support.tiny import TINY, tiny_shop

NEGATIVES = 4


@pytest.fixture(scope="module")
def features() -> FeatureSet:
    return build_features(*tiny_shop(), history_length=TINY.history_length)


def _negatives(features: FeatureSet, hard_pool: int) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) of every negative of the training ranking set, in order."""
    config = replace(TINY, hard_share=1.0, negatives=NEGATIVES, hard_pool=hard_pool)
    retrieval = retrieval_model(features.spec, features.table, config)
    data = features.train
    dataset = ranking_set(retrieval, data, features.table, config, np.random.default_rng(0),
                           batch_size=len(data) * (1 + NEGATIVES), shuffle=False)
    (batch,) = list(dataset)
    label = batch["label"].numpy()
    assert label.tolist() == [1.0, *[0.0] * NEGATIVES] * len(data), "a positive, its negatives"
    negative = label == 0
    return batch["user_id"].numpy()[negative], batch["item_id"].numpy()[negative]


def _positives(features: FeatureSet) -> dict[int, set[int]]:
    positives: dict[int, set[int]] = {}
    for user, item in zip(features.train.user, features.train.item, strict=True):
        positives.setdefault(int(user), set()).add(int(item))
    return positives


def _eligible(features: FeatureSet) -> int:
    """Fewest items a shopper can get as a hard negative: all but [UNK] and their positives."""
    n_items = len(features.table.item_id)
    return min(n_items - 1 - len(items) for items in _positives(features).values())


def _check(features: FeatureSet, hard_pool: int) -> None:
    users, items = _negatives(features, hard_pool)
    positives = _positives(features)
    wrong = [(u, i) for u, i in zip(users.tolist(), items.tolist(), strict=True)
             if i == 0 or i in positives[u]]
    assert len(users) == len(features.train) * NEGATIVES
    assert wrong == [], f"{len(wrong)} hard negatives are the shopper's positives or [UNK]"


@pytest.mark.parametrize("hard_pool", [1, TINY.hard_pool, "eligible"])
def test_hard_negatives_are_never_the_shoppers_positives(features, hard_pool) -> None:
    pool = _eligible(features) if hard_pool == "eligible" else hard_pool
    assert pool <= _eligible(features)
    _check(features, pool)


def test_hard_negatives_when_the_pool_exceeds_the_eligible_items(features) -> None:
    _check(features, len(features.table.item_id) - 1)


def test_validation_hard_negatives_are_not_training_positives(features) -> None:
    """On the validation window a shopper's training purchases are positives too."""
    config = replace(TINY, hard_share=1.0, negatives=NEGATIVES, hard_pool=TINY.hard_pool)
    retrieval = retrieval_model(features.spec, features.table, config)
    valid, train = features.valid, features.train
    dataset = ranking_set(retrieval, valid, features.table, config, np.random.default_rng(0),
                           batch_size=len(valid) * (1 + NEGATIVES), shuffle=False, earlier=train)
    (batch,) = list(dataset)
    negative = batch["label"].numpy() == 0
    bought: dict[int, set[int]] = {}
    for user, item in zip([*train.user, *valid.user], [*train.item, *valid.item], strict=True):
        bought.setdefault(int(user), set()).add(int(item))
    pairs = zip(batch["user_id"].numpy()[negative].tolist(),
                batch["item_id"].numpy()[negative].tolist(), strict=True)
    assert [(u, i) for u, i in pairs if i == 0 or i in bought[u]] == []
