"""The ingest lock serialises runs on one data directory and recovers a killed run's leftovers."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from pipelines.data.ingest_lock import LOCK_FILE, ingest_lock, lock_path, recover
from pipelines.data.zones import DataDir


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    return DataDir(tmp_path / "data").create()


def _manifest(data: DataDir, batch: str, status: str) -> None:
    (data.manifests / f"{batch}.json").write_text(json.dumps(
        {"batch": batch, "status": status, "ingested_at": "2026-01-01T00:00:00+00:00"}))


def test_a_second_run_waits_for_the_first_and_says_for_whom(data, caplog):
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with ingest_lock(data, what="first"):
            held.set()
            time.sleep(0.5)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(5)
    with caplog.at_level(logging.WARNING), ingest_lock(data, what="second"):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]
    waiting = [r.getMessage() for r in caplog.records if "another ingest holds" in r.getMessage()]
    assert len(waiting) == 1 and "first, pid" in waiting[0]


def test_an_uncontended_lock_logs_nothing_and_names_its_holder(data, caplog):
    with caplog.at_level(logging.WARNING), ingest_lock(data, what="cli"):
        assert "cli, pid" in lock_path(data).read_text()
    assert not caplog.records


def test_the_lock_is_dropped_when_the_holder_raises(data):
    with pytest.raises(RuntimeError), ingest_lock(data):
        raise RuntimeError("boom")
    with ingest_lock(data):  # would block forever if the lock were still held
        pass


def test_recover_removes_unrecorded_and_temporary_files_only(data):
    _manifest(data, "b_ok", "accepted")
    _manifest(data, "b_bad", "quarantined")
    day = data.curated / "events" / "batch_date=2026-01-01"
    day.mkdir(parents=True)
    kept = [day / "b_ok.parquet", data.rejected / "batch_date=2026-01-01" / "b_ok.csv",
            data.landing / "synthetic" / "b_new" / "2026-01-02.csv"]
    gone = [day / "b_killed.parquet", day / "b_bad.parquet", day / ".b_ok.parquet.x1y2",
            data.rejected / "batch_date=2026-01-01" / "b_killed.csv",
            data.manifests / ".b_new.json.abc", data.landing / "synthetic" / ".b_new.landing"]
    for path in kept + gone[:-1]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    (gone[-1] / "2026-01-02.csv").parent.mkdir(parents=True)
    (gone[-1] / "2026-01-02.csv").write_text("half")

    removed = recover(data, data.read_manifests())

    assert sorted(removed) == sorted(gone)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in gone)
    assert (data.root / LOCK_FILE).exists() is False  # recover never creates or removes the lock


def test_taking_the_lock_recovers_first(data):
    orphan = data.curated / "events" / "batch_date=2026-01-01" / "b_killed.parquet"
    orphan.parent.mkdir(parents=True)
    orphan.write_text("x")
    with ingest_lock(data):
        assert not orphan.exists()
