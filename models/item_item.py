"""The ranker's wide item-item part: one contribution per distinct past purchase, w_r * B[j, item].

It reads the shopper's whole purchase record as a bag of distinct items (``purchases``, every
item ever bought, in first-purchase order), not the deep part's window of recent slots: summed
with w_r = 1 the contributions are exactly EASE's score of the item given the shopper's row, so
the ranker starts from the strongest linear baseline instead of relearning it, for a shopper
with 3 purchases as for one with 3,000. Kept per purchase, they are also an exact, additive
account of which past purchase drove a recommendation: integrated gradients over a linear term
returns the terms themselves, so "because you bought <title>" is the model's own arithmetic.

B is a constant (non-trainable, assigned from ``Collaborative``). The trainable weights w_r
depend on a purchase's recency rank r (0 = the item first bought most recently), in buckets
that double in width (1, 2, 4, ... items): how much the latest purchases count against older
ones, learnt, with EASE (every weight equal) as the starting point.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.towers import known_ids

RECENCY_BUCKETS = 16  # ranks 0, 1-2, 3-6, ...: the last bucket holds every rank past 32,766


class ItemItem(tf.keras.layers.Layer):
    """(purchases (b, M), item ids (b,)) -> per-purchase contributions (b, M); padding gives 0.

    ``purchases`` is right-aligned (padding 0 in front, the latest first purchase last); M may
    differ from batch to batch. ``enabled=False`` (a catalogue too large for an n x n matrix)
    keeps a 1 x 1 matrix and returns zeros, so the ranker's inputs and explanations keep their
    shape.
    """

    def __init__(self, n_items: int, enabled: bool = True, record: bool = True,
                 history_length: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_items, self.enabled, self.record = n_items, enabled, record
        size = n_items if enabled else 1
        self.matrix = self.add_weight(name="ease_matrix", shape=(size, size),
                                      initializer="zeros", trainable=False)
        # ``record=False`` reads the deep part's window of recent slots instead (a repeat counts
        # once, at its latest slot), one weight per slot: where what a shopper bought lately
        # predicts the next basket better than everything they ever bought (validation decides,
        # ``TrainConfig.item_item_record``).
        self.recency_weights = self.add_weight(
            name="recency_weights", shape=(RECENCY_BUCKETS if record else history_length,),
            initializer="ones", trainable=True)

    @property
    def input_name(self) -> str:
        """The input whose ids the per-purchase terms line up with."""
        return "purchases" if self.record else "history"

    def assign_matrix(self, matrix: np.ndarray) -> None:
        """Install B (n x n, row/column 0 zero); a no-op when the part is disabled."""
        if self.enabled:
            self.matrix.assign(np.asarray(matrix, np.float32))

    def set_scale(self, value: float) -> None:
        """Every recency weight to ``value``: B's scores in logit units before training."""
        self.recency_weights.assign(tf.fill(self.recency_weights.shape, float(value)))

    def call(self, purchases: tf.Tensor, history: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        ids = purchases if self.record else history
        if not self.enabled:
            return tf.zeros(tf.shape(ids), tf.float32)
        # Items added after training have no row or column in B: they read as padding.
        ids, items = known_ids(ids, self.n_items), known_ids(items, self.n_items)
        flat = tf.reshape(self.matrix, [-1])
        index = tf.cast(ids, tf.int64) * self.n_items + tf.cast(items, tf.int64)[:, None]
        values = tf.gather(flat, index)
        present = tf.not_equal(ids, 0)
        if self.record:
            weights = tf.gather(self.recency_weights, recency_buckets(ids))
        else:
            present &= ~_earlier_repeats(ids)
            weights = self.recency_weights[None, :]
        return values * tf.cast(present, tf.float32) * weights


def recency_buckets(purchases: tf.Tensor) -> tf.Tensor:
    """Each column's bucket, floor(log2(rank + 1)) capped, rank counted from the right edge
    (right-aligned rows: the last column is every row's latest purchase)."""
    width = tf.shape(purchases)[1]
    rank = tf.cast(tf.range(width - 1, -1, -1), tf.float32)
    bucket = tf.cast(tf.floor(tf.math.log(rank + 1.0) / np.log(2.0) + 1e-6), tf.int32)
    return tf.minimum(bucket, RECENCY_BUCKETS - 1)[None, :]


def _earlier_repeats(history: tf.Tensor) -> tf.Tensor:
    """Slots whose item comes again later in the row: EASE counts an item once however often
    it was bought, so only its most recent slot carries its term (found by a stable sort)."""
    order = tf.argsort(history, axis=-1, stable=True)
    ordered = tf.gather(history, order, batch_dims=1)
    again = tf.concat([tf.equal(ordered[:, :-1], ordered[:, 1:]),
                       tf.zeros_like(ordered[:, :1], tf.bool)], axis=-1)
    return tf.gather(again, tf.argsort(order, axis=-1, stable=True), batch_dims=1)
