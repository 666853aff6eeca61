"""Reading the curated zone: the validated, canonical tables every later step trains on."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from contracts.storage import DataPath, arrow_source
from contracts.tables import KEYS
from pipelines.data.zones import DataDir


def read_table(data_dir: DataDir, table: str, columns: list[str] | None = None,
               where: list[tuple[str, str, Any]] | None = None) -> pd.DataFrame:
    """All curated partitions of ``table``; for items and users the latest record per key wins.

    Catalogue and customer tables arrive again and again (Online Retail derives them per day),
    so a key's most recent batch carries its current title, price or country, while ``first_seen``
    keeps the earliest value ever seen. Most recent means the latest batch date, then, within a
    date (undated batches share their ingestion day), the batch ingested last.

    ``columns`` and ``where`` (pyarrow filters, e.g. ``[("event_type", "in", [...])]``) are
    applied while each file is read, so rows and columns left out never reach memory. ``where``
    is for events only: the latest-per-key rule must see every record.
    """
    if where is not None and table != "events":
        raise ValueError(f"row filters apply to events only, not to {table}")
    root = data_dir.curated / table
    files = _in_order(data_dir, list(root.glob("batch_date=*/*.parquet"))) if root.is_dir() else []
    if not files:
        return pd.DataFrame(columns=columns or [])
    frames = [read_parquet(f, columns, where) for f in files]
    frame = pd.concat(frames, ignore_index=True)
    if table == "events" or KEYS[table] not in frame:
        return frame
    key = KEYS[table]
    latest = frame.drop_duplicates(key, keep="last")
    if "first_seen" in frame:
        earliest = frame.groupby(key)["first_seen"].min()
        latest = latest.assign(first_seen=latest[key].map(earliest))
    return latest.reset_index(drop=True)


def item_ids(data_dir: DataDir, table: str) -> set[str]:
    """Distinct item ids in a curated table (the catalogue, or items that had events)."""
    frame = read_table(data_dir, table, columns=["item_id"])
    return set(frame["item_id"].astype(str)) if len(frame) else set()


def read_parquet(path: DataPath, columns: list[str] | None = None,
                 where: list[tuple[str, str, Any]] | None = None) -> pd.DataFrame:
    """One Parquet file of the data directory, local or on an object store."""
    return pq.read_table(**arrow_source(path), columns=columns, filters=where,
                         partitioning=None).to_pandas()


def _in_order(data_dir: DataDir, files: list[DataPath]) -> list[DataPath]:
    """Partition files by batch date, then by when their batch was ingested (from the
    manifests; a batch id says nothing about order, being partly a content hash)."""
    if not files:
        return files
    ingested = {m["batch"]: m["ingested_at"] for m in data_dir.read_manifests()}
    return sorted(files, key=lambda f: (f.parent.name, ingested.get(f.stem, "~"), f.name))
