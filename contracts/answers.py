"""What a shopper is shown: ranked pages shaped as the endpoint answers them.

The HTTP endpoint (``serving.engine``) and batch scoring (``pipelines.steps.score``) both turn the
recommender's batch API into these dicts (``serving.schemas.Item``: item id, title, category,
price, score, rank and the explanation with its reason), so a shopper's batch rows and HTTP answer
cannot disagree: one code path ranks, explains and shapes both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.queries import ExplainedItem, Filters, Query
from models.reasons import PLAIN, popular_said, render
from models.two_stage import TwoStageRecommender

COLD_START = "cold_start"
IG = "integrated_gradients"
POPULARITY = "popularity"


@dataclass(frozen=True)
class PageRequest:
    """One known shopper's query, and whether the page should be explained."""

    query: Query
    explain: bool


class Answers:
    """Shapes one recommender's answers; built once per model (item prices are read once)."""

    def __init__(self, recommender: TwoStageRecommender) -> None:
        self.rec = recommender
        self.prices = [float(p) if np.isfinite(p) else None for p in recommender.price]

    def pages(self, requests: Sequence[PageRequest]) -> list[list[dict]]:
        """Rank every query in one batch call, then explain every requested page in one IG
        call."""
        ranked = self.rec.recommend_many([r.query for r in requests])
        wanted = [i for i, r in enumerate(requests) if r.explain and len(ranked[i].items)]
        explained = dict(zip(wanted, self.rec.explain_many(
            [(requests[i].query.user, ranked[i].items) for i in wanted],
            [requests[i].query.when for i in wanted]), strict=True))
        pages = []
        for i, answer in enumerate(ranked):
            notes = ([ig_note(e) for e in explained[i]] if i in explained
                     else [None] * len(answer.items))
            pages.append([self.item(int(item), float(score), rank) | {"explanation": note}
                          for rank, (item, score, note)
                          in enumerate(zip(answer.items, answer.scores, notes, strict=True), 1)])
        return pages

    def item(self, index: int, score: float, rank: int) -> dict:
        key = str(self.rec.item_ids[index])
        return {"item_id": key, "title": self.rec.titles[key],
                "category": str(self.rec.category[index]), "price": self.prices[index],
                "score": score, "rank": rank, "new": bool(self.rec.is_new[index])}

    def popular(self, k: int, explain: bool, filters: Filters) -> list[dict]:
        """Best sellers within the requested segment, for shoppers the model does not know.
        Their score is the item's share of purchases; no attribution method produced it, so the
        note says what it is (``kind: popularity``) and carries no attribution fields."""
        items = []
        for rank, index in enumerate(self.rec.popular(k, filters), start=1):
            share = float(self.rec.table.popularity[index])
            said = popular_said(share, filters.category)
            note = {"kind": POPULARITY, "reason": render(said, PLAIN), "said": said,
                    "share_of_purchases": share} if explain else None
            items.append(self.item(int(index), share, rank) | {"explanation": note})
        return items


def ig_note(explained: ExplainedItem) -> dict:
    """An integrated-gradients explanation shaped like ``schemas.Explanation``, with its
    reason's facts (``said``), which ``contracts.i18n.localise`` words per locale."""
    exp = explained.explanation
    return {
        "kind": IG,
        "reason": explained.reason,
        "said": explained.said,
        "attributions": [{"feature": f, "value": explained.values.get(f, ""), "attribution": a}
                         for f, a in exp.sorted_attributions() if a != 0.0],
        "baseline_score": exp.baseline_score,
        "completeness_delta": exp.completeness_delta,
    }
