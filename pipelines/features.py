"""Build features: curated tables -> feature spec, item table and time-split interactions.

The validation window is the most recent slice of time, never a random sample: a model is judged
on what happened after the data it learned from, as it will be in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.feature_spec import FeatureSpec
from models.inputs import Interactions, ItemTable, interactions, item_table
from pipelines.curated import read_table
from pipelines.zones import DataDir

POSITIVE_EVENTS = ("purchase", "add_to_cart")


@dataclass
class FeatureSet:
    spec: FeatureSpec
    table: ItemTable
    train: Interactions
    valid: Interactions
    catalogue: pd.DataFrame
    train_events: pd.DataFrame  # positives before the split, the history serving starts from
    split_time: pd.Timestamp
    window: tuple[pd.Timestamp, pd.Timestamp]


def load_positive_events(data_dir: Path, positive: tuple[str, ...] = POSITIVE_EVENTS):
    data = DataDir(data_dir)
    events = read_table(data, "events")
    items = read_table(data, "items")
    users = read_table(data, "users")
    if events.empty:
        raise ValueError(f"no curated events under {data.curated}: ingest some batches first")
    events = events[events["event_type"].isin(positive)]
    events = events[events["item_id"].isin(set(items["item_id"]))]
    return events, items, users


def build_features(
    events: pd.DataFrame,
    items: pd.DataFrame,
    users: pd.DataFrame,
    validation_share: float = 0.2,
    history_length: int = 50,
    leave_one_out: bool = False,
) -> FeatureSet:
    """Split positives at the time quantile ``1 - validation_share`` and featurise both sides."""
    timestamps = pd.to_datetime(events["timestamp"], utc=True)
    split = timestamps.quantile(1 - validation_share)
    train_events = events[timestamps < split]
    spec = FeatureSpec.build(train_events, items, users, history_length=history_length)
    table = item_table(spec, items, train_events["item_id"].astype(str))
    everything = interactions(spec, events, leave_one_out=leave_one_out)
    in_train = everything.timestamp < np.datetime64(split.tz_localize(None))
    return FeatureSet(
        spec=spec,
        table=table,
        train=everything.subset(in_train),
        valid=everything.subset(~in_train),
        catalogue=items[["item_id", "title", "category", "brand", "price"]].copy(),
        train_events=train_events,
        split_time=split,
        window=(timestamps.min(), timestamps.max()),
    )
