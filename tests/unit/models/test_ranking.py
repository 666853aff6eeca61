"""What a source carries beyond the core columns (tags, ratings, shopper attributes) reaches the
models, reads back from a bundle, and is only ever stated in a reason when true."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contracts.bundle import load_bundle, save_bundle
from models.explain import Explanation
from models.feature_spec import FeatureSpec, split_values
from models.fit import fit_two_stage
from models.inputs import (
    RATING_PRIOR,
    first_purchases,
    item_table,
    latest_histories,
    pad_left,
    shopper_table,
)
from models.ranking import RANKING_FEATURES
from models.reasons import reason_features
from models.values import ValueBook
from pipelines.data.features import build_features
from tests.support.tiny import TINY, tiny_shop


def side_shop() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The tiny shop with tags on its items, ratings on its events and shopper segments."""
    events, items, users = tiny_shop()
    items = items.assign(tags=["summer|linen" if i % 3 == 0 else "winter" if i % 3 == 1
                               else None for i in range(len(items))])
    events = events.assign(rating=np.where(events["item_id"].isin(["I0", "I2"]), 5.0, 2.0))
    users = users.assign(segments=["tier:gold|age:25-34" if i % 2 else None
                                   for i in range(len(users))])
    return events, items, users


def test_split_values_drops_blanks_and_repeats() -> None:
    assert split_values(" a|b || a |") == ["a", "b"]
    assert split_values(None) == [] and split_values(float("nan")) == [] \
        and split_values(pd.NA) == []


def test_spec_and_tables_carry_tags_ratings_and_shopper_attributes() -> None:
    events, items, users = side_shop()
    spec = FeatureSpec.build(events, items, users, history_length=4)
    assert set(spec.tags.values[1:]) == {"summer", "linen", "winter"}
    assert {"country:UK", "tier:gold", "age:25-34"} == set(spec.shopper_attributes.values[1:])
    assert FeatureSpec.from_dict(spec.to_dict()) == spec

    table = item_table(spec, items, events["item_id"], ratings=events["rating"])
    i0, i1 = spec.items.lookup(["I0", "I1"])
    assert {spec.tags.values[t] for t in table.tags[i0] if t} == {"summer", "linen"}
    assert (table.tags[spec.items.lookup(["I2"])[0]] == 0).all(), "no tags: all padding"
    # The mean deviation from the mean of all ratings, shrunk by RATING_PRIOR pseudo-ratings.
    mean = events["rating"].mean()
    own = events.loc[events["item_id"] == "I0", "rating"]
    expected = (own - mean).sum() / (len(own) + RATING_PRIOR)
    assert table.rating[i0] == pytest.approx(expected, rel=1e-5) and table.rating[i0] > 0
    assert table.rating[i1] < 0 and table.rating[0] == 0

    shoppers = shopper_table(spec, users)
    gold = spec.users.lookup([users["user_id"].iloc[1]])[0]
    plain = spec.users.lookup([users["user_id"].iloc[0]])[0]
    named = {spec.shopper_attributes.values[a] for a in shoppers.attributes[gold] if a}
    assert named == {"country:UK", "tier:gold", "age:25-34"}
    assert {spec.shopper_attributes.values[a] for a in shoppers.attributes[plain] if a} \
        == {"country:UK"}
    assert (shoppers.attributes[0] == 0).all(), "an unknown shopper has no attributes"


def test_without_side_data_the_features_are_zero() -> None:
    events, items, users = tiny_shop()  # no tags, ratings or segments
    spec = FeatureSpec.build(events, items, users, history_length=4)
    table = item_table(spec, items, events["item_id"])
    assert spec.tags.size == 1 and (table.tags == 0).all() and (table.rating == 0).all()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    events, items, users = side_shop()
    features = build_features(events, items, users, history_length=4)
    fitted = fit_two_stage(features.spec, features.table, features.train, features.valid, TINY,
                           shoppers=features.shoppers)
    return features, fitted, items, events, tmp_path_factory.mktemp("bundle")


def _pairs(features, rows: slice) -> dict[str, np.ndarray]:
    train = features.train
    return {"user_id": train.user[rows], "history": train.history[rows],
            "hour": train.hour[rows], "day_of_week": train.day_of_week[rows],
            "item_id": train.item[rows], "purchases": pad_left(train.subset(rows).bags())}


