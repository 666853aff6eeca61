"""The explaining half of ``TwoStageRecommender``: integrated gradients over ranked pages, with
the purchases credited and the reason each item's attributions support.

A base class of the recommender rather than a second object, so one recommender keeps one
cached explainer, baseline and value book; it reads the recommender's ``features_for_many``,
``pair_features``, ``ranker``, ``spec``, ``table``, ``titles`` and ``item_ids``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
import pandas as pd

from models.explain import Explanation, IntegratedGradients, average_baseline
from models.purchase_attribution import strongest_purchases
from models.queries import ExplainedItem
from models.ranking import PURCHASES
from models.reasons import render, said
from models.values import ValueBook

BASELINE_PAIRS = 512  # (shopper, item) pairs averaged into IG's reference point


class ExplainsPages:
    def typical_pairs(self, size: int = BASELINE_PAIRS, seed: int = 0) -> dict[str, np.ndarray]:
        """Known shoppers at any hour and weekday, each paired with a uniformly drawn item.

        Averaged (``average_baseline``) this is the "typical shopper looking at a typical item"
        reference point of integrated gradients. Averaging over recommended items instead would
        cancel what they all share: often the very preference that got them picked.
        """
        users = self.known_users
        if not users:
            raise ValueError("the model knows no users: nothing to average a baseline over")
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(users), size=size, replace=len(users) < size)
        pairs = self.features_for_many([users[i] for i in picked])
        pairs["hour"] = rng.integers(0, 24, size).astype(np.int32)
        pairs["day_of_week"] = rng.integers(0, 7, size).astype(np.int32)
        pairs["item_id"] = rng.integers(1, self.spec.items.size, size).astype(np.int32)
        # The wide part's reference is 0 whatever the record (``average_baseline``): no need
        # to embed 512 shoppers' whole records for it.
        pairs[PURCHASES] = np.zeros((size, 1), np.int32)
        return pairs

    def bought_because(self, purchases: np.ndarray, explanation: Explanation, most: int = 2
                       ) -> list[tuple[int, float]]:
        """The past purchases that pushed this score up, strongest first: (item id, its
        attribution), positive ones only, at most ``most``. ``purchases`` is the pair's row of
        ``wide_input`` it was explained with."""
        if not explanation.slots:
            return []
        return strongest_purchases(np.asarray(purchases)[None], np.array([explanation.slots]),
                                   most)[0]

    @property
    def wide_input(self) -> str:
        """The input whose rows an explanation's per-purchase ``slots`` line up with."""
        return self.ranker.item_item.input_name

    @cached_property
    def value_book(self) -> ValueBook:
        """What explained pairs' features read as; per-item parts kept across requests."""
        return ValueBook(self.spec, self.table, self.titles, self.item_ids)

    @cached_property
    def ig_baseline(self) -> dict[str, np.ndarray]:
        """The typical (shopper, item, moment) pair, embedded: IG's reference point."""
        return average_baseline(self.ranker, self.typical_pairs())

    @cached_property
    def explainer(self) -> IntegratedGradients:
        return IntegratedGradients(self.ranker, self.ig_baseline)

    def explain_many(
        self,
        pages: Sequence[tuple[str, np.ndarray]],
        when: pd.Timestamp | Sequence[pd.Timestamp | None] | None = None,
    ) -> list[list[ExplainedItem]]:
        """Explain each (shopper, item ids) page with one IG call for all of them."""
        if not pages:
            return []
        users, items = [u for u, _ in pages], [np.asarray(i) for _, i in pages]
        pairs = self.pair_features(users, items, when)
        explanations = self.explainer.explain(pairs) if len(pairs["item_id"]) else []
        if explanations and explanations[0].slots:
            bought = strongest_purchases(pairs[self.wide_input], [e.slots for e in explanations])
        else:
            bought = [[] for _ in explanations]
        titles = [[self.titles[self.item_ids[i]] for i, _ in named] for named in bought]
        values = self.value_book.values(pairs, titles)
        facts = [said(e, v, t) for e, v, t in zip(explanations, values, titles, strict=True)]
        explained = iter(ExplainedItem(e, v, render(f), f)
                         for e, v, f in zip(explanations, values, facts, strict=True))
        return [[next(explained) for _ in page] for page in items]
