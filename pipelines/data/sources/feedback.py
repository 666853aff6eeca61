"""Adapter for the endpoint's feedback inbox, and the pipeline steps that add it to any source.

``POST /feedback`` appends contract-shaped events (``contracts.feedback``) to one file per hour
under ``<inbox>/feedback/``. This source reads the hour files whose hour has closed, each as one
batch; a file still being appended to is left for a later run. The shopper is already
pseudonymised by the endpoint; a row whose ``user_id`` is not a pseudonym is rejected (and
pseudonymised in the rejected rows, so no raw id leaves the landing zone).

Whatever ``settings.source`` is, the pipeline DAG lands and validates feedback with this source
too (``pipelines.steps.ingest``); every other source leaves the inbox's ``feedback/`` folder to it
(``pipelines.data.sources.get_source``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from contracts.feedback import COLUMNS, hour_of, is_closed
from contracts.pseudonyms import PSEUDONYM_PATTERN, Pseudonymiser
from contracts.tables import conform
from pipelines.data.sources.base import BatchInput, Conformed, Source, expand, set_aside
from pipelines.data.sources.reading import read_delimited

NAME = "feedback"


class FeedbackSource(Source):
    name = NAME
    raw_suite = None

    def __init__(self, now: Callable[[], dt.datetime] | None = None) -> None:
        self._now = now or (lambda: dt.datetime.now(dt.UTC))

    def discover(self, paths: Sequence[Path]) -> list[BatchInput]:
        """Closed hour files (``YYYY-MM-DDTHH.csv``) given, or found under given folders."""
        now = self._now()
        batches = []
        for path in expand(paths, "*.csv"):
            hour = hour_of(path.name)
            if hour is not None and is_closed(path.name, now):
                batches.append(BatchInput(self.name, path.stem, (path,),
                                          batch_date=hour.date()))
        return sorted(batches, key=lambda b: (b.name, str(b.files[0])))

    def read_raw(self, batch: BatchInput) -> pd.DataFrame:
        return read_delimited(batch.files[0], COLUMNS)

    def conform(
        self, raw: pd.DataFrame, batch: BatchInput, pseudonymiser: Pseudonymiser
    ) -> Conformed:
        frame = raw.drop(columns="_line")
        user = frame["user_id"].astype("string")
        raw_id = ~user.fillna("").str.fullmatch(PSEUDONYM_PATTERN.strip("^$"))
        pseudonyms = user.where(~raw_id, pseudonymiser.series(user))
        rejected, keep = set_aside(raw, {"not_pseudonymised": raw_id},
                                   ["not_pseudonymised"], "user_id", pseudonyms)
        events = conform("events", frame.loc[keep, list(COLUMNS)])
        return Conformed(primary="events", tables={"events": events}, rejected=rejected)
