"""The endpoint's adapter over the two-stage recommender: raw ids in, response-shaped dicts out.

The recommender's batch API does the model work; this module only pseudonymises raw ids, sends
unknown shoppers to the popularity fallback, queues known ones on a ``MicroBatcher`` (concurrent
requests share one model call on the model's own thread, which the event loop awaits) and answers
through ``contracts.answers``, which batch scoring shares. Built once per model, with a
warm-up that traces every graph, so no request pays for tracing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from contracts.answers import COLD_START, Answers, PageRequest, ig_note
from contracts.model_info import ModelInfo
from contracts.pseudonyms import Pseudonymiser
from contracts.shopper_store import ShopperStore
from models.queries import Filters, Query
from models.reasons import similar_said
from models.two_stage import TwoStageRecommender
from serving import metrics
from serving.batching import MicroBatcher
from serving.shoppers import LiveShoppers


class UnknownItem(LookupError):
    """An item id the served model's catalogue does not hold."""


@dataclass(frozen=True)
class Page:
    """One answer: item dicts shaped like ``schemas.Item`` and the fallback used, if any."""

    user_id: str
    items: list[dict]
    fallback: str | None
    pseudonym: str  # the shopper as curated data and the traffic log know them


class Engine:
    def __init__(
        self, recommender: TwoStageRecommender, info: ModelInfo, pseudonymiser: Pseudonymiser,
        store: ShopperStore | None = None,
    ) -> None:
        self.rec, self.info, self.pseudonymiser = recommender, info, pseudonymiser
        # The online store over the bundle's snapshot (None: the snapshot alone).
        self.shoppers: LiveShoppers | None = None
        if store is not None:
            self.shoppers = LiveShoppers(store, recommender.spec, recommender.histories,
                                         recommender.purchased,
                                         item_index=recommender.item_index)
            recommender.use_shoppers(self.shoppers.histories, self.shoppers.purchased)
        self.loaded_at = datetime.now(UTC)
        self.answers = Answers(recommender)
        # Model work runs on these batchers' threads: the event loop only awaits it.
        self.recommend_batches = MicroBatcher(
            self.answers.pages, metrics.batch_observer("recommend", info.version))
        self.explain_batches = MicroBatcher(
            self.rec.explain_many, metrics.batch_observer("explain", info.version))
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
            return Page(user_id, self.answers.popular(k, explain, filters), COLD_START, user)
        query = Query(user, k, exclude_purchased, filters, pd.Timestamp.now(tz="UTC"))
        return Page(user_id, await self.recommend_batches.run(PageRequest(query, explain)), None,
                    user)

    async def explain(self, raw_user: str, item_id: str) -> tuple[dict, str | None]:
        """The explanation of one (user, item) pair, scored as the ranker scores it. Unknown
        shoppers are explained too (an empty history is a real input); the fallback says so."""
        item = self.index_of(item_id)
        user = self.pseudonymiser.one(raw_user)
        [explained] = await self.explain_batches.run((user, np.array([item])))
        return ({"score": explained.explanation.score, "explanation": ig_note(explained)},
                None if self.rec.is_known(user) else COLD_START)

    def similar(self, item_id: str, k: int = 10) -> list[dict]:
        """Nearest items by candidate-tower embedding, with the attributes they share."""
        item = self.index_of(item_id)
        found = self.rec.similar(item, k)
        out = []
        for rank, (other, score) in enumerate(zip(found.items, found.scores, strict=True), 1):
            shared = self.rec.shared_attributes(item, int(other))
            out.append(self.answers.item(int(other), float(score), rank)
                       | {"shared": [name for name, _ in shared],
                          "said": similar_said(shared)})
        return out

    def history(self, raw_user: str, k: int = 10) -> list[dict]:
        """The shopper's most recent purchases as the model sees them, most recent first."""
        items = self.rec.histories.get(self.pseudonymiser.one(raw_user), ())
        recent = [int(i) for i in items if i][::-1][:k]
        return [{key: value for key, value in self.answers.item(i, 0.0, 0).items()
                 if key in ("item_id", "title", "category", "price")} for i in recent]

    def index_of(self, item_id: str) -> int:
        index = self.rec.item_index.get(item_id, 0)
        if index == 0:
            raise UnknownItem(f"unknown item_id {item_id!r}: not in the served model's catalogue")
        return index

    # ---- parts ------------------------------------------------------------------------------
    def _warm_up(self) -> None:
        """Trace every graph now (fixed signatures: any k reuses them) and word every item's
        explanation values, so no request pays for either."""
        known = self.rec.known_users[0]
        self.answers.pages([PageRequest(Query(known, 1, when=pd.Timestamp.now(tz="UTC")), False)])
        self.rec.explain_many([(known, np.array([1]))])
        self.rec.value_book.prepare()
        self.similar(str(self.rec.item_ids[1]), k=1)

