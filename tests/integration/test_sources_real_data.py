"""The adapters against the real data sets in ``../shared/datasets``, whose dirt hand-written
fixtures can only guess at; skipped in a clone without them."""

from __future__ import annotations

import pandas as pd
import pytest

from contracts.pseudonyms import Pseudonymiser
from pipelines.data.sources.base import BatchInput, Conformed, Source
from pipelines.data.sources.movielens import MovieLensSource
from pipelines.data.sources.online_retail import OnlineRetailSource
from tests.conftest import SHARED_DATASETS

DATASETS = SHARED_DATASETS
PS = Pseudonymiser("real-data-test-key")

pytestmark = pytest.mark.skipif(
    not DATASETS.is_dir(),
    reason="../shared/datasets is absent: the real-data adapter tests need the shared data sets",
)


def run(source: Source, batch: BatchInput) -> tuple[pd.DataFrame, Conformed]:
    raw = source.read_raw(batch)
    conformed = source.conform(raw, batch, PS)
    assert len(raw) == len(conformed.tables[conformed.primary]) + len(conformed.rejected)
    return raw, conformed


def check_batch_expectations(conformed: Conformed, batch: BatchInput) -> None:
    """What the critical batch checks will demand of the accepted rows."""
    events = conformed.tables["events"]
    required = ["event_id", "user_id", "item_id", "event_type", "quantity", "timestamp"]
    assert events[required].notna().all().all()
    assert events["event_id"].is_unique
    assert (events["quantity"] > 0).all()
    start, end = batch.window
    assert events["timestamp"].between(start, end, inclusive="left").all()
    items = conformed.tables["items"]
    assert set(events["item_id"]) <= set(items["item_id"])
    assert items[["item_id", "title", "category", "first_seen"]].notna().all().all()
    assert items["item_id"].is_unique
    assert set(events["user_id"]) <= set(conformed.tables["users"]["user_id"])
    assert events["user_id"].str.fullmatch(r"u_[0-9a-f]{16}").all()


@pytest.mark.parametrize("day", ["2010-12-01", "2010-12-05", "2011-12-09"])
def test_online_retail_days(day: str) -> None:
    source = OnlineRetailSource()
    (batch,) = source.discover([DATASETS / "online-retail" / "by-day" / f"{day}.csv"])
    raw, conformed = run(source, batch)
    check_batch_expectations(conformed, batch)
    reasons = set(conformed.rejected["reason"])
    # The data set's known dirt, and nothing that would mean the adapter misread a column.
    assert {"missing_customer_id", "non_product_stock_code"} <= reasons
    assert reasons <= {"missing_customer_id", "non_product_stock_code", "non_positive_price"}
    assert set(conformed.tables["events"]["event_type"]) <= {"purchase", "return"}
    # Raw ids look like 17850.0; neither form may survive in the rejected rows.
    raw_ids = set(raw["CustomerID"].dropna())
    assert not raw_ids & set(conformed.rejected["CustomerID"].dropna())
    assert not {i.removesuffix(".0") for i in raw_ids} & set(conformed.rejected["CustomerID"])


def test_online_retail_discovers_every_day_in_order() -> None:
    batches = OnlineRetailSource().discover([DATASETS / "online-retail" / "by-day"])
    assert len(batches) == 305
    dates = [b.batch_date for b in batches]
    assert dates == sorted(dates) and None not in dates


def test_movielens_100k() -> None:
    source = MovieLensSource()
    (batch,) = source.discover([DATASETS / "ml-100k"])
    raw, conformed = run(source, batch)
    assert len(raw) == 100_000
    assert conformed.rejected.empty  # the published data set is clean
    check_batch_expectations(conformed, batch)
    assert len(conformed.tables["items"]) == 1682
    assert len(conformed.tables["users"]) == 943
    assert conformed.tables["events"]["rating"].between(1, 5).all()
    items = conformed.tables["items"].set_index("item_id")
    assert items.loc["1", "tags"] == "Animation|Children's|Comedy"
    assert items["title"].str.contains("é").any()  # u.item is latin-1
