"""The wide item-item part: per-purchase terms w_r * B[j, item] that add up to EASE's score,
over the shopper's whole record of distinct purchases, however long."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.feature_spec import FeatureSpec
from models.inputs import bag_matrix, first_purchases, interactions, pad_left
from models.item_item import RECENCY_BUCKETS, ItemItem, recency_buckets
from models.training_data import gather_bags


def test_terms_hold_each_past_purchase_s_share_and_sum_to_ease() -> None:
    rng = np.random.default_rng(0)
    b = rng.normal(size=(5, 5)).astype(np.float32)
    b[0, :] = b[:, 0] = 0.0
    layer = ItemItem(5)
    layer.assign_matrix(b)
    purchases = pad_left([np.array([2, 3]), np.array([1, 3, 4])])
    items = np.array([4, 2], np.int32)

    terms = layer(purchases, None, items).numpy()

    assert terms[0].tolist() == [0.0, b[2, 4], b[3, 4]], "padding contributes nothing"
    ease = np.asarray(bag_matrix([np.array([2, 3]), np.array([1, 3, 4])], 5) @ b)
    assert np.allclose(terms.sum(1), ease[[0, 1], items]), "with unit weights: EASE's score"
    layer.set_scale(2.0)
    assert np.allclose(layer(purchases, None, items).numpy(), 2 * terms)


def test_a_record_longer_than_any_window_is_read_whole() -> None:
    """3,000 distinct purchases: every one of them adds its term (a window of recent slots
    would have read the last few dozen)."""
    n = 3_002
    b = np.zeros((n, n), np.float32)
    b[1:-1, n - 1] = 1.0  # every item points at the last one
    layer = ItemItem(n)
    layer.assign_matrix(b)
    record = np.arange(1, n - 1)
    assert float(layer(pad_left([record]), None, np.array([n - 1])).numpy().sum()) == n - 2


def test_recency_buckets_double_in_width_from_the_latest_purchase() -> None:
    buckets = recency_buckets(np.zeros((1, 8), np.int32)).numpy()[0]
    assert buckets[::-1].tolist() == [0, 1, 1, 2, 2, 2, 2, 3]
    wide = recency_buckets(np.zeros((1, 100_000), np.int32)).numpy()[0]
    assert wide.max() == RECENCY_BUCKETS - 1


def test_a_disabled_part_keeps_its_shape_and_adds_nothing() -> None:
    layer = ItemItem(5, enabled=False)
    layer.assign_matrix(np.ones((5, 5)))  # ignored
    out = layer(np.ones((2, 3), np.int32), None, np.ones(2, np.int32)).numpy()
    assert out.shape == (2, 3) and not out.any()
    assert tuple(layer.matrix.shape) == (1, 1)


def test_the_window_reading_counts_a_repeat_once_at_its_latest_slot() -> None:
    """``record=False``: the deep part's recent slots, one learnt weight per slot; an item bought
    twice in the window adds one term (EASE's row is binary), at its most recent slot."""
    b = np.zeros((4, 4), np.float32)
    b[1, 3], b[2, 3] = 1.0, 10.0
    layer = ItemItem(4, record=False, history_length=3)
    layer.assign_matrix(b)
    history = np.array([[1, 2, 1]], np.int32)

    terms = layer(None, history, np.array([3], np.int32)).numpy()

    assert terms.tolist() == [[0.0, 10.0, 1.0]], "slot 0 repeats slot 2: only the latest counts"
    assert layer.input_name == "history" and ItemItem(4).input_name == "purchases"
    layer.recency_weights.assign([1.0, 2.0, 3.0])
    assert layer(None, history, np.array([3], np.int32)).numpy().tolist() == [[0.0, 20.0, 3.0]]


def _events() -> tuple[FeatureSpec, pd.DataFrame]:
    rows = [("a", "i1"), ("a", "i2"), ("a", "i1"), ("a", "i3"), ("b", "i2"), ("b", "i2")]
    events = pd.DataFrame({
        "event_id": [str(i) for i in range(len(rows))],
        "user_id": [u for u, _ in rows], "item_id": [i for _, i in rows],
        "timestamp": pd.date_range("2024-01-01", periods=len(rows), freq="h", tz="UTC"),
    })
    items = pd.DataFrame({"item_id": ["i1", "i2", "i3"], "title": "", "category": "c",
                          "brand": None, "price": 1.0})
    spec = FeatureSpec.build(events, items, pd.DataFrame({"user_id": ["a", "b"]}),
                             history_length=2)
    return spec, events


def test_each_event_s_bag_is_the_distinct_items_bought_before_it() -> None:
    spec, events = _events()
    data = interactions(spec, events)
    i1, i2, i3 = spec.items.lookup(["i1", "i2", "i3"]).tolist()
    assert [b.tolist() for b in data.bags()] == [[], [i1], [i1, i2], [i1, i2], [], [i2]]
    assert data.history[3].tolist() == [i2, i1], "the deep part's window keeps repeats"
    assert first_purchases(spec, events)["a"].tolist() == [i1, i2, i3]
    every = interactions(spec, events, leave_one_out=True)
    assert [b.tolist() for b in every.bags()][:4] == [[i1, i2, i3]] * 4


def test_training_batches_slice_the_same_bags_as_numpy() -> None:
    spec, events = _events()
    data = interactions(spec, events).subset(np.array([True, False, True, True, True, True]))
    rows = np.array([3, 0, 1, 4])
    batch = gather_bags(data)(rows).numpy()
    bags = data.bags()
    assert batch.tolist() == pad_left([bags[r] for r in rows]).tolist()
