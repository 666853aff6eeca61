"""The feedback inbox as the endpoint writes it and the pipeline reads it.

``POST /feedback`` appends each event to ``<inbox>/feedback/YYYY-MM-DDTHH.csv``, one file per
hour of arrival (UTC), with the events table's columns (``contracts.tables``) and the shopper
already pseudonymised. An hour file is complete once its hour has closed (plus ``CLOSE_GRACE``
for a request that started just before the hour turned): only then does the pipeline ingest it,
as one batch, so it never reads a file still being appended to.
"""

from __future__ import annotations

import datetime as dt
import re

from contracts.tables import columns

FOLDER = "feedback"
COLUMNS: tuple[str, ...] = tuple(columns("events"))
CLOSE_GRACE = dt.timedelta(minutes=2)
_HOUR_FILE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2})\.csv$")


def hour_file(moment: dt.datetime) -> str:
    """The hour file's name for an event arriving at ``moment`` (aware)."""
    return f"{moment.astimezone(dt.UTC):%Y-%m-%dT%H}.csv"


def hour_of(name: str) -> dt.datetime | None:
    """The start of the hour an hour file's name stands for (UTC), or None for other names."""
    match = _HOUR_FILE.match(name)
    if not match:
        return None
    try:
        return dt.datetime(*map(int, match.groups()), tzinfo=dt.UTC)
    except ValueError:
        return None


def is_closed(name: str, now: dt.datetime) -> bool:
    """Whether no endpoint appends to the hour file ``name`` any more at ``now``."""
    hour = hour_of(name)
    return hour is not None and hour + dt.timedelta(hours=1) + CLOSE_GRACE <= now