def test_the_models_read_the_side_features(trained) -> None:
    features, fitted, *_ = trained
    pairs = _pairs(features, slice(0, 40))
    embedded = fitted.ranker.embed(pairs)
    assert tuple(embedded) == RANKING_FEATURES
    # tag_affinity: the share of the history's items with a tag of the item's, by hand.
    table = features.table
    history, items = pairs["history"], pairs["item_id"]
    held = history != 0
    shares = []
    for row in range(len(items)):
        own = set(table.tags[items[row]]) - {0}
        carries = [bool(own & (set(table.tags[h]) - {0})) for h in history[row][held[row]]]
        shares.append(sum(carries) / max(held[row].sum(), 1))
    np.testing.assert_allclose(embedded["tag_affinity"].numpy()[:, 0], shares, atol=1e-6)
    np.testing.assert_allclose(embedded["rating"].numpy()[:, 0], table.rating[items])
    assert np.abs(embedded["tags"].numpy()).sum() > 0

    # Another shopper's attributes change the query and the score: they are read, not carried.
    gold = features.shoppers.attributes[pairs["user_id"]].any(axis=1)
    query = fitted.retrieval.query_tower(pairs).numpy()
    swapped = dict(pairs, user_id=np.zeros_like(pairs["user_id"]))  # an unknown shopper
    assert not np.allclose(fitted.retrieval.query_tower(swapped).numpy()[gold], query[gold])
    assert np.allclose(fitted.ranker.embed(swapped)["shopper"].numpy(), 0.0)


def test_a_bundle_keeps_the_shopper_table(trained) -> None:
    features, fitted, items, events, folder = trained
    spec = features.spec
    save_bundle(Path(folder), spec, TINY.to_dict(), features.table, items,
                latest_histories(spec, events), first_purchases(spec, events),
                fitted.retrieval, fitted.ranker, features.shoppers)
    loaded = load_bundle(Path(folder))
    pairs = _pairs(features, slice(0, 20))
    np.testing.assert_allclose(loaded.ranker(pairs).numpy(), fitted.ranker(pairs).numpy(),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(loaded.ranker.shopper.attributes.numpy(),
                                  features.shoppers.attributes)


def test_tag_and_rating_reasons_state_only_what_is_true(trained) -> None:
    features, *_ = trained
    spec, table = features.spec, features.table
    book = ValueBook(spec, table)
    i0, i1, i3 = (int(i) for i in spec.items.lookup(["I0", "I1", "I3"]))
    history = np.array([[0, i0, i3, i1]])  # I0 and I3: summer|linen; I1: winter
    values = book.values({"item_id": np.array([i3]), "history": history,
                          "hour": np.array([9]), "day_of_week": np.array([0])}, [[]])[0]
    assert values["tag"] in ("summer", "linen") and values["tag_count"] == "2"
    assert values["rated_high"] == ("yes" if table.rating[i3] > 0 else "unknown")
    assert values["shopper"] == "your profile", "a reason never echoes the attributes"
    attributions = {name: 0.0 for name in RANKING_FEATURES}
    explanation = Explanation(0.9, 0.0, attributions | {"tag_affinity": 0.5, "rating": 0.4}, 0.0)
    stated = reason_features(explanation, values)
    assert "tag_affinity" in stated
    assert ("rating" in stated) == (table.rating[i3] > 0)
    low = book.values({"item_id": np.array([i1]), "history": history,
                       "hour": np.array([9]), "day_of_week": np.array([0])}, [[]])[0]
    assert table.rating[i1] < 0 and "rating" not in reason_features(explanation, low), \
        "a below-average item is never called highly rated"


def test_the_deep_part_keeps_the_weight_that_scores_best() -> None:
    from models.fit import choose_deep_weight

    choice = choose_deep_weight({0.0: 0.089, 0.25: 0.090, 0.5: 0.0885, 1.0: 0.079})
    assert choice["chosen"] == 0.25 and choice["wide_only"] == 0.089
    assert choose_deep_weight({0.0: 0.10, 1.0: 0.05})["chosen"] == 0.0, "dropped"
    assert choose_deep_weight({0.0: 0.10, 1.0: 0.10})["chosen"] == 1.0, "a tie keeps it"
