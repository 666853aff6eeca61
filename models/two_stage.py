"""Two-stage inference: retrieve N candidates, rank them, return the top k.

One object serves evaluation, the MLflow pyfunc and the HTTP endpoint. Everything that does not
depend on the request is done once here: candidate embeddings, item attribute arrays, and traced
``tf.function``s with fixed signatures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import tensorflow as tf

from models.feature_spec import FeatureSpec
from models.index import build_index
from models.inputs import ItemTable
from models.ranking import RankingModel
from models.retrieval import RetrievalModel


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    score: float
    rank: int


@dataclass(frozen=True)
class Filters:
    category: str | None = None
    max_price: float | None = None


class TwoStageRecommender:
    def __init__(
        self,
        spec: FeatureSpec,
        table: ItemTable,
        retrieval: RetrievalModel,
        ranker: RankingModel,
        catalogue: pd.DataFrame,
        histories: dict[str, np.ndarray],
        purchased: dict[str, np.ndarray],
        retrieve_n: int = 200,
    ) -> None:
        self.spec, self.table = spec, table
        self.retrieve_n = min(retrieve_n, spec.items.size - 1)
        self.histories, self.purchased = histories, purchased
        self.user_index = spec.users.index()
        length = spec.history_length
        ids = tf.range(spec.items.size)
        candidates = retrieval.candidate_tower(ids).numpy()
        candidates[0] = 0.0  # the unknown item is never recommended
        self.candidate_embeddings = tf.constant(candidates)
        self.index = build_index(candidates)
        frame = catalogue.drop_duplicates("item_id", keep="last").set_index("item_id")
        frame = frame.reindex(list(spec.items.values))
        self.category = frame["category"].astype("string").fillna("").to_numpy(dtype=object)
        self.price = pd.to_numeric(frame["price"], errors="coerce").to_numpy(dtype=float)
        self.item_ids = np.array(spec.items.values, dtype=object)

        query_spec = {
            "user_id": tf.TensorSpec([None], tf.int32),
            "history": tf.TensorSpec([None, length], tf.int32),
            "hour": tf.TensorSpec([None], tf.int32),
            "day_of_week": tf.TensorSpec([None], tf.int32),
        }
        # Concrete functions, traced here once: a call skips tf.function's per-call signature
        # matching, which costs about as much as the model itself on a serving request.
        self._query = tf.function(
            lambda f: retrieval.query_tower(f, training=False), input_signature=[query_spec]
        ).get_concrete_function()
        rank_spec = dict(query_spec, item_id=tf.TensorSpec([None], tf.int32))
        self._rank = tf.function(
            lambda f: ranker(f, training=False), input_signature=[rank_spec]
        ).get_concrete_function()
        self.ranker = ranker

    # ---- batch scoring (evaluation) ---------------------------------------------------------
    def retrieval_scores(self, features: dict[str, np.ndarray]) -> np.ndarray:
        query = self._query({k: tf.constant(v, tf.int32) for k, v in features.items()})
        return tf.matmul(query, self.candidate_embeddings, transpose_b=True).numpy()

    def rank_pairs(self, features: dict[str, np.ndarray], items: np.ndarray) -> np.ndarray:
        """Ranker scores for ``items`` (users x n) given per-user query features."""
        n = items.shape[1]
        tiled = {k: np.repeat(v, n, axis=0) for k, v in features.items()}
        tiled["item_id"] = items.reshape(-1).astype(np.int32)
        scores = self._rank({k: tf.constant(v, tf.int32) for k, v in tiled.items()})
        return scores.numpy().reshape(items.shape)

    def top_k(
        self,
        features: dict[str, np.ndarray],
        exclude: list[np.ndarray] | None,
        k: int,
        filters: Filters | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item ids and ranker scores per row of ``features``: retrieve, filter, rank."""
        query = self._query({k: tf.constant(v, tf.int32) for k, v in features.items()}).numpy()
        always = np.array([0], np.int64)  # the unknown item
        if filters is not None:
            always = np.union1d(always, np.flatnonzero(~self._allowed(filters)))
        banned = [np.union1d(always, e) for e in exclude] if exclude is not None \
            else [always] * len(query)
        candidates, scores = self.index.search(query, self.retrieve_n, banned)
        valid = scores > -np.inf
        ranked = self.rank_pairs(features, candidates)
        ranked[~valid] = -np.inf
        order = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(candidates, order, 1), np.take_along_axis(ranked, order, 1)

    def _allowed(self, filters: Filters) -> np.ndarray:
        allowed = np.ones(len(self.item_ids), bool)
        if filters.category is not None:
            allowed &= self.category == filters.category
        if filters.max_price is not None:
            allowed &= np.nan_to_num(self.price, nan=np.inf) <= filters.max_price
        return allowed

    # ---- one user (serving) -----------------------------------------------------------------
    def features_for(
        self, user_key: str, when: pd.Timestamp | None = None
    ) -> dict[str, np.ndarray]:
        when = when or pd.Timestamp.now(tz="UTC")
        history = self.histories.get(user_key)
        if history is None:
            history = np.zeros(self.spec.history_length, np.int32)
        return {
            "user_id": np.array([self.user_index.get(user_key, 0)], np.int32),
            "history": history[None, :].astype(np.int32),
            "hour": np.array([when.hour], np.int32),
            "day_of_week": np.array([when.dayofweek], np.int32),
        }

    def is_known(self, user_key: str) -> bool:
        return user_key in self.histories

    def recommend(
        self,
        user_key: str,
        k: int = 10,
        exclude_purchased: bool = True,
        filters: Filters | None = None,
        when: pd.Timestamp | None = None,
    ) -> list[Recommendation]:
        features = self.features_for(user_key, when)
        exclude = [self.purchased.get(user_key, np.zeros(0, np.int64))] if exclude_purchased \
            else None
        items, scores = self.top_k(features, exclude, k, filters)
        return [
            Recommendation(str(self.item_ids[i]), float(s), rank + 1)
            for rank, (i, s) in enumerate(zip(items[0], scores[0], strict=True))
            if np.isfinite(s)
        ]
