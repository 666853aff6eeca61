"""The ranker's wide item-item part: one contribution per history slot, w_j * B[h_j, item].

Summed, the contributions are EASE's score of the item given the history (with w_j = 1; a
repeated purchase counts once, at its most recent slot, as in EASE's binary matrix), so the
ranker starts from the strongest linear baseline instead of relearning it. Kept per slot, they
are also an exact, additive account of which past purchase drove a recommendation: integrated
gradients over a linear term returns the terms themselves, so "because you bought <title>" is
the model's own arithmetic. B is a constant (non-trainable, assigned from ``Collaborative``);
the slot weights w_j learn how much recent purchases count against older ones.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


class ItemItem(tf.keras.layers.Layer):
    """(history ids (b, L), item ids (b,)) -> per-slot contributions (b, L); padding gives 0.

    ``enabled=False`` (a catalogue too large for an n x n matrix) keeps a 1 x 1 matrix and
    returns zeros, so the ranker's inputs and explanations keep their shape.
    """

    def __init__(self, n_items: int, history_length: int, enabled: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_items, self.enabled = n_items, enabled
        size = n_items if enabled else 1
        self.matrix = self.add_weight(name="ease_matrix", shape=(size, size),
                                      initializer="zeros", trainable=False)
        self.slot_weights = self.add_weight(name="slot_weights", shape=(history_length,),
                                            initializer="ones", trainable=True)

    def assign_matrix(self, matrix: np.ndarray) -> None:
        """Install B (n x n, row/column 0 zero); a no-op when the part is disabled."""
        if self.enabled:
            self.matrix.assign(np.asarray(matrix, np.float32))

    def set_scale(self, value: float) -> None:
        """Every slot weight to ``value``: B's scores in logit units before training."""
        self.slot_weights.assign(tf.fill(self.slot_weights.shape, float(value)))

    def call(self, history: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        if not self.enabled:
            return tf.zeros(tf.shape(history), tf.float32)
        flat = tf.reshape(self.matrix, [-1])
        index = (tf.cast(history, tf.int64) * self.n_items
                 + tf.cast(items, tf.int64)[:, None])
        values = tf.gather(flat, index)
        present = tf.cast(tf.not_equal(history, 0) & ~_earlier_repeats(history), tf.float32)
        return values * present * self.slot_weights[None, :]


def _earlier_repeats(history: tf.Tensor) -> tf.Tensor:
    """Slots whose item comes again later in the row: EASE counts an item once however often
    it was bought, so only its most recent slot carries its term (found by a stable sort)."""
    order = tf.argsort(history, axis=-1, stable=True)
    ordered = tf.gather(history, order, batch_dims=1)
    again = tf.concat([tf.equal(ordered[:, :-1], ordered[:, 1:]),
                       tf.zeros_like(ordered[:, :1], tf.bool)], axis=-1)
    return tf.gather(again, tf.argsort(order, axis=-1, stable=True), batch_dims=1)
