"""What a new batch is compared with: the curated events and items so far, and recent accepted
batches' figures (the warning checks' limits: prices, quantities, volume, unseen items)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from contracts.settings import Settings
from pipelines.data.curated import read_parquet
from pipelines.data.sources.base import BatchInput
from pipelines.data.zones import DataDir

_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
_FAR_FUTURE = pd.Timestamp("2200-01-01", tz="UTC")


@dataclass
class BatchHistory:
    """What the warning checks compare a batch with, kept in memory across one ingestion run."""

    known_items: set[str]  # the catalogue: events must reference these
    seen_items: set[str]  # items that already had events: new ones are cold for the model
    recent: dict[str, list[dict[str, float]]]  # source -> stats of recent accepted event batches
    size: int
    events: dict[str, set[str]] = dataclasses.field(default_factory=dict)  # source -> curated ids

    def copy(self) -> BatchHistory:
        """A copy to add batches to before they are accepted (``Ingestor`` screens a group of
        batches each against the history as if the ones before it had been accepted)."""
        return dataclasses.replace(
            self, known_items=set(self.known_items), seen_items=set(self.seen_items),
            recent={k: list(v) for k, v in self.recent.items()},
            events={k: set(v) for k, v in self.events.items()})

    def add(self, source: str, tables: dict[str, pd.DataFrame],
            stats: dict[str, float] | None) -> None:
        """Take in an accepted batch's curated tables and figures."""
        self.known_items |= batch_items(tables)
        if "events" in tables:
            events = tables["events"]
            self.seen_items |= set(events["item_id"].astype(str))
            self.events.setdefault(source, set()).update(events["event_id"].dropna().astype(str))
        if stats:
            self.recent.setdefault(source, []).append(stats)

    def parameters(self, source: str, settings: Settings, batch: BatchInput) -> dict[str, Any]:
        stats = self.recent.get(source, [])[-self.size :]
        now = pd.Timestamp.now(tz="UTC")
        start, end = batch.window or (_EPOCH, _FAR_FUTURE)

        def limit(key: str) -> float | None:
            values = [s[key] for s in stats if s.get(key) is not None]
            return float(np.median(values)) * settings.outlier_factor if values else None

        rows = [s["rows"] for s in stats]
        return {
            "window_start": start,
            "window_end": end,
            "now": now,
            "price_max": limit("price_p99"),
            "quantity_max": limit("quantity_p99"),
            "min_rows": float(np.median(rows)) * settings.volume_drop_ratio if rows else 0,
            "seen_items_mostly": 1 - settings.unseen_items_max_share if self.seen_items else 0.0,
        }


def curated_event_ids(data: DataDir, manifests: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """The event ids curated so far, by source: what event-level idempotency compares with.

    Only batches with an ``accepted`` manifest count, so the files of a batch whose run stopped
    before recording it (and that a re-run overwrites) are not mistaken for curated events.
    """
    sources = {m["batch"]: m.get("source") for m in manifests if m["status"] == "accepted"}
    root = data.curated / "events"
    seen: dict[str, set[str]] = {}
    for path in sorted(root.glob("batch_date=*/*.parquet")) if root.is_dir() else []:
        source = sources.get(path.stem)
        if source is not None:
            ids = read_parquet(path, ["event_id"])["event_id"].dropna()
            seen.setdefault(source, set()).update(ids.astype(str))
    return seen


def who_curated(data: DataDir, manifests: Iterable[dict[str, Any]], source: str,
                 event_id: str) -> str:
    """The accepted batch of ``source`` that curated ``event_id``, for a duplicate's reason."""
    batches = {m["batch"] for m in manifests if m["status"] == "accepted" and
               m.get("source") == source}
    root = data.curated / "events"
    for path in sorted(root.glob("batch_date=*/*.parquet")) if root.is_dir() else []:
        if path.stem in batches and (
                read_parquet(path, ["event_id"])["event_id"] == event_id).any():
            return path.stem
    return "an earlier batch"


def batch_stats(events: pd.DataFrame | None) -> dict[str, float] | None:
    if events is None or not len(events):
        return None

    def p99(column: str) -> float | None:
        values = events[column].dropna()
        return float(values.astype(float).quantile(0.99)) if len(values) else None

    return {"rows": float(len(events)), "price_p99": p99("unit_price"),
            "quantity_p99": p99("quantity")}


def batch_items(tables: dict[str, pd.DataFrame]) -> set[str]:
    """The item ids a batch's catalogue table brings (none without one)."""
    items = tables.get("items")
    return set(items["item_id"].dropna().astype(str)) if items is not None else set()
