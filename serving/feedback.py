"""Feedback from shop pages, appended to the inbox as events: the loop from serving to training.

Each accepted event becomes one line of the current hour's file, ``<inbox>/feedback/
YYYY-MM-DDTHH.csv`` (``contracts.feedback``), with the events table's columns. The shopper's raw
id is pseudonymised here with the ingestion key, so no raw id reaches the disk; ingestion checks
the rest like any batch. Appends are serialised by one lock per server process and each is a
single write of whole lines on an ``O_APPEND`` descriptor (the header with the first line), so
concurrent requests never interleave or lose a line. The pipeline ingests an hour file only once
the hour is closed, so it never reads one that is still growing.
"""

from __future__ import annotations

import csv
import io
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from contracts.feedback import COLUMNS, FOLDER, hour_file
from serving.private_files import private_folder, write_private


def new_event_id() -> str:
    return f"fb-{uuid.uuid4().hex}"


def feedback_folder(inbox: Path) -> Path:
    return inbox / FOLDER


class FeedbackInbox:
    """Appends events to the hour files of one inbox; safe for concurrent callers."""

    def __init__(self, inbox: Path) -> None:
        self.folder = feedback_folder(inbox)
        self._lock = threading.Lock()

    def append(
        self,
        user_id: str,
        item_id: str,
        event_type: str,
        quantity: int = 1,
        unit_price: float | None = None,
        timestamp: datetime | None = None,
        event_id: str | None = None,
    ) -> tuple[str, str]:
        """Append one event (``user_id`` already pseudonymised); returns its id (``event_id``
        when given, as ``new_event_id`` makes them) and the hour file as a path relative to the
        inbox, e.g. ``feedback/2026-11-30T14.csv``."""
        event_id = event_id or new_event_id()
        with self._lock:  # the hour is taken inside the lock: no line lands in a closed hour
            now = datetime.now(UTC)
            moment = (timestamp or now).astimezone(UTC)
            row = {"event_id": event_id, "user_id": user_id, "item_id": item_id,
                   "event_type": event_type, "quantity": str(quantity),
                   "unit_price": "" if unit_price is None else repr(float(unit_price)),
                   "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
            line = _csv([row.get(column, "") for column in COLUMNS])
            name = hour_file(now)
            _append(private_folder(self.folder) / name, line)
        return event_id, f"{FOLDER}/{name}"


def _csv(values: Sequence[str]) -> bytes:
    if len(values) != len(COLUMNS):
        raise ValueError(f"{len(values)} values for {len(COLUMNS)} columns")
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


def _append(path: Path, line: bytes) -> None:
    """One write per event on an append-only descriptor; the header comes with the first line.
    Symlinks are refused: the file is ours, not something planted there."""
    try:
        write_private(path, _csv(list(COLUMNS)) + line, new=True, append=True)
    except FileExistsError:
        write_private(path, line, new=False, append=True)
