"""Adapter for the synthetic shop's landing format (see ``pipelines.data.synthetic_shop``).

The shop exports its catalogue (``items.csv``), customers (``users.csv``) and one events file per
day (``events/YYYY-MM-DD.csv``) with the contract's columns, except that customers are identified
by their raw ``customer_id``. Catalogue files are ingested before events so events can be checked
against known items.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.pseudonyms import Pseudonymiser
from contracts.tables import columns, conform
from pipelines.data.sources.base import (
    BatchInput,
    Conformed,
    Source,
    expand,
    file_batch,
    refusal,
    set_aside,
    unparseable,
)
from pipelines.data.sources.reading import read_delimited

GROUND_TRUTH = "ground_truth.json"
RAW_COLUMNS = {
    "items": ["item_id", "title", "category", "brand", "price", "first_seen"],
    "users": ["customer_id", "country"],
    "events": [
        "event_id", "customer_id", "item_id", "event_type", "quantity", "unit_price", "timestamp",
    ],
}
_ORDER = {"items": 0, "users": 1, "events": 2}


def _table_of(path: Path) -> str:
    if path.stem in ("items", "users"):
        return path.stem
    return "events"


class SyntheticSource(Source):
    name = "synthetic"
    raw_suite = None
    window_from_rows = True

    def discover(self, paths: Sequence[Path]) -> list[BatchInput]:
        files = [p for p in expand(paths, "*.csv")]
        files.sort(key=lambda p: (_ORDER[_table_of(p)], p.name))
        return [
            file_batch(self.name, path, name=f"events-{path.stem}")
            if _table_of(path) == "events"
            else BatchInput(self.name, path.stem, (path,), refused=refusal([path]))
            for path in files
        ]

    def reference(self, paths: Sequence[Path], pseudonymiser: Pseudonymiser) -> dict[str, Any]:
        """The planted preferences (``ground_truth.json``), keyed by pseudonymised user id."""
        found = [p / GROUND_TRUTH for p in paths
                 if (p / GROUND_TRUTH).is_file() and not (p / GROUND_TRUTH).is_symlink()]
        if not found:
            return {}
        truth = json.loads(found[0].read_text(encoding="utf-8"))
        users = {pseudonymiser.one(raw): prefs for raw, prefs in truth["users"].items()}
        return {"ground_truth": {**truth, "users": users}}

    def read_raw(self, batch: BatchInput) -> pd.DataFrame:
        path = batch.files[0]
        table = _table_of(path)
        # A column the export gained is dropped and reported; the contract's optional ones stay.
        return read_delimited(path, RAW_COLUMNS[table], keep=columns(table))

    def conform(
        self, raw: pd.DataFrame, batch: BatchInput, pseudonymiser: Pseudonymiser
    ) -> Conformed:
        table = _table_of(batch.files[0])
        raw = raw.reset_index(drop=True)
        frame = raw.drop(columns="_line")
        pseudonyms = pd.Series(pd.NA, index=raw.index, dtype="string")
        if "customer_id" in frame:
            pseudonyms = pseudonymiser.series(frame.pop("customer_id"))
            frame.insert(0, "user_id", pseudonyms)
        typed = conform(table, frame[[c for c in columns(table) if c in frame]])
        # A value that does not parse as its type is a malformed row, set aside (row_faults).
        checks = unparseable(frame, typed)
        rejected, ok = set_aside(raw, checks, list(checks), "customer_id", pseudonyms)
        return Conformed(primary=table, tables={table: typed.loc[ok].reset_index(drop=True)},
                         rejected=rejected.reset_index(drop=True))
