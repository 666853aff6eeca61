"""The endpoint's feedback hours as a source: only closed hours, whatever the inbox's source,
exactly once, raw ids never curated."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from contracts.feedback import CLOSE_GRACE, COLUMNS, hour_file
from contracts.pseudonyms import Pseudonymiser
from contracts.settings import Settings
from pipelines.data.curated import read_table
from pipelines.data.sources import get_source
from pipelines.data.sources.feedback import FeedbackSource
from pipelines.data.sources.synthetic import SyntheticSource
from pipelines.data.zones import DataDir
from pipelines.steps.ingest import land_with_feedback, validate_with_feedback
from tests.support.shopfiles import write_catalogue

HOUR = dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)
PS = Pseudonymiser("test-key")


def _hour_file(inbox: Path, hour: dt.datetime, rows: list[dict[str, str]]) -> Path:
    folder = inbox / "feedback"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hour_file(hour)
    lines = [",".join(COLUMNS)] + [",".join(row.get(c, "") for c in COLUMNS) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _event(i: int, user: str, hour: dt.datetime = HOUR) -> dict[str, str]:
    return {"event_id": f"fb-{i:032x}", "user_id": user, "item_id": f"A{i % 3 + 1}",
            "event_type": "view", "quantity": "1",
            "timestamp": (hour + dt.timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


def test_only_closed_hours_are_batches(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    closed = _hour_file(inbox, HOUR, [_event(1, PS.one("C1"))])
    growing = _hour_file(inbox, HOUR + dt.timedelta(hours=1), [_event(2, PS.one("C1"))])
    (inbox / "feedback" / "notes.csv").write_text("a,b\n1,2\n")
    now = HOUR + dt.timedelta(hours=2) + CLOSE_GRACE - dt.timedelta(seconds=1)

    [batch] = FeedbackSource(now=lambda: now).discover([inbox])

    assert batch.files == (closed,) and batch.source == "feedback"
    assert batch.batch_date == HOUR.date() and batch.name == "2026-01-05T10"
    later = FeedbackSource(now=lambda: now + dt.timedelta(seconds=1)).discover([inbox])
    assert [b.files for b in later] == [(closed,), (growing,)], "closed once the grace is over"


def test_every_other_source_leaves_the_feedback_folder_alone(tmp_path: Path) -> None:
    inbox = write_catalogue(tmp_path / "inbox")
    _hour_file(inbox, HOUR, [_event(1, PS.one("C1"))])
    source = get_source("synthetic")
    assert isinstance(source, SyntheticSource)
    found = [p.name for b in source.discover([inbox]) for p in b.files]
    assert sorted(found) == ["items.csv", "users.csv"]


@pytest.mark.parametrize("configured", ["synthetic", "online-retail"])
def test_the_pipeline_curates_feedback_whatever_the_source(tmp_path: Path, settings: Settings,
                                                           configured: str) -> None:
    inbox = tmp_path / "inbox"
    settings = settings.with_values(inbox_dir=inbox, source="synthetic")
    write_catalogue(inbox)
    validate_with_feedback(settings, [str(p) for p in land_with_feedback(settings)])
    for path in (inbox / "items.csv", inbox / "users.csv"):
        path.unlink()  # what the configured source sees is gone: only feedback remains
    rows = [_event(i, PS.one(f"C{i % 3 + 1}")) for i in range(5)] + [_event(9, "C2")]
    _hour_file(inbox, HOUR, rows)
    _hour_file(inbox, dt.datetime.now(dt.UTC), [_event(7, PS.one("C1"))])  # still open
    settings = settings.with_values(source=configured)

    landed = land_with_feedback(settings)
    results = validate_with_feedback(settings, [str(p) for p in landed])

    [result] = results
    assert result["status"] == "accepted", result
    assert result["batch"].startswith("feedback_2026-01-05T10_")
    events = read_table(DataDir(settings.data_dir), "events")
    assert sorted(events["event_id"]) == sorted(r["event_id"] for r in rows[:5])
    assert set(events["user_id"]) == {PS.one(c) for c in ("C1", "C2", "C3")}
    rejected = "".join(p.read_text() for p in (settings.data_dir / "rejected").rglob("*.csv"))
    assert "not_pseudonymised" in rejected and PS.one("C2") in rejected
    assert ",C2," not in rejected, "a raw id is pseudonymised even among the rejected rows"
    assert land_with_feedback(settings) == [], "landed once, and the open hour waits"
