"""Tests for the synthetic shop generator: its landing format, funnel, planted tastes and faults.

The ingestion adapter and the recommender's evaluation both rely on these properties, so each
test pins one of them down on a small shop that generates in well under a second.
"""

from __future__ import annotations

import csv
import datetime
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from pipelines.data.synthetic_shop import GeneratedShop, ShopSpec, generate_shop

SMALL = ShopSpec(days=5, users=120, items=150)
EVENT_COLUMNS = [
    "event_id", "customer_id", "item_id", "event_type", "quantity", "unit_price", "timestamp",
    "order_id",
]


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _events(shop: GeneratedShop) -> pd.DataFrame:
    frames = [_read(path).assign(file_date=path.stem) for path in shop.event_files]
    return pd.concat(frames, ignore_index=True)


def _all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _item_bands(items: pd.DataFrame, truth: dict) -> pd.Series:
    """Each item's price band per the ground truth's tertile bounds (upper bounds inclusive)."""

    def band(category: str, price: str) -> str:
        bounds = truth["price_bands"][category]
        value = float(price)
        if value <= bounds["low"][1]:
            return "low"
        return "mid" if value <= bounds["mid"][1] else "high"

    pairs = zip(items["category"], items["price"], strict=True)
    return pd.Series([band(c, p) for c, p in pairs], index=items.index)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> GeneratedShop:
    return generate_shop(tmp_path_factory.mktemp("shop"), SMALL)


@pytest.fixture(scope="module")
def default_shop(tmp_path_factory: pytest.TempPathFactory) -> GeneratedShop:
    """The CLI's defaults: big enough for volume, seasonality and returns to show."""
    return generate_shop(tmp_path_factory.mktemp("default"), ShopSpec())


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> GeneratedShop:
    return generate_shop(tmp_path_factory.mktemp("faulty"), replace(SMALL, faults=True))


def test_same_spec_gives_identical_bytes(tmp_path: Path) -> None:
    spec = ShopSpec(days=3, users=60, items=80, faults=True)
    first = _all_files(generate_shop(tmp_path / "a", spec).out_dir)
    second = _all_files(generate_shop(tmp_path / "b", spec).out_dir)
    assert len(first) == 1 + 1 + 1 + 1 + 3 + 1  # items, users, truth, faults.json, days, extra
    assert first == second


def test_different_seed_gives_different_data(tmp_path: Path, shop: GeneratedShop) -> None:
    other = generate_shop(tmp_path, ShopSpec(days=5, users=120, items=150, seed=8))
    for mine, theirs in zip(shop.event_files, other.event_files, strict=True):
        assert mine.name == theirs.name
        assert mine.read_bytes() != theirs.read_bytes()
    mine_truth = json.loads(shop.ground_truth_file.read_text(encoding="utf-8"))["users"]
    their_truth = json.loads(other.ground_truth_file.read_text(encoding="utf-8"))["users"]
    assert mine_truth != their_truth


def test_faults_leave_the_clean_files_unchanged(shop: GeneratedShop, faulty: GeneratedShop) -> None:
    clean = _all_files(shop.out_dir)
    bad = _all_files(faulty.out_dir)
    faulty_names = {p.relative_to(faulty.out_dir).as_posix() for p in faulty.fault_files}
    assert set(bad) - set(clean) == {"faults.json"} | (faulty_names - set(clean))
    for name, data in clean.items():
        if name not in faulty_names and name != "ground_truth.json":
            assert bad[name] == data, name


def test_returned_paths_and_file_layout(shop: GeneratedShop) -> None:
    assert shop.items_file == shop.out_dir / "items.csv"
    assert shop.users_file == shop.out_dir / "users.csv"
    assert shop.ground_truth_file == shop.out_dir / "ground_truth.json"
    assert [p.name for p in shop.event_files] == [
        f"{SMALL.start + datetime.timedelta(days=d)}.csv" for d in range(SMALL.days)
    ]
    assert all(p.parent == shop.out_dir / "events" for p in shop.event_files)
    assert shop.fault_files == []
    assert not (shop.out_dir / "faults.json").exists()
    assert sorted((shop.out_dir / "events").iterdir()) == shop.event_files


def test_csv_headers_and_line_endings(shop: GeneratedShop) -> None:
    expected = {
        shop.items_file: ["item_id", "title", "category", "brand", "price", "first_seen"],
        shop.users_file: ["customer_id", "country", "signup_date"],
        **{path: EVENT_COLUMNS for path in shop.event_files},
    }
    for path, columns in expected.items():
        data = path.read_bytes()
        assert data.endswith(b"\n") and b"\r" not in data, path
        text = data.decode("utf-8")
        rows = list(csv.reader(text.splitlines()))
        assert rows[0] == columns, path
        assert len(rows) > 1 and all(len(row) == len(columns) for row in rows), path


