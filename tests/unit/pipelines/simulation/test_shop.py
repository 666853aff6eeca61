"""Reading the simulator's shoppers and catalogue from both layouts that hold planted tastes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from contracts.pseudonyms import Pseudonymiser
from pipelines.data.sources.base import UsageError
from pipelines.data.synthetic_shop import ShopSpec, generate_shop
from pipelines.simulation.behaviour import match
from pipelines.simulation.shop import load_shop, sample_shoppers

KEY = "test-key"
BANDS = {"toys": {"low": [1.0, 10.0], "mid": [10.0, 20.0], "high": [20.0, 50.0]}}


def _data_dir(root: Path, key: str = KEY) -> Path:
    """An ingested data directory's parts the simulator reads, written by hand."""
    pseudonym = Pseudonymiser(key).one
    truth = {"price_bands": BANDS, "users": {
        pseudonym("C1"): {"category": "toys", "brand": "Playfold", "price_band": "mid"},
        pseudonym("C2"): {"category": "toys", "brand": "", "price_band": "low"},
        pseudonym("C9"): {"category": "toys", "brand": "Playfold", "price_band": "high"},
    }}
    (root / "reference").mkdir(parents=True)
    (root / "reference" / "ground_truth.json").write_text(json.dumps(truth))
    landed = root / "landing" / "synthetic" / "synthetic_users_abc"
    landed.mkdir(parents=True)
    (landed / "users.csv").write_text("customer_id,country,signup_date\nC1,DE,2025-01-01\n"
                                      "C2,FR,2025-01-01\n C3 ,FR,2025-01-01\n")
    items = root / "curated" / "items" / "batch_date=2026-01-01"
    items.mkdir(parents=True)
    pd.DataFrame({"item_id": ["T1", "T2"], "title": ["Puzzle", "Kite"],
                  "category": ["toys", "toys"], "brand": ["Playfold", None],
                  "price": [12.0, None]}).to_parquet(items / "b1.parquet")
    return root


def test_a_generated_shop_gives_raw_ids_and_a_catalogue_every_taste_can_match(
        tmp_path: Path) -> None:
    generate_shop(tmp_path / "shop", ShopSpec(days=1, users=30, items=40, seed=3))

    shop = load_shop(tmp_path / "shop")

    assert [s.user_id for s in shop.shoppers] == [f"C{i:06d}" for i in range(1, 31)]
    assert len(shop.products) == 40
    assert all(p.price_band in ("low", "mid", "high") for p in shop.products.values())
    # The generator plants only tastes its catalogue stocks: with the bands recomputed from
    # ground_truth.json's cuts, every shopper has an item matching category, brand and band.
    for shopper in shop.shoppers:
        best = max(match(shopper.taste, p) for p in shop.products.values())
        assert best == pytest.approx(1.0 if shopper.taste.brand else 0.7), shopper


def test_an_ingested_data_dir_maps_landed_raw_ids_to_pseudonymised_tastes(
        tmp_path: Path) -> None:
    shop = load_shop(_data_dir(tmp_path / "data"), KEY)

    # C3 has no planted taste, C9 was never landed: neither can visit.
    assert [(s.user_id, s.taste.price_band) for s in shop.shoppers] == [("C1", "mid"),
                                                                         ("C2", "low")]
    assert shop.products["T1"].brand == "Playfold"
    assert shop.products["T1"].price_band == "mid"
    assert shop.products["T2"].price is None and shop.products["T2"].price_band == ""
    assert shop.products["T2"].brand == ""


def test_without_the_key_or_with_another_it_says_so(tmp_path: Path) -> None:
    data_dir = _data_dir(tmp_path / "data")
    with pytest.raises(UsageError, match="SHOPREC_PSEUDONYM_KEY"):
        load_shop(data_dir, None)
    with pytest.raises(UsageError, match="the key the data was ingested with"):
        load_shop(data_dir, "another-key")


def test_real_data_has_no_planted_tastes(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no planted preferences"):
        load_shop(tmp_path, KEY)


def test_sampling_is_distinct_seeded_and_capped(tmp_path: Path) -> None:
    generate_shop(tmp_path / "shop", ShopSpec(days=1, users=30, items=40))
    shoppers = load_shop(tmp_path / "shop").shoppers

    first = sample_shoppers(shoppers, 10, seed=1)
    assert first == sample_shoppers(shoppers, 10, seed=1)
    assert len({s.user_id for s in first}) == 10
    assert first != sample_shoppers(shoppers, 10, seed=2)
    assert len(sample_shoppers(shoppers, 500, seed=1)) == 30


def test_planted_activity_is_read_and_matches_how_much_each_shopper_browsed(tmp_path: Path) -> None:
    shop = generate_shop(tmp_path / "inbox", ShopSpec(days=10, users=150, items=120, seed=3))
    shoppers = load_shop(tmp_path / "inbox").shoppers
    activity = pd.Series({s.user_id: s.activity for s in shoppers})
    assert (activity > 0).all() and activity.mean() == pytest.approx(1.0, abs=0.01)
    assert activity.max() > 3 * activity.median(), "a few heavy shoppers, many light ones"
    views = pd.concat(pd.read_csv(f) for f in shop.event_files)
    views = views[views["event_type"] == "view"].groupby("customer_id").size()
    joined = pd.concat([activity, views], axis=1).fillna(0)
    assert joined.corr(method="spearman").iloc[0, 1] > 0.7


def test_a_shop_without_planted_activity_or_with_a_broken_one_gets_the_mean(
        tmp_path: Path) -> None:
    root = _data_dir(tmp_path)
    truth_file = root / "reference" / "ground_truth.json"
    truth = json.loads(truth_file.read_text())
    first = Pseudonymiser(KEY).one("C2")
    truth["users"][first]["activity"] = "lots"
    truth_file.write_text(json.dumps(truth))
    assert {s.activity for s in load_shop(root, KEY).shoppers} == {1.0}
