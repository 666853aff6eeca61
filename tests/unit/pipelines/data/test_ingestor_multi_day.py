"""Data tests: exports covering several days, or named for none, for every delimited source.

A file whose rows span several days, one named ``export.csv``, or today's file resending part of
yesterday is accepted when its rows are otherwise valid: the batch window comes from its rows,
event-level idempotency keeps only the events not yet curated, and the report says how many
were already there. Nothing is curated twice and every row is accounted for.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from contracts.settings import Settings
from pipelines.data.curated import read_table
from pipelines.data.ingestor import Ingestor
from tests.support.delimited_sources import SHOPS, Shop
from tests.unit.pipelines.data.test_row_faults import check_invariant

N = 200


@pytest.fixture(params=SHOPS, ids=[s.name for s in SHOPS])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Shop, Ingestor]:
    shop: Shop = request.param
    ingestor = Ingestor(Settings(data_dir=tmp_path / "data", pseudonym_key="test-key"))
    first = shop.catalogue(tmp_path / "catalogue")
    if first is not None:
        assert {r.status for r in ingestor.ingest([first[0]], first[1])} == {"accepted"}
    return shop, ingestor


def _window(ingestor: Ingestor, content_hash: str) -> list[str]:
    manifest = json.loads(ingestor.data.manifest_path(content_hash).read_text())
    return [t[:10] for t in manifest["window"]]


@pytest.mark.parametrize("name", ["2026-04-03.csv", "export.csv"])
def test_a_file_spanning_three_days_is_accepted_with_its_rows_window(
        shop: tuple[Shop, Ingestor], tmp_path: Path, name: str) -> None:
    shop_, ingestor = shop
    days = ["2026-04-01", "2026-04-02", "2026-04-03"]
    path = shop_.write(tmp_path, name, shop_.rows(days, N))

    [result] = ingestor.ingest([path], shop_.source())

    assert result.status == "accepted", result.reason
    assert (result.rows_in, result.rows_accepted, result.rows_rejected) == (3 * N, 3 * N, 0)
    assert result.batch_date == "2026-04-03", "dated by its last day when the name has none"
    assert _window(ingestor, result.content_hash) == ["2026-04-01", "2026-04-04"]
    check_invariant(ingestor, result)
    assert len(read_table(ingestor.data, "events")) == 3 * N


def test_a_resend_overlapping_yesterday_adds_only_the_new_events(
        shop: tuple[Shop, Ingestor], tmp_path: Path) -> None:
    shop_, ingestor = shop
    yesterday, today = "2026-04-10", "2026-04-11"
    [first] = ingestor.ingest([shop_.write(tmp_path / "a", f"{yesterday}.csv",
                                           shop_.rows([yesterday], N))], shop_.source())
    resend = shop_.rows([yesterday], N)[N // 2:] + shop_.rows([today], N)

    [second] = Ingestor(ingestor.settings).ingest(
        [shop_.write(tmp_path / "b", f"{today}.csv", resend)], shop_.source())

    assert first.status == second.status == "accepted", second.reason
    assert (second.rows_in, second.rows_accepted, second.rows_rejected) == (
        N + N // 2, N, N // 2)
    assert second.rejected_reasons == {"duplicate_event": N // 2}
    assert f"events already curated (set aside as `duplicate_event`): {N // 2}" in Path(
        second.report).read_text()
    check_invariant(ingestor, second)
    events = read_table(ingestor.data, "events")
    assert len(events) == 2 * N and events["event_id"].is_unique, "nothing curated twice"
    assert _window(ingestor, second.content_hash) == [yesterday, "2026-04-12"]


def test_a_resend_of_yesterday_only_under_another_name_adds_nothing(
        shop: tuple[Shop, Ingestor], tmp_path: Path) -> None:
    shop_, ingestor = shop
    day = "2026-04-15"
    ingestor.ingest([shop_.write(tmp_path / "a", f"{day}.csv", shop_.rows([day], N))],
                    shop_.source())
    [again] = ingestor.ingest([shop_.write(tmp_path / "b", "export.csv",
                                           shop_.rows([day], N)[::-1])], shop_.source())
    assert again.status == "duplicate" and f"all {N} events already curated" in again.reason
    assert len(read_table(ingestor.data, "events")) == N


def test_rows_in_the_future_still_quarantine_a_multi_day_file(
        shop: tuple[Shop, Ingestor], tmp_path: Path) -> None:
    shop_, ingestor = shop
    future = (dt.date.today() + dt.timedelta(days=400)).isoformat()
    rows = shop_.rows(["2026-04-20"], N) + shop_.rows([future], 5)
    [result] = ingestor.ingest([shop_.write(tmp_path, "export.csv", rows)], shop_.source())
    assert result.status == "quarantined" and "not in the future" in result.reason
    check_invariant(ingestor, result)
