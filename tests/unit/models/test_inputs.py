"""Items added to the catalogue after training: the loaded model embeds them from their content
(category, brand, price, title; the unknown item's id embedding), ranks and explains them, and
prefers them for the shoppers whose purchases share that content."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from contracts.bundle import load_bundle, save_bundle
from models.fit import fit_two_stage
from models.inputs import first_purchases, latest_histories
from pipelines.data.features import build_features
from tests.support.tiny import TINY, tiny_shop

NEW = pd.DataFrame({  # one item like each parity's, never seen in training
    "item_id": ["N-lamp", "N-mug"], "title": ["Red lamp 90", "Blue mug 91"],
    "category": ["lighting", "kitchen"], "brand": ["Nord", "Nord"], "price": [9.0, 9.0],
})


# The deep part is what reads content: on the tiny shop the wide part alone would carry the score
# of the items it knows, and it has no row for an item it never saw.
CONFIG = replace(TINY, item_item=False)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    events, items, users = tiny_shop()
    features = build_features(events, items, users, history_length=CONFIG.history_length)
    fitted = fit_two_stage(features.spec, features.table, features.train, features.valid,
                           CONFIG)
    spec = features.spec
    folder = save_bundle(tmp_path_factory.mktemp("bundle"), spec, CONFIG.to_dict(),
                         features.table, items, latest_histories(spec, events),
                         first_purchases(spec, events), fitted.retrieval, fitted.ranker)
    return load_bundle(folder, catalogue_now=pd.concat([items, NEW], ignore_index=True)), events


def test_added_items_get_ids_after_the_trained_ones_and_are_marked_new(served) -> None:
    rec, _ = served
    n = rec.spec.items.size
    assert [rec.item_index["N-lamp"], rec.item_index["N-mug"]] == [n, n + 1]
    assert rec.is_new[n:].all() and not rec.is_new[:n].any()
    assert rec.titles["N-lamp"] == "Red lamp 90" and rec.category[n] == "lighting"
    assert np.abs(rec.embeddings[n]).sum() > 0, "the candidate tower embedded its content"


def test_added_items_are_ranked_for_the_shoppers_whose_purchases_match_them(served) -> None:
    rec, events = served
    lamp, mug = rec.item_index["N-lamp"], rec.item_index["N-mug"]
    prefers_match = []
    for user in rec.known_users:
        odd = int(user[2:], 16) % 2 == 1  # tiny-shop shoppers buy one parity: odd ones lamps
        page = rec.explain_many([(user, np.array([lamp, mug]))])[0]
        lamp_score, mug_score = (e.explanation.score for e in page)
        prefers_match.append((lamp_score > mug_score) == odd)
        for one in page:
            exp = one.explanation
            assert sum(exp.attributions.values()) == pytest.approx(
                exp.score - exp.baseline_score, abs=0.02), "complete for a new item too"
        if odd:  # the reason says why from its content's attributions
            assert "lighting" in page[0].reason, page[0].reason
    assert np.mean(prefers_match) >= 0.9, prefers_match
