"""Data tests: a corpus of bad batches, each quarantined whole with the right, readable reason.

A fault in a row (a broken encoding, an unparseable value) quarantines a file only when too many
rows have one (``max_bad_row_share``, 1 %): here a third of the rows, or one row in 30.

Every case is landed into one data directory that already holds a good catalogue and a good day,
so the only thing wrong with each batch is the fault it was built with.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from contracts.settings import Settings
from pipelines.data.ingestor import Ingestor
from pipelines.data.sources.synthetic import SyntheticSource
from tests.support.shopfiles import EVENT_HEADER, event_rows, write_catalogue, write_events

Build = Callable[[Path], Path]


def _rows(day: str, edit: Callable[[list[str]], list[str]]) -> Build:
    return lambda folder: write_events(folder, day, edit(event_rows(day)))


def _raw(day: str, payload: bytes) -> Build:
    def build(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{day}.csv"
        path.write_bytes(payload)
        return path

    return build


def _replace_field(index: int, value: str, rows_to_edit: slice = slice(0, 1)):
    def edit(rows: list[str]) -> list[str]:
        out = list(rows)
        for i in range(*rows_to_edit.indices(len(out))):
            fields = out[i].split(",")
            fields[index] = value
            out[i] = ",".join(fields)
        return out

    return edit


GOOD = "\n".join([EVENT_HEADER, *event_rows("2026-02-10")]) + "\n"

# (case id, builder, expected failed expectation or check, words the reason must contain)
CASES: list[tuple[str, Build, str, str]] = [
    ("zero_bytes", _raw("2026-02-01", b""), "readable", "empty file (0 bytes)"),
    ("header_only", _raw("2026-02-02", (EVENT_HEADER + "\n").encode()), "readable",
     "header only"),
    ("wrong_delimiter", _raw("2026-02-03", GOOD.replace(",", ";").encode()), "readable",
     "wrong delimiter"),
    ("broken_encoding", _raw("2026-02-04", GOOD.replace("C1,", "C\xe91,").encode("latin-1")),
     "max_bad_row_share", "malformed_encoding (broken encoding: byte 0xe9"),
    ("truncated", _raw("2026-02-05", GOOD.encode()[:-25]), "readable", "truncated file"),
    ("binary_garbage", _raw("2026-02-06", bytes(range(256)) * 8), "readable", "binary content"),
    ("missing_column", _raw("2026-02-07", GOOD.replace("event_type,", "kind,").encode()),
     "readable", "missing required columns event_type"),
    ("duplicate_event_id", _rows("2026-02-08", lambda r: r + r[:3]),
     "events.event_id: expect_column_values_to_be_unique", "event_id is unique"),
    ("unknown_event_type", _rows("2026-02-09", _replace_field(3, "click")),
     "events.event_type: expect_column_values_to_be_in_set", "'click'"),
    ("negative_purchase_quantity", _rows("2026-02-11", _replace_field(4, "-2")),
     "events.quantity: expect_column_values_to_be_between", "quantity is positive"),
    ("future_timestamps", _rows("2099-01-01", lambda r: r),
     "events.timestamp: expect_column_values_to_be_between", "not in the future"),
    ("unknown_item", _rows("2026-02-13", _replace_field(2, "NOPE")),
     "events.unknown_item_id: expect_column_values_to_be_null", "'NOPE'"),
    ("missing_customer", _rows("2026-02-15", _replace_field(1, "")),
     "events.user_id: expect_column_values_to_not_be_null", "user_id is present"),
    ("unparseable_quantity", _rows("2026-02-16", _replace_field(4, "two")),
     "max_bad_row_share", "1 of 30 rows malformed (3.33%), over the 1% limit"),
    ("unparseable_timestamp", _rows("2026-02-17", _replace_field(6, "yesterday")),
     "max_bad_row_share", "line 2: unparseable_timestamp"),
]


@pytest.fixture(scope="module")
def ingestor(tmp_path_factory: pytest.TempPathFactory) -> Ingestor:
    root = tmp_path_factory.mktemp("bad")
    settings = Settings(data_dir=root / "data", pseudonym_key="test-key")
    ingestor = Ingestor(settings)
    results = ingestor.ingest([write_catalogue(root / "catalogue")], SyntheticSource())
    results += ingestor.ingest(
        [write_events(root / "good", "2026-01-31", event_rows("2026-01-31"))], SyntheticSource()
    )
    assert [r.status for r in results] == ["accepted"] * 3
    return ingestor


@pytest.mark.parametrize(("case", "build", "failed", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_batch_is_quarantined_with_reason(
    ingestor: Ingestor, tmp_path: Path, case: str, build: Build, failed: str, words: str
) -> None:
    path = build(tmp_path / case)
    before = sorted(p.name for p in ingestor.data.curated.rglob("*.parquet"))

    [result] = ingestor.ingest([path], SyntheticSource())

    assert result.status == "quarantined"
    assert failed in result.failed_expectations
    assert words in result.reason
    assert "Traceback" not in result.reason
    assert (result.rows_accepted, result.rows_rejected) == (0, 0)
    folder = ingestor.data.quarantine / result.batch
    assert (folder / path.name).read_bytes() == path.read_bytes(), "kept untouched"
    summary = Path(result.report).read_text()
    assert result.batch in summary and words in summary
    assert json.loads((folder / "validation.json").read_text()) is not None
    after = sorted(p.name for p in ingestor.data.curated.rglob("*.parquet"))
    assert after == before, "nothing of a quarantined batch reaches curated/"


def test_corpus_covers_at_least_twelve_kinds() -> None:
    assert len({c[2] + c[3] for c in CASES}) >= 12


def test_bad_catalogue_is_quarantined(ingestor: Ingestor, tmp_path: Path) -> None:
    folder = tmp_path / "dup-items"
    folder.mkdir()
    (folder / "items.csv").write_text(
        "item_id,title,category,brand,price,first_seen\n"
        "Z1,Thing,toys,,5,2025-01-01T00:00:00Z\nZ1,Thing again,toys,,-5,2025-01-01T00:00:00Z\n"
    )
    [result] = ingestor.ingest([folder / "items.csv"], SyntheticSource())
    assert result.status == "quarantined"
    assert "items.item_id: expect_column_values_to_be_unique" in result.failed_expectations
    assert "items.price: expect_column_values_to_be_between" in result.failed_expectations
    assert "Z1" not in ingestor.history.known_items


def test_same_content_twice_is_a_duplicate(ingestor: Ingestor, tmp_path: Path) -> None:
    first = write_events(tmp_path / "a", "2026-03-01", event_rows("2026-03-01"))
    again = write_events(tmp_path / "b", "2026-03-01", event_rows("2026-03-01"))
    [accepted] = ingestor.ingest([first], SyntheticSource())
    curated = sorted(ingestor.data.curated.rglob("*.parquet"))

    [duplicate] = ingestor.ingest([again], SyntheticSource())

    assert accepted.status == "accepted"
    assert duplicate.status == "duplicate"
    assert accepted.batch in duplicate.reason
    assert sorted(ingestor.data.curated.rglob("*.parquet")) == curated
    events = pd.read_parquet(ingestor.data.curated_partition("events", "2026-03-01"))
    assert len(events) == accepted.rows_accepted == 30
