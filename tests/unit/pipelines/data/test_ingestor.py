"""Data tests of accepted batches: accounting, pseudonymisation, warnings, and re-runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from contracts.pseudonyms import Pseudonymiser
from contracts.settings import Settings
from pipelines.data.curated import read_table
from pipelines.data.ingestor import Ingestor
from pipelines.data.sources.synthetic import SyntheticSource
from tests.support.shopfiles import event_rows, write_catalogue, write_events


@pytest.fixture
def ingestor(settings: Settings, tmp_path) -> Ingestor:
    ingestor = Ingestor(settings)
    ingestor.ingest([write_catalogue(tmp_path / "catalogue")], SyntheticSource())
    return ingestor


def _history(ingestor: Ingestor, tmp_path, days: int = 4) -> None:
    for day in range(1, days + 1):
        path = write_events(tmp_path / "hist", f"2026-01-0{day}", event_rows(f"2026-01-0{day}"))
        [result] = ingestor.ingest([path], SyntheticSource())
        assert result.status == "accepted" and not result.warnings


def test_accepted_batch_is_curated_with_pseudonyms_only(ingestor: Ingestor, tmp_path) -> None:
    path = write_events(tmp_path / "in", "2026-01-05", event_rows("2026-01-05"))

    [result] = ingestor.ingest([path], SyntheticSource())

    assert result.status == "accepted"
    assert result.rows_in == result.rows_accepted + result.rows_rejected == 30
    events = read_table(ingestor.data, "events")
    users = read_table(ingestor.data, "users")
    expected = Pseudonymiser("test-key").one("C1")
    assert expected in set(events["user_id"]) and expected in set(users["user_id"])
    curated_text = b"".join(p.read_bytes() for p in ingestor.data.curated.rglob("*.parquet"))
    assert b"C1" not in curated_text and b"C2" not in curated_text
    assert str(events["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert (ingestor.data.landing / "synthetic" / result.batch / path.name).is_file()


def test_volume_drop_is_a_warning_not_a_failure(ingestor: Ingestor, tmp_path) -> None:
    _history(ingestor, tmp_path)
    path = write_events(tmp_path / "in", "2026-01-05", event_rows("2026-01-05", n=3))

    [result] = ingestor.ingest([path], SyntheticSource())

    assert result.status == "accepted"
    assert result.warnings == ["events: expect_table_row_count_to_be_between"]
    assert "row count has not dropped" in Path(result.report).read_text()


def test_price_outliers_are_a_warning(ingestor: Ingestor, tmp_path) -> None:
    _history(ingestor, tmp_path)
    path = write_events(tmp_path / "in", "2026-01-05", event_rows("2026-01-05", price=9999.0))

    [result] = ingestor.ingest([path], SyntheticSource())

    assert result.status == "accepted"
    assert "events.unit_price: expect_column_values_to_be_between" in result.warnings


def test_share_of_unseen_items_is_a_warning(ingestor: Ingestor, tmp_path) -> None:
    _history(ingestor, tmp_path)
    folder = tmp_path / "new-items"
    folder.mkdir()
    (folder / "items.csv").write_text(
        "item_id,title,category,brand,price,first_seen\n"
        + "".join(f"N{i},New {i},toys,,5,2025-12-30T00:00:00Z\n" for i in range(3))
    )
    rows = [r.replace(",A1,", ",N0,").replace(",A2,", ",N1,") for r in event_rows("2026-01-05")]
    write_events(folder, "2026-01-05", rows)

    results = ingestor.ingest([folder], SyntheticSource())

    assert [r.status for r in results] == ["accepted", "accepted"]
    assert "events.unseen_item_id: expect_column_values_to_be_null" in results[1].warnings


def test_history_survives_a_new_process(settings: Settings, ingestor: Ingestor, tmp_path) -> None:
    _history(ingestor, tmp_path)
    fresh = Ingestor(settings)
    path = write_events(tmp_path / "in", "2026-01-05", event_rows("2026-01-05", n=3))

    [result] = fresh.ingest([path], SyntheticSource())

    assert result.warnings == ["events: expect_table_row_count_to_be_between"]
    assert {"A1", "A2", "A3"} <= fresh.history.known_items


def test_catalogue_keeps_latest_record_and_earliest_first_seen(ingestor: Ingestor, tmp_path):
    folder = tmp_path / "update"
    folder.mkdir()
    (folder / "items.csv").write_text(
        "item_id,title,category,brand,price,first_seen\n"
        "A1,Nordvik Lamp XL,home-decor,Nordvik,24.90,2026-01-10T00:00:00Z\n"
    )
    [result] = ingestor.ingest([folder], SyntheticSource())
    assert result.status == "accepted"

    items = read_table(ingestor.data, "items").set_index("item_id")

    assert len(items) == 3
    assert items.loc["A1", "title"] == "Nordvik Lamp XL"
    assert items.loc["A1", "first_seen"] == pd.Timestamp("2025-12-01", tz="UTC")


def test_synthetic_ground_truth_is_kept_pseudonymised(settings: Settings, tmp_path) -> None:
    import json

    folder = write_catalogue(tmp_path / "shop")
    (folder / "ground_truth.json").write_text(json.dumps(
        {"seed": 1, "users": {"C1": {"category": "toys", "brand": "X", "price_band": "low"}}}
    ))

    Ingestor(settings).ingest([folder], SyntheticSource())

    kept = json.loads((settings.data_dir / "reference" / "ground_truth.json").read_text())
    assert kept["users"] == {Pseudonymiser("test-key").one("C1"): {
        "category": "toys", "brand": "X", "price_band": "low"}}


def test_the_shopper_store_follows_every_accepted_batch_and_catches_up(
        settings: Settings, ingestor: Ingestor, tmp_path) -> None:
    """Each accepted batch's curated positives land in the online store once; a store lost (or
    an ingest killed after recording its batch) is rebuilt from the curated zone on the next
    run, to the same state."""
    from contracts.shopper_store import open_store
    from contracts.tables import POSITIVE_EVENTS

    _history(ingestor, tmp_path, days=3)
    path = write_events(tmp_path / "hist", "2026-01-01", event_rows("2026-01-01"))
    assert ingestor.ingest([path], SyntheticSource())[0].status == "duplicate"

    events = read_table(ingestor.data, "events")
    positive = events[events["event_type"].isin(POSITIVE_EVENTS)].sort_values(
        ["timestamp", "event_id"])
    store = open_store(settings.shopper_store_url, settings.shopper_store_limit)
    expected = {u: tuple(g["item_id"]) for u, g in positive.groupby("user_id")}
    assert {u: s.items for u, s in store.states(list(expected)).items()} == expected
    assert store.freshness().events == len(positive) > 0

    store.close()
    ingestor.store.close()
    file = Path(settings.shopper_store_url.removeprefix("sqlite:///"))
    for lost in (file, file.with_name(file.name + "-wal"), file.with_name(file.name + "-shm")):
        lost.unlink(missing_ok=True)
    rebuilt = Ingestor(settings)
    again = open_store(settings.shopper_store_url, settings.shopper_store_limit)
    assert {u: s.items for u, s in again.states(list(expected)).items()} == expected
    assert again.applied() == store.applied() == {
        m["batch"] for m in rebuilt.data.read_manifests() if m["status"] == "accepted"}


def test_a_shopper_store_that_is_down_never_fails_ingestion(settings: Settings, tmp_path,
                                                            caplog) -> None:
    """The store is derived state: with it unreachable the batch is still accepted and curated,
    and the warning says the next run catches it up."""
    down = settings.with_values(shopper_store="redis://127.0.0.1:1/0")
    ingestor = Ingestor(down)
    ingestor.ingest([write_catalogue(tmp_path / "catalogue")], SyntheticSource())
    path = write_events(tmp_path / "in", "2026-01-05", event_rows("2026-01-05"))

    [result] = ingestor.ingest([path], SyntheticSource())

    assert result.status == "accepted" and result.rows_accepted > 0
    assert "next ingest catches it up" in caplog.text
