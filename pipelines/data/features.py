"""Build features: curated tables -> feature spec, item table and time-split interactions.

The validation window is the most recent slice of time, never a random sample: a model is judged on
what happened after the data it learned from, as it will be in production. When that slice holds too
few shoppers to judge a model on (a few heavy shoppers can dominate the latest time), each shopper's
own latest events are held out instead: still later than what is learned from, per shopper, and the
gate gets enough shoppers to decide on. The pipeline's features step
(``pipelines.steps.features.build_features_step``) builds a feature set once per data version and
saves it with the batches it came from, so every later step (baselines, each candidate) trains on
the same split and logs the same lineage."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from contracts.bundle import load_arrays, save_arrays
from contracts.storage import DataPath, is_remote, local_copy, location, put
from contracts.tables import POSITIVE_EVENTS
from models.feature_spec import FeatureSpec
from models.inputs import (
    Interactions,
    ItemTable,
    ShopperTable,
    first_purchases,
    interactions,
    item_table,
    latest_histories,
    shopper_table,
)
from pipelines.data.curated import read_table
from pipelines.data.zones import DataDir, write_json_atomic
from pipelines.tracking.runs import data_hash

log = logging.getLogger(__name__)
BATCHES = "batches.json"  # the accepted batch manifests a feature set was built from
SPLIT_RULE = 5  # in the folder name: bump when the split or its features change (no stale reuse)
EVENT_ORDER = ["user_id", "timestamp", "event_id"]  # the order ``interactions`` puts events in
SplitKind = Literal["time", "per_shopper", "random"]


@dataclass
class FeatureSet:
    spec: FeatureSpec
    table: ItemTable
    train: Interactions
    valid: Interactions
    catalogue: pd.DataFrame
    train_events: pd.DataFrame  # positives on the training side, the history serving starts from
    split_time: pd.Timestamp  # where the held-out events start (per shopper: the earliest one)
    window: tuple[pd.Timestamp, pd.Timestamp]
    split_kind: SplitKind = "time"  # "per_shopper": each shopper's latest events held out
    shoppers: ShopperTable | None = None  # the shoppers' attributes per user id
    # The latest held-out events, kept from ``valid`` (then the selection slice alone): nothing
    # is fitted or chosen on them, so the gate judges every model there without optimism.
    gate: Interactions | None = None
    gate_time: pd.Timestamp | None = None  # where the gate slice starts


def with_gate_slice(features: FeatureSet, gate_share: float) -> FeatureSet:
    """``features`` with the latest ``gate_share`` of its held-out events moved from ``valid``
    (the selection slice: early stopping, the grid's choice, every weight chosen on validation)
    to ``gate``, which the gate alone reads; 0 keeps every held-out event for selection and no
    gate slice. A time split is cut at a time, so the gate slice is later than everything chosen
    on. A per-shopper holdout is cut per shopper (``_later_per_shopper``): a global time would
    leave the gate only the shoppers who happen to buy late, the very thinness it exists for."""
    if not gate_share:
        return replace(features, gate=None, gate_time=None)
    valid = features.valid
    if not len(valid):
        return replace(features, gate=valid, gate_time=features.window[1])
    times = pd.Series(valid.timestamp)
    if features.split_kind == "per_shopper":
        later = _later_per_shopper(valid, gate_share)
    else:
        later = (times >= times.quantile(1 - gate_share, interpolation="higher")).to_numpy()
    start = times[later].min() if later.any() else times.max()
    return replace(features, valid=valid.subset(~later), gate=valid.subset(later),
                   gate_time=pd.Timestamp(start).tz_localize("UTC"))


def _later_per_shopper(valid: Interactions, gate_share: float) -> np.ndarray:
    """Per held-out event: in the gate slice. Each shopper's latest ``gate_share`` of their
    held-out events (rounded down); a shopper with too few to split goes whole to one slice, the
    gate with probability ``gate_share`` by a stable hash of the shopper, so both slices judge
    shoppers and no random state is involved."""
    frame = pd.DataFrame({"user": valid.user_key.astype(str), "time": valid.timestamp})
    by_user = frame.groupby("user", sort=False)["time"]
    count = by_user.transform("size").to_numpy()
    from_end = by_user.rank(method="first", ascending=False).to_numpy() - 1
    share = np.floor(count * gate_share).astype(np.int64)
    hashed = pd.util.hash_array(frame["user"].to_numpy(), categorize=False) % 10_000
    whole = hashed < gate_share * 10_000
    return np.where(share > 0, from_end < share, whole)


def load_positive_events(data_dir: DataPath, positive: tuple[str, ...] = POSITIVE_EVENTS):
    data = DataDir(data_dir)
    # Only the positives are read (views are most events): memory follows what training uses.
    events = read_table(data, "events", where=[("event_type", "in", list(positive))])
    items = read_table(data, "items")
    users = read_table(data, "users")
    if events.empty:
        raise ValueError(f"no curated events of types {', '.join(positive)} under "
                         f"{data.curated}: ingest some batches first")
    events = events[events["item_id"].isin(set(items["item_id"]))]
    return events, items, users


def build_features(
    events: pd.DataFrame,
    items: pd.DataFrame,
    users: pd.DataFrame,
    validation_share: float = 0.2,
    history_length: int = 50,
    leave_one_out: bool = False,
    min_users: int = 0,
    gate_share: float = 0.0,
) -> FeatureSet:
    """Split positives at the time quantile ``1 - validation_share`` and featurise both sides.

    When that window judges fewer than ``min_users`` shoppers (``validation_split``'s rows), the
    split is a per-shopper holdout instead (``per_shopper_holdout``), if it judges more; 0 keeps
    the time split always. ``leave_one_out`` is a random protocol's features (no time order):
    a seeded random ``validation_share`` of the events is held out, and every history holds the
    shopper's other training events. ``gate_share``: the latest share of the held-out events
    kept apart for the gate (``with_gate_slice``); ``min_users`` then counts the gate slice's
    shoppers, the ones a decision rests on.
    """
    if leave_one_out and min_users:
        raise ValueError("leave_one_out histories would show training each shopper's held-out "
                         "items: a per-shopper holdout (min_users) needs temporal histories")
    if leave_one_out:
        return _random_split(events, items, users, validation_share, history_length)
    features = with_gate_slice(
        _time_split(events, items, users, validation_share, history_length), gate_share)
    if not min_users:
        return features
    judged = _judged(features)
    if judged >= min_users:
        return features
    fallback = with_gate_slice(
        _per_shopper_split(events, items, users, validation_share, history_length), gate_share)
    held = _judged(fallback)
    log.info("the latest %g of time judges %d shoppers, fewer than %d; each shopper's own latest "
             "events judge %d: %s", validation_share, judged, min_users, held,
             "per-shopper holdout" if held > judged else "kept the time split")
    return fallback if held > judged else features


def _judged(features: FeatureSet) -> int:
    """Shoppers the gate can judge on this split (its gate slice, else the whole held-out part),
    as ``pipelines.evaluation.splits.validation_split`` defines them (a known shopper with a known
    item new to them in the window; a test holds the two to the same count): counted here, since
    that module imports this one."""
    train = features.train
    valid = features.gate if features.gate is not None else features.valid
    seen = set(zip(train.user.tolist(), train.item.tolist(), strict=True))
    return len({u for u, i in zip(valid.user.tolist(), valid.item.tolist(), strict=True)
                if u > 0 and i > 0 and (u, i) not in seen})


def _time_split(events: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame,
                validation_share: float, history_length: int) -> FeatureSet:
    timestamps = pd.to_datetime(events["timestamp"], utc=True)
    split = timestamps.quantile(1 - validation_share)
    train_events = events[timestamps < split]
    everything, spec = _interactions(events, train_events, items, users, history_length)
    in_train = everything.timestamp < np.datetime64(split.tz_localize(None))
    return _feature_set(spec, items, users, everything, in_train, train_events, split,
                        timestamps, "time")


def _random_split(events: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame,
                  validation_share: float, history_length: int, seed: int = 0) -> FeatureSet:
    """A seeded random ``validation_share`` of the events held out, as a random protocol holds
    out its test set: training histories are each shopper's *other training* events (no
    held-out item is ever an input), a held-out event's its shopper's training events."""
    events = events.sort_values(EVENT_ORDER, kind="stable").reset_index(drop=True)
    held_out = np.zeros(len(events), bool)
    order = np.random.default_rng(seed).permutation(len(events))
    held_out[order[: int(round(len(events) * validation_share))]] = True
    train_events = events[~held_out]
    spec = FeatureSpec.build(train_events, items, users, history_length=history_length)
    train = interactions(spec, train_events, leave_one_out=True)
    valid = _held_out_rows(spec, train_events, events[held_out])
    timestamps = pd.to_datetime(events["timestamp"], utc=True)
    return FeatureSet(
        spec=spec, table=_item_table(spec, items, train_events),
        train=train, valid=valid, catalogue=_catalogue(items),
        train_events=train_events, split_time=timestamps.max(),
        window=(timestamps.min(), timestamps.max()), split_kind="random",
        shoppers=shopper_table(spec, users))


def _item_table(spec: FeatureSpec, items: pd.DataFrame, train_events: pd.DataFrame
                ) -> ItemTable:
    return item_table(spec, items, train_events["item_id"].astype(str),
                      ratings=train_events.get("rating"))


def _catalogue(items: pd.DataFrame) -> pd.DataFrame:
    """What the served catalogue keeps of each item: what filters and reasons read and what
    a new product is recommended from."""
    kept = ["item_id", "title", "category", "brand", "price", "tags"]
    return items[[c for c in kept if c in items]].copy()


def _held_out_rows(spec: FeatureSpec, train_events: pd.DataFrame, held: pd.DataFrame
                   ) -> Interactions:
    """Held-out events, each with its shopper's training events as history and record (what
    the recommender built from ``train_events`` answers from)."""
    histories = latest_histories(spec, train_events)
    records = first_purchases(spec, train_events)
    keys = held["user_id"].astype(str).to_numpy()
    owners = list(records)
    offsets = dict(zip(owners, np.cumsum([0] + [len(records[u]) for u in owners])[:-1].tolist(),
                       strict=True))
    empty = np.zeros(spec.history_length, np.int32)
    ts = pd.to_datetime(held["timestamp"], utc=True)
    return Interactions(
        user=spec.users.lookup(keys), item=spec.items.lookup(held["item_id"]),
        history=np.stack([histories.get(u, empty) for u in keys]) if len(keys)
        else np.zeros((0, spec.history_length), np.int32),
        hour=ts.dt.hour.to_numpy(np.int32), day_of_week=ts.dt.day_of_week.to_numpy(np.int32),
        timestamp=ts.dt.tz_localize(None).to_numpy(), user_key=keys,
        bag_start=np.array([offsets.get(u, 0) for u in keys], np.int64),
        bag_length=np.array([len(records.get(u, ())) for u in keys], np.int32),
        bag_items=(np.concatenate([records[u] for u in owners]) if owners
                   else np.zeros(0)).astype(np.int32))


def per_shopper_holdout(events: pd.DataFrame, validation_share: float) -> np.ndarray:
    """Per event of ``events`` (in ``EVENT_ORDER``): whether it is held out, the latest
    ``validation_share`` of its shopper's events (at least one, never all); shoppers with a
    single event are not held out (nothing would be left to start from)."""
    by_user = events.groupby("user_id", sort=False)
    count = by_user["user_id"].transform("size").to_numpy()
    from_end = by_user.cumcount(ascending=False).to_numpy()
    held = np.clip(np.floor(count * validation_share).astype(np.int64), 1, None)
    return (count >= 2) & (from_end < np.minimum(held, count - 1))


def _per_shopper_split(events: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame,
                       validation_share: float, history_length: int) -> FeatureSet:
    """Each shopper's latest events held out; histories stay temporal, so a held-out event's
    history holds only that shopper's earlier events and no training row sees a held-out one."""
    events = events.sort_values(EVENT_ORDER, kind="stable")  # rows align with the interactions
    held_out = per_shopper_holdout(events, validation_share)
    train_events = events[~held_out]
    everything, spec = _interactions(events, train_events, items, users, history_length)
    timestamps = pd.to_datetime(events["timestamp"], utc=True)
    start = timestamps[held_out].min() if held_out.any() else timestamps.max()
    return _feature_set(spec, items, users, everything, ~held_out, train_events, start,
                        timestamps, "per_shopper")


