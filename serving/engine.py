"""The endpoint's adapter over the two-stage recommender: raw ids in, response-shaped dicts out.

The recommender's batch API does the model work; this module only pseudonymises raw ids, sends
unknown shoppers to the popularity fallback, queues known ones on a ``MicroBatcher`` (concurrent
requests share one model call on the model's own thread, which the event loop awaits) and shapes
the answers like ``serving.schemas``. Built once per model, with a warm-up that traces every
graph, so no request pays for tracing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from contracts.model_info import ModelInfo
from contracts.pseudonyms import Pseudonymiser
from models.reasons import popular_reason, similar_reason
from models.two_stage import ExplainedItem, Filters, Query, TwoStageRecommender
from serving.batching import MicroBatcher

COLD_START = "cold_start"
IG = "integrated_gradients"
POPULARITY = "popularity"


class UnknownItem(LookupError):
    """An item id the served model's catalogue does not hold."""


@dataclass(frozen=True)
class _Request:
    """One known shopper's query, and whether the page should be explained."""

    query: Query
    explain: bool


@dataclass(frozen=True)
class Page:
    """One answer: item dicts shaped like ``schemas.Item`` and the fallback used, if any."""

    user_id: str
    items: list[dict]
    fallback: str | None


class Engine:
    def __init__(
        self, recommender: TwoStageRecommender, info: ModelInfo, pseudonymiser: Pseudonymiser
    ) -> None:
        self.rec, self.info, self.pseudonymiser = recommender, info, pseudonymiser
        self.loaded_at = datetime.now(UTC)
        self.prices = [float(p) if np.isfinite(p) else None for p in recommender.price]
        # Model work runs on these batchers' threads: the event loop only awaits it.
        self.recommend_batches = MicroBatcher(self._recommend_many)
        self.explain_batches = MicroBatcher(self.rec.explain_many)
        self._warm_up()

    # ---- requests ---------------------------------------------------------------------------
    async def recommend(
        self,
        user_id: str,
        k: int = 10,
        explain: bool = True,
        exclude_purchased: bool = True,
        filters: Filters | None = None,
        pseudonymised: bool = False,
    ) -> Page:
        """``user_id`` is a raw customer id, or a pseudonym when ``pseudonymised``."""
        user = user_id if pseudonymised else self.pseudonymiser.one(user_id)
        filters = filters or Filters()
        if not self.rec.is_known(user):
            return Page(user_id, self._popular(k, explain, filters), COLD_START)
        query = Query(user, k, exclude_purchased, filters, pd.Timestamp.now(tz="UTC"))
        return Page(user_id, await self.recommend_batches.run(_Request(query, explain)), None)

    async def explain(self, raw_user: str, item_id: str) -> tuple[dict, str | None]:
        """The explanation of one (user, item) pair, scored as the ranker scores it. Unknown
        shoppers are explained too (an empty history is a real input); the fallback says so."""
        item = self.index_of(item_id)
        user = self.pseudonymiser.one(raw_user)
        [explained] = await self.explain_batches.run((user, np.array([item])))
        return ({"score": explained.explanation.score, "explanation": _ig(explained)},
                None if self.rec.is_known(user) else COLD_START)

    def similar(self, item_id: str, k: int = 10) -> list[dict]:
        """Nearest items by candidate-tower embedding, with the attributes they share."""
        item = self.index_of(item_id)
        found = self.rec.similar(item, k)
        out = []
        for rank, (other, score) in enumerate(zip(found.items, found.scores, strict=True), 1):
            shared = self.rec.shared_attributes(item, int(other))
            out.append(self._item(int(other), float(score), rank)
                       | {"shared": [name for name, _ in shared],
                          "reason": similar_reason(shared)})
        return out

    def history(self, raw_user: str, k: int = 10) -> list[dict]:
        """The shopper's most recent purchases as the model sees them, most recent first."""
        items = self.rec.histories.get(self.pseudonymiser.one(raw_user), ())
        recent = [int(i) for i in items if i][::-1][:k]
        return [{key: value for key, value in self._item(i, 0.0, 0).items()
                 if key in ("item_id", "title", "category", "price")} for i in recent]

    def index_of(self, item_id: str) -> int:
        index = self.rec.item_index.get(item_id, 0)
        if index == 0:
            raise UnknownItem(f"unknown item_id {item_id!r}: not in the served model's catalogue")
        return index

    # ---- parts ------------------------------------------------------------------------------
    def _recommend_many(self, requests: Sequence[_Request]) -> list[list[dict]]:
        """The batch a ``MicroBatcher`` hands over: rank every query in one batch call, then
        explain every requested page in one IG call."""
        ranked = self.rec.recommend_many([r.query for r in requests])
        wanted = [i for i, r in enumerate(requests) if r.explain and len(ranked[i].items)]
        explained = dict(zip(wanted, self.rec.explain_many(
            [(requests[i].query.user, ranked[i].items) for i in wanted],
            [requests[i].query.when for i in wanted]), strict=True))
        pages = []
        for i, answer in enumerate(ranked):
            notes = [_ig(e) for e in explained[i]] if i in explained else [None] * len(answer.items)
            pages.append([self._item(int(item), float(score), rank) | {"explanation": note}
                          for rank, (item, score, note)
                          in enumerate(zip(answer.items, answer.scores, notes, strict=True), 1)])
        return pages

    def _item(self, index: int, score: float, rank: int) -> dict:
        key = str(self.rec.item_ids[index])
        return {"item_id": key, "title": self.rec.titles[key],
                "category": str(self.rec.category[index]), "price": self.prices[index],
                "score": score, "rank": rank}

    def _popular(self, k: int, explain: bool, filters: Filters) -> list[dict]:
        """Best sellers within the requested segment, for shoppers the model does not know.
        Their score is the item's share of purchases; no attribution method produced it, so the
        note says what it is (``kind: popularity``) and carries no attribution fields."""
        items = []
        for rank, index in enumerate(self.rec.popular(k, filters), start=1):
            share = float(self.rec.table.popularity[index])
            note = {"kind": POPULARITY, "reason": popular_reason(share, filters.category),
                    "share_of_purchases": share} if explain else None
            items.append(self._item(int(index), share, rank) | {"explanation": note})
        return items

    def _warm_up(self) -> None:
        """Trace every graph now (fixed signatures: any k reuses them)."""
        known = self.rec.known_users[0]
        self._recommend_many([_Request(Query(known, 1, when=pd.Timestamp.now(tz="UTC")), False)])
        self.rec.explain_many([(known, np.array([1]))])
        self.similar(str(self.rec.item_ids[1]), k=1)


def _ig(explained: ExplainedItem) -> dict:
    """An integrated-gradients explanation shaped like ``schemas.Explanation``."""
    exp = explained.explanation
    return {
        "kind": IG,
        "reason": explained.reason,
        "attributions": [{"feature": f, "value": explained.values.get(f, ""), "attribution": a}
                         for f, a in exp.sorted_attributions() if a != 0.0],
        "baseline_score": exp.baseline_score,
        "completeness_delta": exp.completeness_delta,
    }
