"""Everything the endpoint computes, in-process and framework-free: recommend, explain, similar.

Built once per model (start-up or reload): item metadata arrays, the average-pair IG baseline,
the traced IG function, popularity order for cold start, and a warm-up that traces every
``tf.function`` so no request pays for tracing. Requests then only index arrays and run graphs,
and concurrent recommend (or explain) requests share one model call on the model's own thread
(``MicroBatcher``), which the HTTP event loop awaits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from contracts.model_info import ModelInfo
from contracts.pseudonyms import Pseudonymiser
from models.explain import IntegratedGradients, average_baseline, feature_values
from models.pairs import pair_features, typical_pairs
from models.reasons import reason
from models.two_stage import Filters
from serving.batching import MicroBatcher

COLD_START = "cold_start"
BASELINE_PAIRS = 512
SHARED = ("category", "brand", "price_band")


_NONE = np.zeros(0, np.int64)


@dataclass(frozen=True)
class _Query:
    """One known user's retrieve-and-rank request, batched with others (``MicroBatcher``)."""

    user: str
    k: int
    exclude_purchased: bool
    filters: Filters
    when: pd.Timestamp
    explain: bool


class UnknownItem(LookupError):
    """An item id the served model's catalogue does not hold."""


@dataclass(frozen=True)
class Page:
    """One answer: item dicts shaped like ``schemas.Item`` and the fallback used, if any."""

    user_id: str
    items: list[dict]
    fallback: str | None