def test_catalogue_values(shop: GeneratedShop) -> None:
    items = _read(shop.items_file)
    assert items["item_id"].is_unique
    assert items["item_id"].str.fullmatch(r"SKU\d{5}").all()
    assert items["price"].str.fullmatch(r"\d+\.\d{2}").all()
    assert (items["price"].astype(float) > 0).all()
    assert items["category"].nunique() == 8
    assert items["first_seen"].str.fullmatch(r"\d{4}-\d{2}-\d{2}T00:00:00Z").all()
    first_seen = pd.to_datetime(items["first_seen"], utc=True)
    assert (first_seen < pd.Timestamp(SMALL.start, tz="UTC")).all()
    assert 15 <= items["brand"].replace("", pd.NA).nunique() <= 20
    assert 0 < (items["brand"] == "").mean() < 0.15
    branded = items[items["brand"] != ""]
    pairs = zip(branded["title"], branded["brand"], strict=True)
    assert all(title.startswith(brand + " ") for title, brand in pairs)
    assert (items["title"].str.split().str.len() >= 2).all()
    # Price levels differ by category, so price bands mean something per category.
    medians = items.assign(p=items["price"].astype(float)).groupby("category")["p"].median()
    assert medians["electronics"] > 2 * medians["books"]


def test_users_values(shop: GeneratedShop) -> None:
    users = _read(shop.users_file)
    assert len(users) == SMALL.users and users["customer_id"].is_unique
    assert users["customer_id"].str.fullmatch(r"C\d{6}").all()
    assert users["country"].str.fullmatch(r"[A-Z]{2}").all() and users["country"].nunique() > 3
    signup = pd.to_datetime(users["signup_date"], format="%Y-%m-%d")
    assert (signup < pd.Timestamp(SMALL.start)).all()


def test_event_values(shop: GeneratedShop) -> None:
    events = _events(shop)
    items = _read(shop.items_file).set_index("item_id")
    users = _read(shop.users_file)
    assert set(events["event_type"]) <= {"view", "add_to_cart", "purchase", "return"}
    assert {"view", "add_to_cart", "purchase"} <= set(events["event_type"])
    assert events["event_id"].is_unique
    assert events["event_id"].str.fullmatch(r"E\d{7}").all()
    assert events["timestamp"].str.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z").all()
    assert (events["timestamp"].str[:10] == events["file_date"]).all()
    quantity = events["quantity"].astype(int)
    assert (quantity > 0).all()
    assert (quantity[events["event_type"] == "view"] == 1).all()
    assert events["item_id"].isin(items.index).all()
    assert events["customer_id"].isin(users["customer_id"]).all()
    assert (events["unit_price"] == items.loc[events["item_id"], "price"].to_numpy()).all()
    has_order = events["event_type"].isin(["purchase", "return"])
    assert events.loc[has_order, "order_id"].str.fullmatch(r"O\d{6}").all()
    assert (events.loc[~has_order, "order_id"] == "").all()


def test_volume_seasonality_and_trend(default_shop: GeneratedShop) -> None:
    events = _events(default_shop)
    per_day = events.groupby("file_date").size()
    assert len(per_day) == 30 and per_day.between(1000, 4000).all()
    weekend = pd.to_datetime(per_day.index).day_of_week >= 5
    assert per_day[weekend].mean() > 1.1 * per_day[~weekend].mean()
    assert per_day.iloc[15:].mean() > per_day.iloc[:15].mean()
    hour = events["timestamp"].str[11:13].astype(int)
    assert (hour.between(18, 21)).sum() > 3 * (hour.between(2, 5)).sum()


def test_funnel_narrows_and_purchases_follow_views(shop: GeneratedShop) -> None:
    events = _events(shop)
    counts = events["event_type"].value_counts()
    assert counts["view"] > 3 * counts["add_to_cart"]
    assert counts["add_to_cart"] > counts["purchase"] > counts.get("return", 0)

    key = ["customer_id", "item_id", "file_date"]
    earliest = {
        kind: events[events["event_type"] == kind].groupby(key)["timestamp"].min().rename(kind)
        for kind in ("view", "add_to_cart")
    }
    purchases = events[events["event_type"] == "purchase"].join(earliest["view"], on=key)
    purchases = purchases.join(earliest["add_to_cart"], on=key)
    assert purchases["view"].notna().all()
    assert (purchases["view"] < purchases["timestamp"]).all()
    carted = purchases["add_to_cart"].notna() & (purchases["add_to_cart"] < purchases["timestamp"])
    assert carted.mean() > 0.75
    # Some orders hold several purchases.
    assert purchases.groupby("order_id").size().max() > 1


def test_returns_refer_to_earlier_purchases(default_shop: GeneratedShop) -> None:
    events = _events(default_shop)
    purchases = events[events["event_type"] == "purchase"]
    returns = events[events["event_type"] == "return"]
    assert 0.01 < len(returns) / len(purchases) < 0.1
    matched = returns.merge(
        purchases, on=["order_id", "customer_id", "item_id"], suffixes=("", "_purchase")
    )
    assert returns["event_id"].isin(matched["event_id"]).all()
    assert (matched["file_date"] > matched["file_date_purchase"]).all()
    # An order can hold the same item twice, so compare with the largest matching purchase.
    bought = matched["quantity_purchase"].astype(int).groupby(matched["event_id"]).max()
    returned = returns.set_index("event_id")["quantity"].astype(int)
    assert (returned <= bought.reindex(returned.index)).all()


