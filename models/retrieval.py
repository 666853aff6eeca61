"""Stage one: a two-tower retrieval model trained on in-batch negatives with log-Q correction.

The query tower reads who the user is (their id and attributes), what they bought before (a bag
of item embeddings) and when they shop; the candidate tower reads the item and its attributes.
In-batch softmax over-samples popular items as negatives; passing each candidate's sampling
probability to ``tfrs.tasks.Retrieval`` subtracts log Q and undoes that bias.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from models.feature_spec import FeatureSpec
from models.inputs import ItemTable, ShopperTable
from models.towers import (
    ItemEncoder,
    RebuiltFromBundle,
    ShopperAttributes,
    embedding,
    masked_mean,
)


class QueryTower(RebuiltFromBundle, tf.keras.Model):
    def __init__(self, spec: FeatureSpec, dim: int, history_dropout: float, dropout: float,
                 use_user_id: bool = True, use_context: bool = True,
                 shoppers: ShopperTable | None = None):
        super().__init__()
        self.use_user_id, self.use_context = use_user_id, use_context
        dims = spec.embedding_dims
        self.user = embedding(spec.users.size, dims["user_id"], l2=1e-4)
        self.shopper = ShopperAttributes(shoppers or ShopperTable.empty(spec))
        self.shopper_embedding = embedding(spec.shopper_attributes.size, dims["shopper"])
        self.history = embedding(spec.items.size, dims["history"])
        self.hour = embedding(24, dims["hour"])
        self.day = embedding(7, dims["day_of_week"])
        self.history_dropout = history_dropout
        self.mlp = tf.keras.Sequential([
            tf.keras.layers.Dense(256, activation="relu"),
            tf.keras.layers.Dropout(dropout),
            tf.keras.layers.Dense(dim),
        ])

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        history = features["history"]
        if training and self.history_dropout > 0:
            # Denoising: hide part of the history so the tower generalises beyond memorising it.
            keep = tf.random.uniform(tf.shape(history)) >= self.history_dropout
            history = tf.where(keep, history, tf.zeros_like(history))
        attributes = self.shopper(features["user_id"])
        parts = [masked_mean(self.history(history), history),
                 masked_mean(self.shopper_embedding(attributes), attributes)]
        if self.use_user_id:
            parts.append(self.user(features["user_id"]))
        if self.use_context:
            parts += [self.hour(features["hour"]), self.day(features["day_of_week"])]
        x = tf.concat(parts, axis=-1)
        return tf.math.l2_normalize(self.mlp(x, training=training), axis=-1)


class CandidateTower(RebuiltFromBundle, tf.keras.Model):
    def __init__(self, spec: FeatureSpec, table: ItemTable, dim: int):
        super().__init__()
        self.encoder = ItemEncoder(spec, table)
        self.project = tf.keras.layers.Dense(dim)

    def call(self, item_ids: tf.Tensor) -> tf.Tensor:
        return tf.math.l2_normalize(self.project(self.encoder(item_ids)), axis=-1)


class RetrievalModel(RebuiltFromBundle, tfrs.Model):
    """Two towers scored by a dot product of unit vectors (cosine), divided by a temperature."""

    def __init__(
        self,
        spec: FeatureSpec,
        table: ItemTable,
        dim: int = 64,
        temperature: float = 0.2,
        history_dropout: float = 0.5,
        dropout: float = 0.2,
        use_user_id: bool = True,
        use_context: bool = True,
        shoppers: ShopperTable | None = None,
    ) -> None:
        super().__init__()
        self.query_tower = QueryTower(spec, dim, history_dropout, dropout, use_user_id,
                                      use_context, shoppers)
        self.candidate_tower = CandidateTower(spec, table, dim)
        self.task = tfrs.tasks.Retrieval(temperature=temperature, remove_accidental_hits=True)

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        queries = self.query_tower(features, training=training)
        candidates = self.candidate_tower(features["item_id"])
        return self.task(
            queries,
            candidates,
            candidate_sampling_probability=features["sampling_probability"],
            candidate_ids=features["item_id"],
            compute_metrics=False,
        )
