"""Many batches screened in one GX run: each batch's verdict is its own, and a group ingests exactly
as the same batches one by one."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from contracts.settings import Settings
from pipelines.data import grouping
from pipelines.data.curated import read_table
from pipelines.data.ingestor import Ingestor
from pipelines.data.quality import BatchValidator
from pipelines.data.sources.synthetic import SyntheticSource
from pipelines.data.zones import DataDir
from tests.support.shopfiles import event_rows, write_catalogue, write_events

SUITE = {
    "name": "t",
    "expectations": [
        {"type": "expect_table_columns_to_match_set",
         "kwargs": {"column_set": ["id", "name", "ts", "price"], "exact_match": True},
         "severity": "critical"},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"},
         "severity": "critical"},
        {"type": "expect_column_values_to_not_be_null",
         "kwargs": {"column": "name", "mostly": 0.5}, "severity": "warning"},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "ts", "min_value": {"$PARAMETER": "window_start"},
                    "max_value": {"$PARAMETER": "window_end"}, "strict_max": True},
         "severity": "critical"},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "price", "min_value": 0, "max_value": {"$PARAMETER": "price_max"},
                    "mostly": 0.5}, "severity": "warning"},
        {"type": "expect_table_row_count_to_be_between",
         "kwargs": {"min_value": {"$PARAMETER": "min_rows"}}, "severity": "warning"},
    ],
}


def _frame(day: str, ids: list[int], names: list[str | None], hours: list[int],
           prices: tuple[float, ...] = (1.0, 1.0, 1.0)) -> pd.DataFrame:
    start = pd.Timestamp(day, tz="UTC")
    return pd.DataFrame({"id": ids, "name": names,
                         "ts": [start + pd.Timedelta(hours=h) for h in hours],
                         "price": pd.array(prices[:len(ids)], dtype="Float64")})


def _parameters(day: str, min_rows: int = 0, price_max: float = 10.0) -> dict:
    start = pd.Timestamp(day, tz="UTC")
    return {"window_start": start, "window_end": start + pd.Timedelta(days=1),
            "min_rows": min_rows, "price_max": price_max}


@pytest.fixture
def validator(tmp_path: Path) -> BatchValidator:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "t.json").write_text(json.dumps(SUITE), encoding="utf-8")
    return BatchValidator(suites, DataDir(tmp_path / "data").create(), "off")


def test_each_batch_gets_its_own_verdict_from_one_run(validator: BatchValidator) -> None:
    cases = [  # (frame, parameters): what each batch's own run says is in the name
        (_frame("2026-01-01", [1, 2, 3], ["a", "b", None], [0, 5, 23]), _parameters("2026-01-01")),
        # the same ids as the batch before: duplicates only across batches
        (_frame("2026-01-02", [1, 2, 3], ["a", None, "c"], [1, 2, 3]), _parameters("2026-01-02")),
        # a duplicate id within the batch
        (_frame("2026-01-03", [7, 7, 8], ["a", "b", "c"], [1, 2, 3]), _parameters("2026-01-03")),
        # two of three names missing: over the ``mostly`` of a warning
        (_frame("2026-01-04", [1, 2, 3], [None, None, "c"], [1, 2, 3]), _parameters("2026-01-04")),
        # a time inside the next batch's window, outside its own (exactly its end)
        (_frame("2026-01-05", [1, 2, 3], ["a", "b", "c"], [1, 2, 24]), _parameters("2026-01-05")),
        # fewer rows than its own minimum
        (_frame("2026-01-06", [1, 2], ["a", "b"], [1, 2]), _parameters("2026-01-06", min_rows=3)),
        (_frame("2026-01-07", [4, 5, 6], ["a", "b", "c"], [0, 1, 2]), _parameters("2026-01-07")),
        # prices under its own limit, over the next batch's
        (_frame("2026-01-08", [1, 2, 3], ["a", "b", "c"], [1, 2, 3], (5.0, 6.0, 1.0)),
         _parameters("2026-01-08", price_max=6.0)),
        (_frame("2026-01-09", [1, 2, 3], ["a", "b", "c"], [1, 2, 3], (1.0, 2.0, 1.0)),
         _parameters("2026-01-09", price_max=2.0)),
        # two of three prices over its own limit: over the ``mostly`` of a warning
        (_frame("2026-01-10", [1, 2, 3], ["a", "b", "c"], [1, 2, 3], (6.5, 9.0, 1.0)),
         _parameters("2026-01-10", price_max=6.0)),
    ]
    alone = [validator.validate(f"b{i}", {"t": frame}, parameters)
             for i, (frame, parameters) in enumerate(cases)]
    expected = [not v.critical and not v.warnings for v in alone]
    assert expected == [True, True, False, False, False, False, True, True, True, False]

    screened = validator.screen_many("t", [f for f, _ in cases], [p for _, p in cases],
                                     [f"b{i}" for i in range(len(cases))])

    assert [ids is not None for ids in screened] == expected
    assert all(len(ids) == 1 for ids in screened if ids is not None)


def test_frames_with_other_columns_are_screened_apart(validator: BatchValidator) -> None:
    good = _frame("2026-01-01", [1, 2], ["a", "b"], [1, 2])
    extra = good.assign(more=1)

    screened = validator.screen_many("t", [good, extra], [_parameters("2026-01-01")] * 2,
                                     ["a", "b"])

    assert [ids is not None for ids in screened] == [True, False]


def _days(folder: Path, bad_day: int) -> list[Path]:
    """Eight daily files of the synthetic shop; ``bad_day`` holds one purchase of quantity 0
    (a critical failure), day 3 has few rows (a volume warning)."""
    paths = []
    for day in range(1, 9):
        date = f"2026-01-0{day}"
        rows = event_rows(date, n=3 if day == 3 else 30)
        if day == bad_day:
            rows[0] = rows[0].replace(",purchase,1,", ",purchase,0,")
        paths.append(write_events(folder, date, rows))
    return paths


def _summary(results: list) -> list[tuple]:
    return [(r.batch, r.status, r.rows_in, r.rows_accepted, r.rows_rejected,
             sorted(r.failed_expectations), sorted(r.warnings)) for r in results]


def test_a_group_ingests_as_one_batch_at_a_time(tmp_path: Path, monkeypatch) -> None:
    screened = []
    screen = grouping.screen_prepared
    monkeypatch.setattr("pipelines.data.ingestor.screen_prepared",
                        lambda *a: screened.append(len(a[2])) or screen(*a))
    paths = _days(tmp_path / "in", bad_day=6)
    results = {}
    for mode in ("one by one", "grouped"):
        ingestor = Ingestor(Settings(data_dir=tmp_path / mode, pseudonym_key="test-key"))
        ingestor.ingest([write_catalogue(tmp_path / "catalogue")], SyntheticSource())
        if mode == "grouped":
            results[mode] = ingestor.ingest([tmp_path / "in"], SyntheticSource())
        else:
            results[mode] = [r for p in paths for r in ingestor.ingest([p], SyntheticSource())]
        events = read_table(ingestor.data, "events")
        results[mode + " events"] = sorted(events["event_id"])

    assert _summary(results["grouped"]) == _summary(results["one by one"])
    assert results["grouped events"] == results["one by one events"]
    statuses = [r.status for r in results["grouped"]]
    assert statuses == ["accepted"] * 5 + ["quarantined"] + ["accepted"] * 2
    assert results["grouped"][2].warnings and results["grouped"][5].failed_expectations
    assert len(results["grouped events"]) == len(set(results["grouped events"])) == 6 * 30 + 3
    assert screened and max(screened) > 1  # the batches were screened together