class Engine:
    def __init__(
        self,
        recommender,
        catalogue: pd.DataFrame,
        info: ModelInfo,
        pseudonymiser: Pseudonymiser,
        seed: int = 0,
    ) -> None:
        rec = self.rec = recommender
        self.info, self.pseudonymiser = info, pseudonymiser
        self.loaded_at = datetime.now(UTC)
        self.item_index = rec.spec.items.index()
        keys = list(rec.item_ids)
        frame = catalogue.drop_duplicates("item_id", keep="last").set_index("item_id")
        titles = frame["title"].reindex(keys).astype("string") if "title" in frame else None
        self.title_of = {k: (t if titles is not None and isinstance(t := titles.iloc[i], str)
                             else k) for i, k in enumerate(keys)}
        self.prices = [float(p) if np.isfinite(p) else None for p in rec.price]
        self.ig = IntegratedGradients(rec.ranker, self._baseline(seed))
        popularity = np.asarray(rec.table.popularity, np.float64)
        self.popularity = popularity
        self.popular_order = np.argsort(-popularity[1:], kind="stable") + 1  # item 0 is [UNK]
        self.embeddings = rec.candidate_embeddings.numpy()
        # Model work runs on these batchers' threads: the event loop only awaits it.
        self.recommend_batches = MicroBatcher(self._answer_many)
        self.explain_batches = MicroBatcher(self._explain_many)
        self._warm_up()

    # ---- requests ---------------------------------------------------------------------------
    async def recommend(
        self,
        raw_user: str,
        k: int = 10,
        explain: bool = True,
        exclude_purchased: bool = True,
        filters: Filters | None = None,
    ) -> Page:
        user = self.pseudonymiser.one(raw_user)
        if not self.rec.is_known(user):
            return Page(raw_user, self._popular(k, explain, filters or Filters()), COLD_START)
        when = pd.Timestamp.now(tz="UTC")
        query = _Query(user, k, exclude_purchased, filters or Filters(), when, explain)
        return Page(raw_user, await self.recommend_batches.run(query), None)

    async def explain(self, raw_user: str, item_id: str) -> tuple[dict, str | None]:
        """The explanation of one (user, item) pair, scored as the ranker scores it."""
        item = self.index_of(item_id)
        user = self.pseudonymiser.one(raw_user)
        when = pd.Timestamp.now(tz="UTC")
        [(explanation, score)] = await self.explain_batches.run((user, np.array([item]), when))
        return {"score": score, "explanation": explanation}, \
            None if self.rec.is_known(user) else COLD_START

    def similar(self, item_id: str, k: int = 10) -> list[dict]:
        """Nearest items by candidate-tower embedding, with the attributes they share."""
        item = self.index_of(item_id)
        ids, scores = self.rec.index.search(self.embeddings[item][None, :], k,
                                            [np.array([0, item])])
        order = np.argsort(-scores[0], kind="stable")
        out = []
        for i, s in zip(ids[0][order], scores[0][order], strict=True):
            if not np.isfinite(s):
                continue
            shared = self._shared(item, int(i))
            out.append(self._item(int(i), float(s), len(out) + 1, None, explanation_key=False)
                       | {"shared": [name for name, _ in shared],
                          "reason": _similar_reason(shared)})
        return out

    def index_of(self, item_id: str) -> int:
        index = self.item_index.get(item_id, 0)
        if index == 0:
            raise UnknownItem(f"unknown item_id {item_id!r}: not in the served model's catalogue")
        return index

    # ---- parts ------------------------------------------------------------------------------
    def _answer_many(self, queries: Sequence[_Query]) -> list[list[dict]]:
        """Retrieve and rank several users in one call per distinct filter, then explain every
        requested page in one IG call: the batch a ``MicroBatcher`` hands over. One list of
        item dicts per query."""
        found: list[tuple[np.ndarray, np.ndarray]] = [(_NONE, _NONE)] * len(queries)
        groups: dict[Filters, list[int]] = {}
        for i, query in enumerate(queries):
            groups.setdefault(query.filters, []).append(i)
        for filters, rows in groups.items():
            per_user = [self.rec.features_for(queries[i].user, queries[i].when) for i in rows]
            features = {name: np.concatenate([f[name] for f in per_user]) for name in per_user[0]}
            exclude = [self.rec.purchased.get(queries[i].user, _NONE)
                       if queries[i].exclude_purchased else _NONE for i in rows]
            filtered = filters.category is not None or filters.max_price is not None
            items, scores = self.rec.top_k(features, exclude, max(queries[i].k for i in rows),
                                           filters if filtered else None)
            for row, i in enumerate(rows):
                k = queries[i].k
                keep = np.isfinite(scores[row, :k])
                found[i] = (items[row, :k][keep], scores[row, :k][keep].astype(float))
        wanted = [i for i, q in enumerate(queries) if q.explain and len(found[i][0])]
        explained = dict(zip(wanted, self._explain_many(
            [(queries[i].user, found[i][0], queries[i].when) for i in wanted]), strict=True))
        pages = []
        for i, (items, scores) in enumerate(found):
            explanations = [e for e, _ in explained[i]] if i in explained else [None] * len(items)
            pages.append([self._item(int(item), score, rank, explanation)
                          for rank, (item, score, explanation)
                          in enumerate(zip(items, scores, explanations, strict=True), start=1)])
        return pages

    def _item(self, index: int, score: float, rank: int, explanation: dict | None,
              explanation_key: bool = True) -> dict:
        key = str(self.rec.item_ids[index])
        item = {"item_id": key, "title": self.title_of[key],
                "category": str(self.rec.category[index]), "price": self.prices[index],
                "score": float(score), "rank": rank}
        return item | {"explanation": explanation} if explanation_key else item

    def _explain_many(
        self, pages: Sequence[tuple[str, np.ndarray, pd.Timestamp]]
    ) -> list[list[tuple[dict, float]]]:
        """(explanation, IG score) per item of each (user, items, moment), one IG call for all."""
        if not pages:
            return []
        parts = [pair_features(self.rec, user, items, when) for user, items, when in pages]
        features = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        explanations = iter(self.ig.explain(features))
        out = []
        for part in parts:
            page = []
            for row in range(len(part["item_id"])):
                exp = next(explanations)
                values = feature_values(self.rec.spec, self.rec.table,
                                        {k: v[row] for k, v in part.items()},
                                        titles=self.title_of)
                page.append(({
                    "reason": reason(exp, values),
                    "attributions": [
                        {"feature": f, "value": values.get(f, ""), "attribution": a}
                        for f, a in exp.sorted_attributions() if a != 0.0],
                    "baseline_score": exp.baseline_score,
                    "completeness_delta": exp.completeness_delta,
                }, exp.score))
            out.append(page)
        return out

    def _popular(self, k: int, explain: bool, filters: Filters) -> list[dict]:
        """Best sellers within the requested segment (category, price cap) for unknown users."""
        order = self.popular_order
        if filters.category is not None:
            order = order[self.rec.category[order] == filters.category]
        if filters.max_price is not None:
            order = order[np.nan_to_num(self.rec.price[order], nan=np.inf) <= filters.max_price]
        segment = f"in {filters.category}" if filters.category else "in the shop"
        items = []
        for rank, index in enumerate(order[:k], start=1):
            share = float(self.popularity[index])
            explanation = None
            if explain:
                shown = f"{share * 100:.2g}% of purchases"
                explanation = {
                    "reason": f"Popular with shoppers {segment} ({shown}). We do not know your "
                              "purchases yet, so these are best sellers.",
                    "attributions": [{"feature": "popularity", "value": shown,
                                      "attribution": share}],
                    "baseline_score": 0.0,
                    "completeness_delta": 0.0,
                }
            items.append(self._item(int(index), share, rank, explanation))
        return items

    def _shared(self, a: int, b: int) -> list[tuple[str, str]]:
        table, spec = self.rec.table, self.rec.spec
        names = {"category": spec.categories.values, "brand": spec.brands.values,
                 "price_band": ("unknown", "low", "mid", "high")}
        found = []
        for attribute in SHARED:
            column = getattr(table, attribute)
            if column[a] and column[a] == column[b]:
                found.append((attribute, str(names[attribute][column[a]])))
        return found

    def _baseline(self, seed: int) -> dict[str, np.ndarray]:
        """The typical (shopper, item, moment) pair: IG's reference point, as in explain-check."""
        pairs = typical_pairs(self.rec, sorted(self.rec.histories), BASELINE_PAIRS, seed)
        return average_baseline(self.rec.ranker, pairs)

    def _warm_up(self) -> None:
        """Trace every graph now (fixed signatures: any k reuses them)."""
        known = next(iter(self.rec.histories))
        now = pd.Timestamp.now(tz="UTC")
        self._answer_many([_Query(known, 1, True, Filters(), now, False)])
        self._explain_many([(known, np.array([1]), now)])
        self.similar(str(self.rec.item_ids[1]), k=1)


def _similar_reason(shared: list[tuple[str, str]]) -> str:
    labels = {"category": "category", "brand": "brand", "price_band": "price band"}
    if not shared:
        return "Often chosen by the same shoppers."
    parts = [f"{labels[name]} ({value})" for name, value in shared]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"Same {listed}; often chosen by the same shoppers."
