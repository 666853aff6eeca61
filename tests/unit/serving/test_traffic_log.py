"""The served-traffic log: rows land whole in Parquet, off the request path, bounded, private."""

from __future__ import annotations

import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from contracts.traffic import COLUMNS, PART_GLOB
from serving.traffic_log import TrafficLog

ITEMS = [{"item_id": "I3", "score": 0.9}, {"item_id": "I1", "score": 0.5}]


def _read(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob(PART_GLOB))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else (
        pd.DataFrame(columns=list(COLUMNS)))


def test_rows_are_written_whole_private_and_in_rank_order(tmp_path: Path) -> None:
    log = TrafficLog(tmp_path / "traffic", flush_seconds=3600)
    assert log.record("u_00000000000000aa", "3", ITEMS, None)
    assert log.record("u_00000000000000bb", "3", ITEMS[:1], "cold_start")
    assert _read(tmp_path / "traffic").empty  # buffered, nothing written on the request path
    [part] = log.flush()
    log.close()
    frame = _read(tmp_path / "traffic")
    assert list(frame.columns) == list(COLUMNS)
    assert frame["pseudonym"].tolist() == ["u_00000000000000aa", "u_00000000000000bb"]
    assert list(frame.loc[0, "items"]) == ["I3", "I1"]
    assert list(frame.loc[0, "scores"]) == [0.9, 0.5]
    assert frame["fallback"].tolist()[1] == "cold_start"
    assert part.parent.name == f"date={frame.loc[0, 'time']:%Y-%m-%d}"
    assert stat.S_IMODE(part.stat().st_mode) == 0o600
    assert stat.S_IMODE(part.parent.stat().st_mode) == 0o700
    assert not [p for p in part.parent.iterdir() if p.name.startswith(".")]  # no leftovers


def test_the_background_thread_flushes_by_size_and_close_writes_the_rest(tmp_path: Path) -> None:
    log = TrafficLog(tmp_path / "traffic", flush_rows=2, flush_seconds=3600)
    log.record("u_00000000000000aa", "1", ITEMS, None)
    log.record("u_00000000000000bb", "1", ITEMS, None)  # full: wakes the writer
    deadline = time.monotonic() + 10
    while len(_read(tmp_path / "traffic")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_read(tmp_path / "traffic")) == 2
    log.record("u_00000000000000cc", "1", ITEMS, None)
    log.close()  # as at shutdown
    assert len(_read(tmp_path / "traffic")) == 3


def test_a_full_buffer_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    log = TrafficLog(tmp_path / "traffic", flush_rows=10**6, flush_seconds=3600, max_rows=3)
    kept = [log.record(f"u_{i:016x}", "1", ITEMS, None) for i in range(5)]
    assert kept == [True, True, True, False, False]
    assert log.dropped == 2
    log.close()
    assert len(_read(tmp_path / "traffic")) == 3


def test_a_disk_error_loses_that_flush_not_the_endpoint(tmp_path: Path) -> None:
    folder = tmp_path / "traffic"
    folder.mkdir()
    (folder / f"date={datetime.now(UTC):%Y-%m-%d}").write_text("in the way")  # not a folder
    log = TrafficLog(folder, flush_seconds=3600)
    assert log.record("u_00000000000000aa", "1", ITEMS, None)
    assert log.flush() == []  # logged, not raised
    log.close()
    assert _read(folder).empty
