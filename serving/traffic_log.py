"""What the endpoint served, kept for the drift report: one row per answer in rotating Parquet.

Each ``/recommend`` answer becomes one row (time, the shopper's pseudonym, model version, the
item ids and scores in rank order, the fallback used): never a raw customer id. Recording only
appends to an in-memory buffer under a lock (microseconds); a background thread writes the
buffer out when it holds ``flush_rows`` rows or every ``flush_seconds``, and once more at
shutdown. Files go to ``<folder>/date=YYYY-MM-DD/part-<time>-<pid>-<n>.parquet``
(``contracts.traffic``), written aside and renamed into place, so a reader
(``pipelines.steps.drift``) never sees half a file. The buffer is
bounded: when the disk cannot keep up, new rows are dropped and counted (``dropped``, logged),
never waited for, so a slow disk cannot slow the answers.
"""

from __future__ import annotations

import atexit
import io
import itertools
import logging
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from contracts.settings import Settings
from contracts.traffic import COLUMNS, traffic_folder
from serving.private_files import private_folder, write_private

log = logging.getLogger(__name__)

SCHEMA = pa.schema(list(zip(COLUMNS, (
    pa.timestamp("us", tz="UTC"), pa.string(), pa.string(), pa.list_(pa.string()),
    pa.list_(pa.float64()), pa.string(), pa.string(), pa.bool_(), pa.list_(pa.string())),
    strict=True)))


class PartLog:
    """A bounded buffer of rows (the first column a UTC time) with a background writer of
    Parquet parts; safe for concurrent callers. ``close`` (also registered with ``atexit``)
    writes what is left. The traffic log and the outcome log (``serving.attribution``) are two."""

    schema = SCHEMA
    what = "traffic log"

    def __init__(self, folder: Path, flush_rows: int = 1000, flush_seconds: float = 60.0,
                 max_rows: int = 100_000) -> None:
        self.folder = folder
        self.flush_rows, self.flush_seconds, self.max_rows = flush_rows, flush_seconds, max_rows
        self.dropped = 0
        self._rows: list[tuple] = []
        self._lock = threading.Lock()  # guards the buffer only: never held while writing
        self._write_lock = threading.Lock()  # one writer at a time
        self._wake = threading.Event()
        self._closed = False
        self._parts = itertools.count()
        self._thread = threading.Thread(target=self._run, name=self.what.replace(" ", "-"),
                                        daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def append(self, row: tuple) -> bool:
        """Buffer one row shaped like ``schema``; False when dropped (the buffer is full)."""
        with self._lock:
            if len(self._rows) >= self.max_rows:
                self.dropped += 1
                return False
            self._rows.append(row)
            full = len(self._rows) >= self.flush_rows
        if full:
            self._wake.set()
        return True

    def flush(self) -> list[Path]:
        """Write the buffered rows now, one file per UTC day they fall on; the files written."""
        with self._write_lock:
            with self._lock:
                rows, self._rows = self._rows, []
                dropped, self.dropped = self.dropped, 0
            if dropped:
                log.warning("%s: dropped %d rows, the disk did not keep up", self.what, dropped)
            by_day: dict[str, list[tuple]] = {}
            for row in rows:
                by_day.setdefault(f"{row[0]:%Y-%m-%d}", []).append(row)
            written = []
            for day, part in by_day.items():
                try:
                    written.append(self._write(day, part))
                except OSError as err:  # a full or read-only disk must not stop serving
                    log.error("%s: %d rows not written: %s", self.what, len(part), err)
            return written

    def close(self) -> None:
        """Stop the writer thread and write what is left (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if not self._closed:
                self.flush()

    def _write(self, day: str, rows: list[tuple]) -> Path:
        columns = list(zip(*rows, strict=True))
        table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(
            columns, self.schema, strict=True)], schema=self.schema)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        folder = private_folder(self.folder / f"date={day}")
        name = f"part-{datetime.now(UTC):%H%M%S%f}-{os.getpid()}-{next(self._parts)}.parquet"
        tmp = folder / f".{name}"
        write_private(tmp, buffer.getvalue(), new=True)
        os.replace(tmp, folder / name)
        return folder / name


class TrafficLog(PartLog):
    """The served answers, one row each (``contracts.traffic``)."""

    def record(self, pseudonym: str, model_version: str | None, items: Sequence[dict],
               fallback: str | None, request_id: str | None = None, in_readout: bool = False,
               credited: Sequence[str] | None = None) -> bool:
        """Buffer one answer (``items`` shaped like ``schemas.Item``); False when dropped."""
        return self.append((datetime.now(UTC), pseudonym, model_version,
                            [i["item_id"] for i in items], [float(i["score"]) for i in items],
                            fallback, request_id, in_readout,
                            list(credited) if credited is not None else None))


def open_traffic_log(settings: Settings) -> TrafficLog | None:
    """The endpoint's traffic log under the data directory, or None when turned off."""
    if not settings.traffic.log:
        return None
    return TrafficLog(traffic_folder(settings), settings.traffic.flush_rows,
                      settings.traffic.flush_seconds, settings.traffic.buffer_rows)