def test_planted_preferences_are_recoverable(shop: GeneratedShop) -> None:
    truth = json.loads(shop.ground_truth_file.read_text(encoding="utf-8"))
    assert truth["seed"] == SMALL.seed and truth["spec"]["start"] == SMALL.start.isoformat()
    items = _read(shop.items_file).set_index("item_id")
    items["band"] = _item_bands(items, truth)
    events = _events(shop).join(items[["category", "brand", "band"]], on="item_id")

    strong = events[events["event_type"].isin(["add_to_cart", "purchase"])]
    active = strong.groupby("customer_id").size()
    active = active[active >= 10].index
    assert len(active) >= 5

    catalogue_share = items["category"].value_counts(normalize=True)
    shares, base_rates, brand_hits, band_hits = [], [], [], []
    for customer in active:
        mine = events[events["customer_id"] == customer]
        planted = truth["users"][customer]
        shares.append((mine["category"] == planted["category"]).mean())
        base_rates.append(catalogue_share[planted["category"]])
        brand_hits.append(mine["brand"].value_counts().idxmax() == planted["brand"])
        band_hits.append(mine["band"].value_counts().idxmax() == planted["price_band"])
    assert max(base_rates) < 0.2
    assert sum(shares) / len(shares) >= max(0.6, 3 * sum(base_rates) / len(base_rates))
    assert sum(brand_hits) / len(brand_hits) >= 0.7
    assert sum(band_hits) / len(band_hits) >= 0.7


def test_ground_truth_is_consistent_with_catalogue(shop: GeneratedShop) -> None:
    truth = json.loads(shop.ground_truth_file.read_text(encoding="utf-8"))
    items = _read(shop.items_file)
    users = _read(shop.users_file)
    assert list(truth) == ["seed", "spec", "price_bands", "users"]
    assert list(truth["users"]) == users["customer_id"].tolist()
    assert set(truth["price_bands"]) == set(items["category"])
    for category, bands in truth["price_bands"].items():
        prices = items.loc[items["category"] == category, "price"].astype(float)
        assert bands["low"][0] == prices.min() and bands["high"][1] == prices.max()
        assert bands["low"][1] == bands["mid"][0] <= bands["mid"][1] == bands["high"][0]
    stocked = set(zip(items["category"], items["brand"], strict=True))
    for planted in truth["users"].values():
        assert planted["price_band"] in {"low", "mid", "high"}
        assert (planted["category"], planted["brand"]) in stocked


def test_faults_are_listed_and_broken(faulty: GeneratedShop) -> None:
    listing = json.loads((faulty.out_dir / "faults.json").read_text(encoding="utf-8"))
    assert len(listing) == 2 and len(faulty.fault_files) == 2
    assert [faulty.out_dir / entry["file"] for entry in listing] == faulty.fault_files
    assert all(entry["expect"] == "quarantined" and entry["fault"] for entry in listing)

    replaced, truncated = faulty.fault_files
    assert replaced == faulty.event_files[SMALL.days // 2]
    bad = _read(replaced)
    assert list(bad.columns) == EVENT_COLUMNS
    click_share = (bad["event_type"] == "click").mean()
    assert 0.01 < click_share < 0.06
    assert set(bad["event_type"]) - {"click"} <= {"view", "add_to_cart", "purchase", "return"}
    assert bad["event_id"].duplicated().sum() >= 2

    last = SMALL.start + datetime.timedelta(days=SMALL.days - 1)
    assert truncated.name == f"{last + datetime.timedelta(days=1)}.csv"
    assert truncated not in faulty.event_files
    data = truncated.read_bytes()
    assert data.startswith(",".join(EVENT_COLUMNS).encode() + b"\n")
    assert not data.endswith(b"\n")
    last_row = next(csv.reader([data.decode("utf-8").splitlines()[-1]]))
    assert 1 < len(last_row) < len(EVENT_COLUMNS)


def test_rerun_overwrites_and_clears_old_faults(tmp_path: Path) -> None:
    spec = ShopSpec(days=3, users=60, items=80)
    out = tmp_path / "reused"
    faulty = generate_shop(out, replace(spec, faults=True))
    clean = generate_shop(out, spec)
    assert not (out / "faults.json").exists()
    assert sorted((out / "events").iterdir()) == clean.event_files
    assert _all_files(out) == _all_files(generate_shop(tmp_path / "fresh", spec).out_dir)
    assert faulty.fault_files[0] in clean.event_files


def test_rejects_specs_it_cannot_honour(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_shop(tmp_path, ShopSpec(days=0))
    with pytest.raises(ValueError):
        generate_shop(tmp_path, ShopSpec(items=3))
