"""Stage two: a DCN-v2 ranker scoring (user, item, context) pairs.

Inputs are embedded per named feature (``embed``) and scored by cross and deep layers (``head``).
The split is what explanations need: integrated gradients walk from a baseline to the embedded
inputs and attribute the score to each named feature. Affinity features (how much of the user's
history shares the item's category, brand and price band) make the planted kind of preference
explicit, so an explanation can name it.

Wide and deep: the wide part (``ItemItem``) adds EASE's item-item score of the item given the
shopper's distinct past purchases (input ``purchases``, the whole record), one term per purchase
(``history_items``), straight to the logit; the deep part
(cross and deep layers) reads every other named feature, among them what EASE cannot see: what is
selling now (``trend``), the item's attributes, the shopper's affinities and the moment.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_recommenders as tfrs

from models.collaborative import Collaborative
from models.feature_spec import FeatureSpec
from models.inputs import ItemTable, ShopperTable
from models.item_item import ItemItem
from models.retrieval import RetrievalModel
from models.towers import (
    ItemAttributes,
    RebuiltFromBundle,
    ShopperAttributes,
    embedding,
    known_ids,
    masked_mean,
)

# The ranker's named features, in a fixed order: explanation attributions are reported per name.
RANKING_FEATURES = (
    "user_id", "history", "item_id", "category", "brand", "price_band", "title", "price",
    "hour", "day_of_week", "category_affinity", "brand_affinity", "price_band_affinity",
    "popularity", "retrieval_score", "trend", "tags", "tag_affinity", "rating", "shopper",
    "history_items",
)
WIDE = "history_items"  # one value per distinct past purchase, summed into the logit
PURCHASES = "purchases"  # the wide part's input: (b, M) distinct past purchases, right-aligned


class RankingModel(RebuiltFromBundle, tfrs.Model):
    def __init__(
        self,
        spec: FeatureSpec,
        table: ItemTable,
        retrieval: RetrievalModel,
        cross_layers: int = 2,
        deep_units: tuple[int, ...] = (128, 64),
        dropout: float = 0.2,
        excluded: tuple[str, ...] = (),
        item_item: bool = True,
        item_item_record: bool = True,
        shoppers: ShopperTable | None = None,
    ) -> None:
        super().__init__()
        dims = spec.embedding_dims
        # Stage one's similarity is an input: the ranker refines retrieval rather than
        # relearning it from sparse ids. Its weights are frozen here (trained before).
        self.retrieval = retrieval
        unknown = set(excluded) - set(RANKING_FEATURES)
        if unknown:
            raise ValueError(f"unknown ranking features to exclude: {sorted(unknown)}")
        self.excluded = tuple(excluded)
        self.attributes = ItemAttributes(table)
        self.shopper = ShopperAttributes(shoppers or ShopperTable.empty(spec))
        self.has_tags = spec.tags.size > 1  # no tag affinity to work out for a source without
        self.popularity = tf.constant(table.popularity)
        # Constants fitted on the training events (``assign_collaborative``); weights so that a
        # saved model carries them.
        self.item_item = ItemItem(spec.items.size,
                                  enabled=item_item and WIDE not in self.excluded,
                                  record=item_item_record, history_length=spec.history_length)
        self.trend = self.add_weight(name="trend", shape=(spec.items.size,), initializer="zeros",
                                     trainable=False)
        # 1 or 0: whether the deep part's logit counts, chosen on validation after training
        # (``fit.py``): where the named features add nothing EASE lacks, the wide part alone
        # ranks better than wide plus a deep part's noise.
        self.deep_weight = self.add_weight(name="deep_weight", shape=(), initializer="ones",
                                           trainable=False)
        self.embeddings = {
            "user_id": embedding(spec.users.size, dims["user_id"], l2=1e-4, name="user_id"),
            "history": embedding(spec.items.size, dims["history"], name="history"),
            "item_id": embedding(spec.items.size, dims["item_id"], name="item_id"),
            "category": embedding(spec.categories.size, dims["category"], name="category"),
            "brand": embedding(spec.brands.size, dims["brand"], name="brand"),
            "price_band": embedding(4, dims["price_band"], name="price_band"),
            "title": embedding(spec.title_tokens.size, dims["title"], name="title"),
            "hour": embedding(24, dims["hour"], name="hour"),
            "day_of_week": embedding(7, dims["day_of_week"], name="day_of_week"),
            "tags": embedding(spec.tags.size, dims["tags"], name="tags"),
            "shopper": embedding(spec.shopper_attributes.size, dims["shopper"], name="shopper"),
        }
        for name, layer in self.embeddings.items():
            setattr(self, f"embedding_{name}", layer)  # tracked by Keras
        self.cross = [tfrs.layers.dcn.Cross(projection_dim=32) for _ in range(cross_layers)]
        self.deep = tf.keras.Sequential(
            [layer for units in deep_units for layer in (
                # Smooth (GELU), not ReLU: integrated gradients' m-step integral then converges
                # fast, so attributions add up to the score at m = 32.
                tf.keras.layers.Dense(units, activation="gelu"), tf.keras.layers.Dropout(dropout)
            )]
        )
        self.out = tf.keras.layers.Dense(1)
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[tf.keras.metrics.AUC(name="auc", from_logits=True)],
        )

    def embed(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One dense vector per named feature (numeric features as 1-wide vectors)."""
        items = features["item_id"]
        trained = known_ids(items, self.trend.shape[0])  # new catalogue items: id 0 there
        history = features["history"]
        a = self.attributes(items)
        h = self.attributes(history)
        seen = tf.cast(tf.not_equal(history, 0), tf.float32)
        count = tf.maximum(tf.reduce_sum(seen, -1, keepdims=True), 1.0)

        def share(item_attr: tf.Tensor, history_attr: tf.Tensor) -> tf.Tensor:
            same = tf.cast(tf.equal(history_attr, item_attr[..., None]), tf.float32)
            same *= seen * tf.cast(tf.not_equal(item_attr, 0), tf.float32)[..., None]
            return tf.reduce_sum(same, -1, keepdims=True) / count

        def tag_share() -> tf.Tensor:
            """Share of the history's items with a tag of the item's."""
            if not self.has_tags:
                return tf.zeros_like(count)
            own = a["tags"]  # (b, T)
            same = tf.equal(h["tags"][..., :, None], own[:, None, None, :])  # (b, L, T, T)
            same &= tf.not_equal(own, 0)[:, None, None, :]
            shared = tf.cast(tf.reduce_any(same, axis=[-2, -1]), tf.float32) * seen
            return tf.reduce_sum(shared, -1, keepdims=True) / count

        e = self.embeddings
        attributes = self.shopper(features["user_id"])

        def ids(name: str, values: tf.Tensor) -> tf.Tensor:
            # An excluded id feature is never computed (a history's embeddings for every pair
            # are the ranker's largest tensor): zeros of its width keep the names in place.
            if name in self.excluded:
                return tf.zeros(tf.stack([tf.shape(items)[0], e[name].output_dim]))
            looked_up = e[name](values)
            return masked_mean(looked_up, values) if name == "history" else looked_up

        return {
            "user_id": ids("user_id", features["user_id"]),
            "history": ids("history", history),
            "item_id": ids("item_id", trained),
            "category": e["category"](a["category"]),
            "brand": e["brand"](a["brand"]),
            "price_band": e["price_band"](a["price_band"]),
            "title": masked_mean(e["title"](a["title"]), a["title"]),
            "price": a["log_price"][..., None],
            "hour": e["hour"](features["hour"]),
            "day_of_week": e["day_of_week"](features["day_of_week"]),
            "category_affinity": share(a["category"], h["category"]),
            "brand_affinity": share(a["brand"], h["brand"]),
            "price_band_affinity": share(a["price_band"], h["price_band"]),
            # log(1 + share x catalogue size): about 0 for rare items, a few units for hits.
            "popularity": tf.math.log1p(
                tf.gather(self.popularity, items) * float(self.trend.shape[0])
            )[..., None],
            # Two tower passes per pair: skipped entirely when the feature is excluded.
            "retrieval_score": tf.zeros_like(a["log_price"][..., None])
            if "retrieval_score" in self.excluded
            else tf.stop_gradient(self._similarity(features)),
            "trend": tf.gather(self.trend, trained)[..., None],
            "tags": masked_mean(e["tags"](a["tags"]), a["tags"]),
            "tag_affinity": tag_share(),
            "rating": a["rating"][..., None],
            "shopper": masked_mean(e["shopper"](attributes), attributes),
            WIDE: self.item_item(features[PURCHASES], history, items),
        }

    @property
    def fitted_constants(self) -> list[tf.Variable]:
        """Weights fitted outside gradient descent (B, the trend): still the model's parameters,
        so a randomisation check must randomise them too."""
        return [self.item_item.matrix, self.trend]

    def assign_collaborative(self, collaborative: Collaborative) -> None:
        """Install EASE's B and the recent popularity (fitted on the events the model serves)."""
        self.item_item.assign_matrix(collaborative.matrix)
        self.trend.assign(collaborative.trend)

    def _similarity(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        query = self.retrieval.query_tower(features, training=False)
        candidate = self.retrieval.candidate_tower(features["item_id"])
        return tf.reduce_sum(query * candidate, axis=-1, keepdims=True) * 5.0  # cosine, scaled

    def head(self, embedded: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Score (logit) from embedded features; differentiable in every input.

        Excluded features are still embedded (so every explanation names the same features) but
        never reach the score, so their attribution is exactly zero.
        """
        deep = self._deep(embedded, training)
        if not self.item_item.enabled:
            return deep
        return deep * self.deep_weight + tf.reduce_sum(embedded[WIDE], axis=-1)

    def parts(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """(b, 2): the deep part's logit before its weight, and the wide part's (0 without
        one); the score is ``deep_weight`` x the first plus the second. Choosing the weight
        on validation ranks once with this, not once per weight."""
        embedded = self.embed(features)
        deep = self._deep(embedded, training=False)
        wide = tf.reduce_sum(embedded[WIDE], axis=-1) if self.item_item.enabled \
            else tf.zeros_like(deep)
        return tf.stack([deep, wide], axis=-1)

    def _deep(self, embedded: dict[str, tf.Tensor], training: bool) -> tf.Tensor:
        x0 = tf.concat([embedded[name] for name in RANKING_FEATURES
                        if name not in self.excluded and name != WIDE], axis=-1)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        return tf.squeeze(self.out(self.deep(x, training=training)), -1)

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        return self.head(self.embed(features), training=training)

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        logits = self(features, training=training)
        return self.task(labels=features["label"], predictions=logits)
