"""The wide item-item part: per-slot terms w_j * B[h_j, item] that add up to EASE's score."""

from __future__ import annotations

import numpy as np

from models.item_item import ItemItem


def test_slots_hold_each_past_purchase_s_term_and_sum_to_ease() -> None:
    rng = np.random.default_rng(0)
    b = rng.normal(size=(5, 5)).astype(np.float32)
    b[0, :] = b[:, 0] = 0.0
    layer = ItemItem(5, 3)
    layer.assign_matrix(b)
    history = np.array([[0, 2, 3], [1, 1, 4]], np.int32)
    items = np.array([4, 2], np.int32)

    slots = layer(history, items).numpy()

    assert slots[0].tolist() == [0.0, b[2, 4], b[3, 4]], "padding contributes nothing"
    assert np.allclose(slots.sum(1), [b[2, 4] + b[3, 4], b[1, 2] + b[4, 2]])
    layer.set_scale(2.0)
    assert np.allclose(layer(history, items).numpy(), 2 * slots)


def test_a_disabled_part_keeps_its_shape_and_adds_nothing() -> None:
    layer = ItemItem(5, 3, enabled=False)
    layer.assign_matrix(np.ones((5, 5)))  # ignored
    out = layer(np.ones((2, 3), np.int32), np.ones(2, np.int32)).numpy()
    assert out.shape == (2, 3) and not out.any()
    assert tuple(layer.matrix.shape) == (1, 1)


def test_a_repeated_purchase_counts_once_at_its_latest_slot() -> None:
    b = np.arange(25, dtype=np.float32).reshape(5, 5)
    b[0, :] = b[:, 0] = 0.0
    layer = ItemItem(5, 4)
    layer.assign_matrix(b)
    slots = layer(np.array([[2, 3, 2, 0]], np.int32), np.array([4], np.int32)).numpy()
    assert slots[0].tolist() == [0.0, b[3, 4], b[2, 4], 0.0]
