"""Two-stage inference for many shoppers at once: retrieve N candidates, rank them, explain them.

Candidates are the union of the two-tower retrieval's top ``retrieve_n`` and the wide item-item
part's top ``item_item_n`` (EASE given the history): each source finds items the other misses,
and the ranker, which reads both signals, orders the union.

One object serves evaluation, the benchmark, explain-check, the MLflow pyfunc and the HTTP
endpoint, through one batch API: ``features_for_many`` is the only place per-shopper features are
built, ``recommend_many`` answers a batch of queries (grouped by filter, one model call per
group) and ``explain_many`` explains a batch of pages in one integrated-gradients call.
Everything that does not depend on the request is done once here: candidate embeddings, item
attribute arrays, the IG baseline and traced ``tf.function``s with fixed signatures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from models.feature_spec import PRICE_BANDS, FeatureSpec
from models.index import build_index
from models.inputs import ItemTable, bag_matrix, pad_left
from models.page_explanations import ExplainsPages
from models.queries import Filters, Query, Ranked, Recommendation
from models.ranking import PURCHASES, RankingModel
from models.retrieval import RetrievalModel

ROWS_AT_ONCE = 128  # shoppers ranked per model call in ``top_k`` (bounds its memory) ...
PAIR_CELLS = 1 << 23  # ... and at most this many (pair, past purchase) cells of the wide part
SHARED_ATTRIBUTES = ("category", "brand", "price_band")
_NONE = np.zeros(0, np.int64)



class TwoStageRecommender(ExplainsPages):
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
        item_item_n: int = 100,
        added_items: Sequence[str] = (),
    ) -> None:
        """``added_items``: catalogue items that came after training, in the order ``table``
        (and the models built on it, ``inputs.with_added_items``) holds them after the trained
        ones: recommended from their content, marked ``is_new``."""
        self.spec, self.table = spec, table
        n = spec.items.size + len(added_items)
        if len(table.item_id) != n:
            raise ValueError(f"the item table has {len(table.item_id)} rows for {n} items")
        self.retrieve_n = min(retrieve_n, n - 1)
        self.item_item_n = min(item_item_n, spec.items.size - 1)
        # B as NumPy: the item-item candidates are one sparse-dense product per batch.
        self.ease = ranker.item_item.matrix.numpy() if ranker.item_item.enabled else None
        # ``purchased``: each shopper's distinct items in first-purchase order, the wide part's
        # input and what a recommendation leaves out.
        self.histories, self.purchased = histories, purchased
        self.user_index = spec.users.index()
        self.item_ids = np.array([*spec.items.values, *added_items], dtype=object)
        self.item_index = {key: i for i, key in enumerate(self.item_ids)}
        self.is_new = np.arange(n) >= spec.items.size
        length = spec.history_length
        ids = tf.range(n)
        candidates = retrieval.candidate_tower(ids).numpy()
        candidates[0] = 0.0  # the unknown item is never recommended
        self.candidate_embeddings = tf.constant(candidates)
        self.embeddings = candidates
        self.index = build_index(candidates)
        frame = catalogue.drop_duplicates("item_id", keep="last").set_index("item_id")
        frame = frame.reindex(list(self.item_ids))
        self.category = frame["category"].astype("string").fillna("").to_numpy(dtype=object)
        self.price = pd.to_numeric(frame["price"], errors="coerce").to_numpy(dtype=float)
        titles = frame["title"].astype("string") if "title" in frame else None
        self.titles = {key: (str(titles.iloc[i]) if titles is not None
                             and isinstance(titles.iloc[i], str) else str(key))
                       for i, key in enumerate(self.item_ids)}
        popularity = np.asarray(table.popularity, np.float64)
        self.popular_order = np.argsort(-popularity[1:], kind="stable") + 1  # 0 is [UNK]

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
        self._query_keys = tuple(query_spec)
        rank_spec = dict(query_spec, item_id=tf.TensorSpec([None], tf.int32),
                         **{PURCHASES: tf.TensorSpec([None, None], tf.int32)})
        self._rank = tf.function(
            lambda f: ranker(f, training=False), input_signature=[rank_spec]
        ).get_concrete_function()
        self._rank_spec = rank_spec
        self.ranker = ranker

    # ---- shoppers ---------------------------------------------------------------------------
    @property
    def known_users(self) -> list[str]:
        """Pseudonyms the model has a history for, sorted (a stable sample order)."""
        return sorted(self.histories)

    def use_shoppers(self, histories: Mapping[str, np.ndarray],
                     purchased: Mapping[str, np.ndarray]) -> None:
        """Answer from this shopper state (the endpoint's online store over the snapshot)
        rather than the snapshot frozen at training: same shapes, read per query."""
        self.histories, self.purchased = histories, purchased

    def is_known(self, user_key: str) -> bool:
        return user_key in self.histories

    def features_for_many(
        self,
        users: Sequence[str],
        when: pd.Timestamp | Sequence[pd.Timestamp | None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Query features, one row per shopper: the only place they are built.

        Unknown shoppers get an empty history and the unknown user id. ``when`` (one moment for
        all, or one per shopper; default now) gives the hour and weekday. ``purchases`` (the
        wide part's bag) is as wide as the batch's longest record.
        """
        moments = list(when) if isinstance(when, Sequence) else [when] * len(users)
        if len(moments) != len(users):
            raise ValueError(f"{len(moments)} moments for {len(users)} shoppers")
        now = pd.Timestamp.now(tz="UTC")
        moments = [now if m is None else m for m in moments]
        empty = np.zeros(self.spec.history_length, np.int32)
        histories = [self.histories.get(u, empty) for u in users]
        return {
            "user_id": np.array([self.user_index.get(u, 0) for u in users], np.int32),
            "history": np.stack(histories).astype(np.int32) if users
            else np.zeros((0, self.spec.history_length), np.int32),
            "hour": np.array([m.hour for m in moments], np.int32),
            "day_of_week": np.array([m.day_of_week for m in moments], np.int32),
            # Read by the wide part only: without it, one padding column.
            PURCHASES: pad_left([self.purchased.get(u, _NONE) for u in users])
            if self.ease is not None else np.zeros((len(users), 1), np.int32),
        }

    def pair_features(
        self,
        users: Sequence[str],
        items: Sequence[np.ndarray],
        when: pd.Timestamp | Sequence[pd.Timestamp | None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Each shopper's features repeated once per item of theirs, with ``item_id`` added: the
        rows the ranker scores and integrated gradients explain."""
        base = self.features_for_many(users, when)
        counts = [len(i) for i in items]
        pairs = {k: np.repeat(v, counts, axis=0) for k, v in base.items()}
        pairs["item_id"] = (np.concatenate([np.asarray(i) for i in items]) if items
                            else _NONE).astype(np.int32)
        return pairs

    # ---- scoring arrays ---------------------------------------------------------------------
    def _query_of(self, features: dict[str, np.ndarray]) -> tf.Tensor:
        return self._query({k: tf.constant(features[k], tf.int32) for k in self._query_keys})

    def retrieval_scores(self, features: dict[str, np.ndarray]) -> np.ndarray:
        query = self._query_of(features)
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
        exclude: Sequence[np.ndarray] | None,
        k: int,
        filters: Filters | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item ids and ranker scores per row of ``features``: retrieve, filter, rank.
        Rows with fewer than k allowed items are padded with score -inf.

        At most ``ROWS_AT_ONCE`` rows are ranked at once: the ranker embeds every (row,
        candidate) pair's history, so a whole evaluation window in one call would hold
        rows x candidates x history length embeddings (gigabytes on a real shop's window).
        """
        def ranked(part: dict[str, np.ndarray], part_exclude) -> tuple[np.ndarray, np.ndarray]:
            candidates, valid = self._pool(part, part_exclude, filters)
            scores = self.rank_pairs(part, candidates)
            scores[~valid] = -np.inf
            return _best(candidates, scores, k)

        parts = [ranked(f, e) for f, e in self._chunks(features, exclude)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def top_k_by_weight(self, features: dict[str, np.ndarray],
                        exclude: Sequence[np.ndarray] | None, k: int,
                        weights: Sequence[float]) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """``top_k`` as it would answer at each deep-part weight of ``weights``, from one
        retrieval and one ranker pass (the score is weight x deep logit + wide logit)."""
        if not hasattr(self, "_rank_parts"):
            self._rank_parts = tf.function(
                lambda f: self.ranker.parts(f), input_signature=[self._rank_spec]
            ).get_concrete_function()
        found: dict[float, list] = {float(w): [] for w in weights}
        for part, part_exclude in self._chunks(features, exclude):
            candidates, valid = self._pool(part, part_exclude, None)
            n = candidates.shape[1]
            tiled = {name: np.repeat(v, n, axis=0) for name, v in part.items()}
            tiled["item_id"] = candidates.reshape(-1).astype(np.int32)
            logits = self._rank_parts({name: tf.constant(v, tf.int32)
                                       for name, v in tiled.items()}).numpy()
            deep, wide = (logits[:, i].reshape(candidates.shape) for i in (0, 1))
            for weight in found:
                scores = weight * deep + wide
                scores[~valid] = -np.inf
                found[weight].append(_best(candidates, scores, k))
        return {w: (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
                for w, parts in found.items()}

    def _chunks(self, features: dict[str, np.ndarray], exclude: Sequence[np.ndarray] | None):
        """(features, exclude) in parts of at most ``ROWS_AT_ONCE`` rows (see ``top_k``)."""
        rows = len(features["user_id"])
        width = self.retrieve_n + (self.item_item_n if self.ease is not None else 0)
        step = max(1, min(ROWS_AT_ONCE, PAIR_CELLS // (width * features[PURCHASES].shape[1])))
        if rows <= step:
            yield features, exclude
            return
        for i in range(0, rows, step):
            yield (_trimmed({n: v[i : i + step] for n, v in features.items()}),
                   None if exclude is None else exclude[i : i + step])

    def _pool(self, features: dict[str, np.ndarray], exclude: Sequence[np.ndarray] | None,
              filters: Filters | None) -> tuple[np.ndarray, np.ndarray]:
        """Each row's candidates (retrieval's, then EASE's) and which of them may be shown."""
        query = self._query_of(features).numpy()
        always = np.array([0], np.int64)  # the unknown item
        if filters is not None and filters.active:
            always = np.union1d(always, np.flatnonzero(~self.allowed(filters)))
        banned = [np.union1d(always, e) for e in exclude] if exclude is not None \
            else [always] * len(query)
        candidates, scores = self.index.search(query, self.retrieve_n, banned)
        valid = scores > -np.inf
        if self.ease is not None and self.item_item_n > 0:
            wide, wide_scores = self.item_item_candidates(features[PURCHASES], banned)
            candidates = np.concatenate([candidates, wide], axis=1)
            valid = np.concatenate([valid, wide_scores > -np.inf], axis=1) & ~_repeats(candidates)
        return candidates, valid

    def item_item_candidates(self, purchases: np.ndarray, banned: Sequence[np.ndarray]
                             ) -> tuple[np.ndarray, np.ndarray]:
        """EASE's top ``item_item_n`` ids and scores per row of distinct past purchases
        (right-aligned, 0 = padding), banned ids never (-inf)."""
        assert self.ease is not None
        n = self.ease.shape[0]  # items added after training have no column in B: left out
        scores = np.asarray(bag_matrix([p[p < n] for p in purchases], n) @ self.ease)
        for row, items in enumerate(banned):
            scores[row, items[items < n]] = -np.inf
        m = min(self.item_item_n, n)
        top = np.argpartition(-scores, m - 1, axis=1)[:, :m]
        return top, np.take_along_axis(scores, top, axis=1)

    def allowed(self, filters: Filters) -> np.ndarray:
        """Mask over vocabulary ids of the items a filter lets through."""
        allowed = np.ones(len(self.item_ids), bool)
        if filters.category is not None:
            allowed &= self.category == filters.category
        if filters.max_price is not None:
            allowed &= np.nan_to_num(self.price, nan=np.inf) <= filters.max_price
        return allowed

    # ---- recommending -----------------------------------------------------------------------
    def recommend_many(self, queries: Sequence[Query]) -> list[Ranked]:
        """Answer a batch of queries: one retrieve-and-rank call per distinct filter."""
        found = [Ranked(_NONE, np.zeros(0))] * len(queries)
        groups: dict[Filters, list[int]] = {}
        for i, query in enumerate(queries):
            groups.setdefault(query.filters, []).append(i)
        for filters, rows in groups.items():
            batch = [queries[i] for i in rows]
            features = self.features_for_many([q.user for q in batch], [q.when for q in batch])
            exclude = [self.purchased.get(q.user, _NONE) if q.exclude_purchased else _NONE
                       for q in batch]
            items, scores = self.top_k(features, exclude, max(q.k for q in batch), filters)
            for row, (i, query) in enumerate(zip(rows, batch, strict=True)):
                keep = np.isfinite(scores[row, : query.k])
                found[i] = Ranked(items[row, : query.k][keep].astype(np.int64),
                                  scores[row, : query.k][keep].astype(np.float64))
        return found

    def recommend(
        self,
        user_key: str,
        k: int = 10,
        exclude_purchased: bool = True,
        filters: Filters | None = None,
        when: pd.Timestamp | None = None,
    ) -> list[Recommendation]:
        """One shopper's top k as item keys (a convenience over ``recommend_many``)."""
        [ranked] = self.recommend_many([Query(user_key, k, exclude_purchased,
                                              filters or Filters(), when)])
        return self.recommendations(ranked)

    def recommendations(self, ranked: Ranked) -> list[Recommendation]:
        return [Recommendation(str(self.item_ids[i]), float(s), rank)
                for rank, (i, s) in enumerate(zip(ranked.items, ranked.scores, strict=True),
                                              start=1)]

    def popular(self, k: int, filters: Filters | None = None) -> np.ndarray:
        """Best sellers within a filter's segment: what an unknown shopper is shown."""
        order = self.popular_order
        if filters is not None and filters.active:
            order = order[self.allowed(filters)[order]]
        return order[:k]

    def similar(self, item: int, k: int = 10) -> Ranked:
        """Nearest items by candidate-tower embedding (cosine), the item itself left out."""
        ids, scores = self.index.search(self.embeddings[item][None, :], k,
                                        [np.array([0, item])])
        order = np.argsort(-scores[0], kind="stable")
        ids, scores = ids[0][order], scores[0][order]
        keep = np.isfinite(scores)
        return Ranked(ids[keep].astype(np.int64), scores[keep].astype(np.float64))

    def shared_attributes(self, a: int, b: int) -> list[tuple[str, str]]:
        """(attribute, value) pairs items ``a`` and ``b`` have in common."""
        names = {"category": self.spec.categories.values, "brand": self.spec.brands.values,
                 "price_band": ("unknown", *PRICE_BANDS)}
        found = []
        for attribute in SHARED_ATTRIBUTES:
            column = getattr(self.table, attribute)
            if column[a] and column[a] == column[b]:
                found.append((attribute, str(names[attribute][column[a]])))
        return found


def _best(candidates: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(candidates, order, 1), np.take_along_axis(scores, order, 1)


def _trimmed(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A part of a batch with the purchases' all-padding columns in front cut away."""
    bags = features[PURCHASES]
    filled = np.flatnonzero(bags.any(axis=0))
    start = min(int(filled[0]) if len(filled) else bags.shape[1] - 1, bags.shape[1] - 1)
    return features | {PURCHASES: bags[:, start:]}


def _repeats(candidates: np.ndarray) -> np.ndarray:
    """Mask of each row's repeated ids after their first occurrence (the union's duplicates)."""
    order = np.argsort(candidates, axis=1, kind="stable")
    ordered = np.take_along_axis(candidates, order, axis=1)
    repeated = np.zeros(candidates.shape, bool)
    repeated[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    out = np.zeros(candidates.shape, bool)
    np.put_along_axis(out, order, repeated, axis=1)
    return out
