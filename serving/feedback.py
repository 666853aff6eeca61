"""Feedback from shop pages, landed as event batches: the loop from serving back to training.

Each call writes one small events file in the synthetic shop's format (raw customer id, as every
incoming batch holds it; ingestion pseudonymises it) into ``<inbox>/feedback/``. The pipeline's
next run lands and validates it like any other batch, so feedback can never skip the data checks.
Files appear atomically (written aside, then renamed), so a run never lands half a file.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from contracts.tables import INBOX_EVENT_COLUMNS

FOLDER = "feedback"


def feedback_folder(inbox: Path) -> Path:
    return inbox / FOLDER


def write_feedback(
    inbox: Path,
    user_id: str,
    item_id: str,
    event_type: str,
    quantity: int = 1,
    unit_price: float | None = None,
    timestamp: datetime | None = None,
) -> tuple[str, Path]:
    """Land one event as a dated batch file; returns the event id and the file."""
    now = datetime.now(UTC)
    moment = (timestamp or now).astimezone(UTC)
    event_id = f"fb-{uuid.uuid4().hex}"
    row = {
        "event_id": event_id, "customer_id": user_id, "item_id": item_id,
        "event_type": event_type, "quantity": quantity,
        "unit_price": "" if unit_price is None else f"{unit_price:.2f}",
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"), "order_id": "",
    }
    folder = feedback_folder(inbox)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{moment:%Y-%m-%d}-{now:%H%M%S%f}-{event_id[3:15]}.csv"
    frame = pd.DataFrame([row], columns=list(INBOX_EVENT_COLUMNS))
    text = frame.to_csv(index=False, lineterminator="\n")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, target)
    return event_id, target
