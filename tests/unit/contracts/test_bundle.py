"""The model bundle carries the whole combined model: a loaded bundle answers and explains as the
trained model does, wide item-item part (B, slot weights, the deep part's weight) included."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.bundle import load_bundle, save_bundle
from models.fit import fit_two_stage
from models.inputs import latest_histories
from models.queries import Query
from models.two_stage import TwoStageRecommender
from pipelines.data.features import build_features
from tests.support.tiny import TINY, tiny_shop


def test_a_loaded_bundle_answers_and_explains_as_the_trained_model(tmp_path) -> None:
    events, items, users = tiny_shop()
    features = build_features(events, items, users, history_length=TINY.history_length)
    fitted = fit_two_stage(features.spec, features.table, features.train, features.valid, TINY)
    spec = features.spec
    histories = latest_histories(spec, events)
    purchased = {u: np.unique(spec.items.lookup(g["item_id"]))
                 for u, g in events.groupby("user_id")}
    trained = TwoStageRecommender(spec, features.table, fitted.retrieval, fitted.ranker, items,
                                  histories, purchased, retrieve_n=TINY.retrieve_n,
                                  item_item_n=TINY.item_item_n)
    fitted.ranker.deep_weight.assign(0.0)  # a non-default choice must survive the round trip
    folder = save_bundle(tmp_path / "bundle", spec, TINY.to_dict(), features.table, items,
                         histories, purchased, fitted.retrieval, fitted.ranker)

    loaded = load_bundle(folder)

    assert loaded.ease is not None and trained.ease is not None
    assert np.abs(trained.ease).sum() > 0, "the wide part was fitted"
    np.testing.assert_array_equal(loaded.ease, trained.ease)
    assert float(loaded.ranker.deep_weight.numpy()) == 0.0
    np.testing.assert_allclose(loaded.ranker.item_item.recency_weights.numpy(),
                               fitted.ranker.item_item.recency_weights.numpy())
    assert loaded.item_item_n == trained.item_item_n
    queries = [Query(u, 3) for u in trained.known_users]
    for a, b in zip(trained.recommend_many(queries), loaded.recommend_many(queries),
                    strict=True):
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    user = trained.known_users[0]
    [page] = loaded.explain_many([(user, loaded.recommend_many([Query(user, 3)])[0].items)])
    for one in page:
        exp = one.explanation
        assert sum(exp.slots) == pytest.approx(exp.attributions["history_items"], abs=1e-5)
