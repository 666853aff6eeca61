"""Turning canonical tables into the integer arrays the models read, using the feature spec.

Pure functions over DataFrames: the pipelines load curated data, serving loads its snapshot, and
both call these so training and serving features cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.feature_spec import FeatureSpec


@dataclass(frozen=True)
class ItemTable:
    """Per item vocabulary id (row 0 = unknown item): the candidate tower's and ranker's inputs."""

    item_id: np.ndarray  # (n,) int32, = arange(n)
    category: np.ndarray  # (n,) int32
    brand: np.ndarray  # (n,) int32
    price_band: np.ndarray  # (n,) int32
    title: np.ndarray  # (n, title_length) int32
    log_price: np.ndarray  # (n,) float32
    popularity: np.ndarray  # (n,) float32: share of training interactions
    tags: np.ndarray  # (n, tag_length) int32, 0 = padding
    # (n,) float32: the item's mean explicit rating minus the mean of all ratings, shrunk
    # towards 0 by RATING_PRIOR pseudo-ratings; 0 where the source has no ratings.
    rating: np.ndarray

    def features(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "item_id": self.item_id[ids], "category": self.category[ids],
            "brand": self.brand[ids], "price_band": self.price_band[ids],
            "title": self.title[ids], "log_price": self.log_price[ids],
            "tags": self.tags[ids], "rating": self.rating[ids],
        }


RATING_PRIOR = 5.0  # an item's first ratings move its rating feature little


@dataclass(frozen=True)
class ShopperTable:
    """Per user vocabulary id (row 0 = a shopper the model never saw): the attribute ids the
    models look up, so callers pass user ids only, as for items."""

    attributes: np.ndarray  # (users, attribute_length) int32, 0 = padding

    @classmethod
    def empty(cls, spec: FeatureSpec) -> ShopperTable:
        return cls(np.zeros((spec.users.size, spec.attribute_length), np.int32))


def shopper_table(spec: FeatureSpec, users: pd.DataFrame) -> ShopperTable:
    """Users aligned to the spec's user vocabulary; users missing from ``users`` have none."""
    frame = users.drop_duplicates("user_id", keep="last").set_index("user_id")
    frame = frame.reindex(list(spec.users.values))
    attributes = spec.attribute_ids(frame)
    attributes[0] = 0
    return ShopperTable(attributes)


def item_ratings(spec: FeatureSpec, item_ids: pd.Series, ratings: pd.Series | None,
                 n: int) -> np.ndarray:
    """Per item id below ``n``: its shrunk mean rating deviation (see ``ItemTable.rating``)."""
    out = np.zeros(n, np.float32)
    if ratings is None:
        return out
    values = pd.to_numeric(ratings, errors="coerce").astype(float).to_numpy()
    known = np.isfinite(values)
    if not known.any():
        return out
    ids = spec.items.lookup(item_ids.to_numpy()[known])
    deviation = values[known] - values[known].mean()
    sums = np.bincount(ids, weights=deviation, minlength=n)[:n]
    counts = np.bincount(ids, minlength=n)[:n]
    out[:] = sums / (counts + RATING_PRIOR)
    out[0] = 0.0
    return out


