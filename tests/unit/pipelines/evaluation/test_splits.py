"""The validation split on a hand-made feature set: who is judged, on what, against what."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

from pipelines.evaluation.splits import K_VALUES, evaluate_on_split, validation_split

USERS = ["[UNK]", "u1", "u2", "u3"]
N_ITEMS = 7  # vocabulary ids 0 ([UNK]) .. 6


@dataclass
class Pairs:
    """The two columns of ``Interactions`` the split reads."""

    user: np.ndarray
    item: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


def _features(train: list[tuple[int, int]], valid: list[tuple[int, int]]) -> SimpleNamespace:
    def pairs(rows):
        users, items = zip(*rows, strict=True) if rows else ((), ())
        return Pairs(np.array(users, np.int64), np.array(items, np.int64))

    spec = SimpleNamespace(users=SimpleNamespace(values=USERS, size=len(USERS)),
                           items=SimpleNamespace(size=N_ITEMS),
                           categories=SimpleNamespace(size=2))
    table = SimpleNamespace(category=np.arange(N_ITEMS) % 2,
                            popularity=np.full(N_ITEMS, 0.25))
    return SimpleNamespace(spec=spec, table=table, train=pairs(train), valid=pairs(valid))


FEATURES = _features(
    train=[(1, 1), (1, 2), (1, 1), (2, 3), (3, 4)],  # u1 bought item 1 twice
    valid=[
        (1, 2), (1, 5), (1, 5), (1, 6),  # u1: item 2 again, then 5 (twice) and 6 are new
        (2, 3),  # u2 only rebuys: nothing to judge
        (3, 0),  # u3 buys an item unknown to the vocabulary
        (0, 5),  # an unknown shopper
    ],
)


def test_only_shoppers_with_fresh_known_items_are_judged() -> None:
    split = validation_split(FEATURES)

    assert split.rows.tolist() == [1], "u2 only rebought, u3's item and user 0 are unknown"
    assert [t.tolist() for t in split.test_sets] == [[5, 6]], "item 2 was bought before"
    assert split.users == USERS
    assert [s.tolist() for s in split.seen()] == [[1, 2]]


def test_train_matrix_is_binary_users_by_items() -> None:
    split = validation_split(FEATURES)

    assert split.train.shape == (len(USERS), N_ITEMS)
    assert split.train[1].toarray().tolist() == [[0, 1, 1, 0, 0, 0, 0]]
    assert set(split.train.data) == {1.0}, "a repeat purchase counts once"


def test_no_fresh_items_gives_an_empty_split() -> None:
    split = validation_split(_features(train=[(1, 1)], valid=[(1, 1), (0, 2), (2, 0)]))
    assert split.rows.tolist() == [] and split.test_sets == []


def test_evaluation_of_a_topk_matrix_on_the_split() -> None:
    split = validation_split(FEATURES)
    k = max(K_VALUES)
    perfect = np.array([[5, 6] + [0] * (k - 2)])
    miss = np.array([[3, 4] + [0] * (k - 2)])

    best, worst = (evaluate_on_split(top, split, FEATURES) for top in (perfect, miss))

    assert {f"ndcg@{k}" for k in K_VALUES} <= best.keys() and "diversity@10" in best
    assert best["recall@5"] == best["ndcg@10"] == pytest.approx(1.0)
    assert worst["recall@20"] == worst["hit_rate@20"] == 0.0