def _interactions(events: pd.DataFrame, train_events: pd.DataFrame, items: pd.DataFrame,
                  users: pd.DataFrame, history_length: int) -> tuple[Interactions, FeatureSpec]:
    """Every event featurised with the spec of the training side (its vocabularies only)."""
    spec = FeatureSpec.build(train_events, items, users, history_length=history_length)
    return interactions(spec, events), spec


def _feature_set(spec: FeatureSpec, items: pd.DataFrame, users: pd.DataFrame,
                 everything: Interactions, in_train: np.ndarray, train_events: pd.DataFrame,
                 split_time: pd.Timestamp, timestamps: pd.Series, split_kind: SplitKind
                 ) -> FeatureSet:
    return FeatureSet(
        spec=spec,
        table=_item_table(spec, items, train_events),
        train=everything.subset(in_train),
        valid=everything.subset(~in_train),
        catalogue=_catalogue(items),
        train_events=train_events,
        split_time=split_time,
        window=(timestamps.min(), timestamps.max()),
        split_kind=split_kind,
        shoppers=shopper_table(spec, users),
    )


def save_features(features: FeatureSet, folder: DataPath) -> str:
    """Persist a feature set so later pipeline tasks load it instead of rebuilding it.

    Written to a sibling folder and renamed into place: a reader never sees half a feature set
    (on an object store it is written locally and uploaded; the features step marks it
    complete afterwards). Returns the folder's URI (``file://`` or ``s3://``), the handle passed
    between tasks.
    """
    if is_remote(folder):
        with tempfile.TemporaryDirectory(prefix="shoprec-features-") as tmp:
            _write_features(features, Path(tmp))
            put(Path(tmp), folder)
        return folder.as_uri()
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_features(features, tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder.as_uri()


def _write_features(features: FeatureSet, tmp: Path) -> None:
    (tmp / "spec.json").write_text(json.dumps(features.spec.to_dict()), encoding="utf-8")
    save_arrays(tmp / "item_table.npz", features.table)
    save_arrays(tmp / "shopper_table.npz", features.shoppers or ShopperTable.empty(features.spec))
    for name in ("train", "valid", "gate"):
        part = getattr(features, name)
        if part is not None:
            save_arrays(tmp / f"{name}.npz", replace(part, user_key=part.user_key.astype(str)))
    features.catalogue.to_parquet(tmp / "catalogue.parquet", index=False)
    features.train_events.to_parquet(tmp / "train_events.parquet", index=False)
    write_json_atomic(tmp / "meta.json", {"split_time": features.split_time.isoformat(),
                                          "window": [t.isoformat() for t in features.window],
                                          "split_kind": features.split_kind,
                                          "gate_time": features.gate_time and
                                          features.gate_time.isoformat()})


def features_path(uri: str) -> DataPath:
    """The folder behind a features URI (``file://``, ``s3://`` or a plain path)."""
    return location(uri)


def load_features(uri: str) -> FeatureSet:
    """The feature set behind ``uri``; one on an object store is read from a local copy."""
    with local_copy(features_path(uri)) as folder:
        return _read_features(folder)


def _read_features(folder: Path) -> FeatureSet:
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    train, valid = (load_arrays(folder / f"{n}.npz", Interactions) for n in ("train", "valid"))
    gate = (load_arrays(folder / "gate.npz", Interactions) if (folder / "gate.npz").is_file()
            else None)
    spec = json.loads((folder / "spec.json").read_text(encoding="utf-8"))
    return FeatureSet(
        spec=FeatureSpec.from_dict(spec),
        table=load_arrays(folder / "item_table.npz", ItemTable),
        train=replace(train, user_key=train.user_key.astype(object)),
        valid=replace(valid, user_key=valid.user_key.astype(object)),
        catalogue=pd.read_parquet(folder / "catalogue.parquet"),
        train_events=pd.read_parquet(folder / "train_events.parquet"),
        split_time=pd.Timestamp(meta["split_time"]),
        window=tuple(pd.Timestamp(t) for t in meta["window"]),
        split_kind=meta.get("split_kind", "time"),  # sets saved before the per-shopper rule
        shoppers=load_arrays(folder / "shopper_table.npz", ShopperTable),
        gate=gate and replace(gate, user_key=gate.user_key.astype(object)),
        gate_time=pd.Timestamp(meta["gate_time"]) if meta.get("gate_time") else None,
    )


def lineage(features_uri: str) -> tuple[list[dict[str, Any]], str]:
    """The batch manifests a feature set was built from, and their data hash."""
    batches = json.loads((features_path(features_uri) / BATCHES).read_text(encoding="utf-8"))
    return batches, data_hash([m["content_hash"] for m in batches])
