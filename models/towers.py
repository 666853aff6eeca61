"""Keras building blocks shared by the retrieval and ranking models.

Item attributes (category, brand, price band, title, tags, rating) and shopper attributes are
looked up inside the models from the item and shopper tables baked in as constants, so callers
only ever pass ids: the same inputs at training, evaluation and serving time.
"""

from __future__ import annotations

import tensorflow as tf

from models.feature_spec import FeatureSpec
from models.inputs import ItemTable, ShopperTable


class RebuiltFromBundle:
    """For the subclassed models: they are rebuilt from the bundle's spec and TrainConfig
    (``contracts.bundle``), never from a Keras config, so theirs is empty on purpose (without
    this, Keras warns of "non-serializable objects" at every fit and evaluate)."""

    def get_config(self) -> dict:
        return {}


class ItemAttributes(tf.keras.layers.Layer):
    """Gathers an item's attribute ids from the baked-in item table."""

    def __init__(self, table: ItemTable, **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.category = tf.constant(table.category)
        self.brand = tf.constant(table.brand)
        self.price_band = tf.constant(table.price_band)
        self.title = tf.constant(table.title)
        self.log_price = tf.constant(table.log_price)
        self.tags = tf.constant(table.tags)
        self.rating = tf.constant(table.rating)

    def call(self, item_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {
            "category": tf.gather(self.category, item_ids),
            "brand": tf.gather(self.brand, item_ids),
            "price_band": tf.gather(self.price_band, item_ids),
            "title": tf.gather(self.title, item_ids),
            "log_price": tf.gather(self.log_price, item_ids),
            "tags": tf.gather(self.tags, item_ids),
            "rating": tf.gather(self.rating, item_ids),
        }


class ShopperAttributes(tf.keras.layers.Layer):
    """Gathers a shopper's attribute ids (country, segments) from the baked-in shopper table."""

    def __init__(self, table: ShopperTable, **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.attributes = tf.constant(table.attributes)

    def call(self, user_ids: tf.Tensor) -> tf.Tensor:
        # A user id past the table (none should be) reads as the unknown shopper.
        known = tf.where(user_ids < tf.shape(self.attributes)[0], user_ids,
                         tf.zeros_like(user_ids))
        return tf.gather(self.attributes, known)


def known_ids(ids: tf.Tensor, trained: int) -> tf.Tensor:
    """Item ids the model trained an embedding (or an item-item row) for; an item added to the
    catalogue after training (id ``>= trained``) reads as the unknown item 0 there, while its
    attributes (category, brand, price, title) are its own."""
    return tf.where(ids < trained, ids, tf.zeros_like(ids))


def embedding(size: int, dim: int, l2: float = 1e-6, name: str | None = None):
    return tf.keras.layers.Embedding(
        size, dim, embeddings_regularizer=tf.keras.regularizers.l2(l2), name=name
    )


def masked_mean(vectors: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """Mean of ``vectors`` over positions whose id is not 0 (padding / unknown)."""
    mask = tf.cast(tf.not_equal(ids, 0), vectors.dtype)[..., None]
    return tf.reduce_sum(vectors * mask, axis=-2) / tf.maximum(tf.reduce_sum(mask, axis=-2), 1.0)


class ItemEncoder(tf.keras.layers.Layer):
    """Item id plus attributes to one vector: the candidate tower's body."""

    def __init__(self, spec: FeatureSpec, table: ItemTable, **kwargs) -> None:
        super().__init__(**kwargs)
        dims = spec.embedding_dims
        self.attributes = ItemAttributes(table)
        self.trained = spec.items.size
        self.item = embedding(spec.items.size, dims["item_id"])
        self.category = embedding(spec.categories.size, dims["category"])
        self.brand = embedding(spec.brands.size, dims["brand"])
        self.price_band = embedding(4, dims["price_band"])
        self.title = embedding(spec.title_tokens.size, dims["title"])
        self.tags = embedding(spec.tags.size, dims["tags"])

    def call(self, item_ids: tf.Tensor) -> tf.Tensor:
        a = self.attributes(item_ids)
        return tf.concat(
            [
                self.item(known_ids(item_ids, self.trained)),
                self.category(a["category"]),
                self.brand(a["brand"]),
                self.price_band(a["price_band"]),
                masked_mean(self.title(a["title"]), a["title"]),
                masked_mean(self.tags(a["tags"]), a["tags"]),
                a["log_price"][..., None],
                a["rating"][..., None],
            ],
            axis=-1,
        )
