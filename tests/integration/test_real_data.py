"""Real-data tests: the whole Online Retail year and MovieLens 100K through ingestion.

They skip with a message when ../shared/datasets is absent (a user's fresh clone).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from contracts.settings import Settings
from pipelines.data.curated import read_table
from pipelines.data.ingestor import Ingestor
from pipelines.data.sources import get_source
from tests.conftest import shared_dataset

ONLINE_RETAIL_ROWS = 541_909
ONLINE_RETAIL_REASONS = {
    "missing_customer_id", "non_product_stock_code", "non_positive_price", "non_positive_quantity",
}


@pytest.fixture(scope="module")
def retail_year(tmp_path_factory: pytest.TempPathFactory):
    days = shared_dataset("online-retail/by-day")
    data_dir = tmp_path_factory.mktemp("retail") / "data"
    ingestor = Ingestor(Settings(data_dir=data_dir, pseudonym_key="test-key"))
    return ingestor, ingestor.ingest([days], get_source("online-retail"))


def test_every_online_retail_row_is_accepted_or_rejected(retail_year) -> None:
    ingestor, results = retail_year

    assert len(results) == 305
    assert {r.status for r in results} == {"accepted"}, "normal dirt never fails a batch"
    assert sum(r.rows_in for r in results) == ONLINE_RETAIL_ROWS
    for r in results:
        assert r.rows_in == r.rows_accepted + r.rows_rejected, r.batch
    reasons: dict[str, int] = {}
    for r in results:
        for reason, count in r.rejected_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
    assert set(reasons) <= ONLINE_RETAIL_REASONS | {"unparseable_quantity", "unparseable_price",
                                                     "unparseable_invoice_date"}
    assert reasons["missing_customer_id"] > 100_000, "about a quarter of rows lack a customer"

    events = read_table(ingestor.data, "events", columns=["user_id", "event_type"])
    assert len(events) == sum(r.rows_accepted for r in results)
    assert events["user_id"].str.fullmatch(r"u_[0-9a-f]{16}").all()
    assert (events["event_type"] == "return").sum() > 1000, "cancellations became returns"
    rejected = pd.concat(pd.read_csv(p, dtype=str) for p in ingestor.data.rejected.rglob("*.csv"))
    assert len(rejected) == sum(r.rows_rejected for r in results)
    assert not rejected["CustomerID"].dropna().str.fullmatch(r"\d+(\.0)?").any(), \
        "raw customer ids never reach rejected rows"


def test_online_retail_year_twice_adds_nothing(retail_year, tmp_path: Path) -> None:
    ingestor, first = retail_year
    curated = sorted(ingestor.data.curated.rglob("*.parquet"))

    again = ingestor.ingest([shared_dataset("online-retail/by-day")], get_source("online-retail"))

    assert {r.status for r in again} == {"duplicate"}
    assert sorted(ingestor.data.curated.rglob("*.parquet")) == curated


def test_movielens_ratings_become_events_with_features(settings: Settings) -> None:
    folder = shared_dataset("ml-100k")
    ingestor = Ingestor(settings)

    [result] = ingestor.ingest([folder], get_source("movielens-100k"))

    assert result.status == "accepted", result.reason
    assert result.rows_in == 100_000 == result.rows_accepted + result.rows_rejected
    events = read_table(ingestor.data, "events")
    assert events["rating"].between(1, 5).all()
    items = read_table(ingestor.data, "items")
    users = read_table(ingestor.data, "users")
    assert len(items) == 1682 and len(users) == 943
    assert users["segments"].str.contains("occupation:").all()