def item_table(spec: FeatureSpec, items: pd.DataFrame, interactions: pd.Series,
               added: Sequence[str] = (), ratings: pd.Series | None = None) -> ItemTable:
    """Items aligned to the spec's item vocabulary, then ``added`` (catalogue items that came
    after training: ids from ``spec.items.size`` on, no popularity or rating); items missing
    from ``items`` stay zero. ``ratings``: the explicit rating of each of ``interactions``
    (null where none), when the source has them."""
    keys = [*spec.items.values, *added]
    n = len(keys)
    frame = items.drop_duplicates("item_id", keep="last").set_index("item_id")
    frame = frame.reindex(keys)
    price = pd.to_numeric(frame["price"], errors="coerce").astype(float).to_numpy()
    counts = interactions.value_counts()
    popularity = np.array([counts.get(v, 0) for v in spec.items.values] + [0] * len(added),
                          np.float32)
    popularity[0] = 0
    return ItemTable(
        item_id=np.arange(n, dtype=np.int32),
        category=spec.categories.lookup(frame["category"].fillna("")),
        brand=spec.brands.lookup(frame["brand"].fillna("")),
        price_band=spec.price_band_ids(frame["category"].fillna(""), price),
        title=spec.title_ids(frame["title"].fillna("")),
        log_price=np.nan_to_num(np.log1p(np.where(price > 0, price, 0)), nan=0.0).astype(
            np.float32
        ),
        popularity=popularity / max(popularity.sum(), 1.0),
        tags=spec.tag_ids(frame["tags"] if "tags" in frame else [None] * n),
        rating=item_ratings(spec, interactions, ratings, n),
    )


def with_added_items(spec: FeatureSpec, table: ItemTable, catalogue: pd.DataFrame,
                     added: Sequence[str]) -> ItemTable:
    """``table`` followed by the rows of ``added`` items (their content from ``catalogue``)."""
    if not len(added):
        return table
    rows = item_table(spec, catalogue, pd.Series([], dtype=str), added)
    n = spec.items.size
    return ItemTable(**{f.name: np.concatenate([getattr(table, f.name), getattr(rows, f.name)[n:]])
                        for f in fields(ItemTable)})


@dataclass(frozen=True)
class Interactions:
    """Positive (user, item) events in time order, each with the history that preceded it.

    ``history`` is the recent window the deep part reads (L slots, repeats included). The wide
    item-item part reads each event's *distinct* past purchases, however many: a slice of the
    shopper's first-purchase sequence (``bag_items``, one array for all rows, sized to the
    user x item matrix, not to events x history length), ``bag_length`` long from
    ``bag_start``.
    """

    user: np.ndarray  # (n,) int32 user vocabulary ids
    item: np.ndarray  # (n,) int32 item vocabulary ids
    history: np.ndarray  # (n, L) int32 item ids before this event, most recent last, 0 = pad
    hour: np.ndarray  # (n,) int32
    day_of_week: np.ndarray  # (n,) int32
    timestamp: np.ndarray  # (n,) datetime64[ns]
    user_key: np.ndarray  # (n,) object: pseudonymised user ids
    bag_start: np.ndarray  # (n,) int64 offset into ``bag_items``
    bag_length: np.ndarray  # (n,) int32 distinct past purchases of the event
    bag_items: np.ndarray  # (m,) int32 every shopper's distinct items, first purchase order

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, mask: np.ndarray) -> Interactions:
        """The rows ``mask`` selects; ``bag_items`` is shared, not indexed."""
        return Interactions(*(getattr(self, f) if f == "bag_items" else getattr(self, f)[mask]
                              for f in self.__dataclass_fields__))

    def bags(self) -> list[np.ndarray]:
        """Each row's distinct past purchases, oldest first purchase first."""
        return [self.bag_items[s : s + n] for s, n in
                zip(self.bag_start.tolist(), self.bag_length.tolist(), strict=True)]

    def bag_matrix(self, n_items: int) -> sp.csr_matrix:
        """Rows x items 0/1 matrix of each row's distinct past purchases (EASE's input row)."""
        return bag_matrix(self.bags(), n_items)


def bag_matrix(bags: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Rows x items 0/1 matrix of distinct item ids per row (0, the unknown item, dropped)."""
    lengths = np.array([len(b) for b in bags], np.int64)
    ids = np.concatenate(bags).astype(np.int64) if len(bags) else np.zeros(0, np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    matrix = sp.csr_matrix((np.ones(len(ids), np.float32), ids, indptr),
                           shape=(len(bags), n_items))
    matrix.data[matrix.indices == 0] = 0.0
    matrix.eliminate_zeros()
    return matrix


def pad_left(bags: Sequence[np.ndarray], width: int | None = None) -> np.ndarray:
    """Rows of item ids right-aligned in a (rows, width) int32 array, 0 = padding in front (as
    histories): width defaults to the longest row (at least 1, so a batch is never 0 wide)."""
    width = max([1, *(len(b) for b in bags)]) if width is None else width
    out = np.zeros((len(bags), width), np.int32)
    for row, bag in enumerate(bags):
        if len(bag):
            out[row, width - len(bag):] = bag[-width:]
    return out


def interactions(
    spec: FeatureSpec, events: pd.DataFrame, leave_one_out: bool = False
) -> Interactions:
    """Each positive event with the user's previous positives as its history (no leakage).

    ``leave_one_out`` uses the user's *other* positives instead, for protocols whose splits are
    random rather than temporal (MovieLens): there, order carries no meaning and the model is
    evaluated from the full history, so it should learn from full histories too. The bag of
    distinct past purchases is then every item of the shopper (the event's own item included:
    EASE's B has a zero diagonal, so it adds nothing to its own score).
    """
    events = events.sort_values(["user_id", "timestamp", "event_id"], kind="stable")
    users = events["user_id"].astype(str).to_numpy()
    items = spec.items.lookup(events["item_id"])
    n, length = len(events), spec.history_length
    history = np.zeros((n, length), np.int32)
    bag_start = np.zeros(n, np.int64)
    bag_length = np.zeros(n, np.int32)
    bag_items: list[np.ndarray] = []
    offset = 0
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], n]
    for start, end in zip(starts, ends, strict=True):
        seq = items[start:end]
        distinct, first = np.unique(seq, return_index=True)
        order = np.argsort(first, kind="stable")
        firsts = np.sort(first)
        bag_items.append(distinct[order])
        bag_start[start:end] = offset
        # Distinct items first bought before each event (or all of them, leave-one-out).
        bag_length[start:end] = (len(distinct) if leave_one_out else
                                 np.searchsorted(firsts, np.arange(end - start), side="left"))
        offset += len(distinct)
        for k in range(0 if leave_one_out else 1, end - start):
            if leave_one_out:
                others = np.delete(seq, k)
                past = others[-length:]
            else:
                past = seq[max(0, k - length) : k]
            if len(past):
                history[start + k, length - len(past) :] = past
    ts = pd.to_datetime(events["timestamp"], utc=True)
    return Interactions(
        user=spec.users.lookup(users),
        item=items,
        history=history,
        hour=ts.dt.hour.to_numpy(np.int32),
        day_of_week=ts.dt.day_of_week.to_numpy(np.int32),
        timestamp=ts.dt.tz_localize(None).to_numpy(),
        user_key=users,
        bag_start=bag_start,
        bag_length=bag_length,
        bag_items=(np.concatenate(bag_items) if bag_items else np.zeros(0)).astype(np.int32),
    )


def latest_histories(spec: FeatureSpec, events: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each user's most recent positives, as served: the history a recommendation starts from."""
    events = events.sort_values(["user_id", "timestamp", "event_id"], kind="stable")
    out = {}
    length = spec.history_length
    for user, group in events.groupby("user_id", sort=False):
        seq = spec.items.lookup(group["item_id"])[-length:]
        row = np.zeros(length, np.int32)
        row[length - len(seq) :] = seq
        out[str(user)] = row
    return out


def first_purchases(spec: FeatureSpec, events: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each user's distinct items in first-purchase order, as the wide part reads them (and the
    items a recommendation leaves out)."""
    events = events.sort_values(["user_id", "timestamp", "event_id"], kind="stable")
    ids = spec.items.lookup(events["item_id"])
    frame = pd.DataFrame({"user": events["user_id"].astype(str).to_numpy(), "item": ids})
    frame = frame[frame["item"] != 0].drop_duplicates(["user", "item"], keep="first")
    return {str(u): g.to_numpy(np.int32) for u, g in frame.groupby("user", sort=False)["item"]}
