"""The shopper state the endpoint answers from: the online store's, over the bundle's snapshot.

A shopper the store knows is answered from the snapshot frozen at training followed by their
stored events since (the latest ``history_length`` as the model's history; everything they
bought, the bundle's record and the store's, left out of their recommendations); one it does not
know from the snapshot alone. Reads are
kept for ``ttl`` seconds, so the handful of lookups one request makes cost one store read, and
``forget`` drops a shopper at once when their own feedback changes them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping

import numpy as np

from contracts.shopper_store import ShopperStore
from models.feature_spec import FeatureSpec

# How long a read is reused: a batch ingested elsewhere shows within this (the goal is 60 s);
# a shopper's own feedback at once (``forget``).
TTL_SECONDS = 5.0
log = logging.getLogger(__name__)
_MAX_CACHED = 100_000


class LiveShoppers:
    def __init__(self, store: ShopperStore, spec: FeatureSpec,
                 histories: Mapping[str, np.ndarray], purchased: Mapping[str, np.ndarray],
                 ttl: float = TTL_SECONDS, item_index: Mapping[str, int] | None = None) -> None:
        """``item_index``: the served catalogue's ids (default the spec's): items added after
        training are left out of what the shopper is offered, but not read as history."""
        self.store, self.ttl = store, ttl
        self._index = item_index if item_index is not None else spec.items.index()
        self._trained, self._length = spec.items.size, spec.history_length
        self._snapshot = (histories, purchased)
        self._cache: dict[str, tuple[float, tuple[np.ndarray, np.ndarray] | None]] = {}
        self.histories, self.purchased = _View(self, 0), _View(self, 1)

    def live(self, user: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(history, purchased) from the store, or None when it holds nothing of ``user``."""
        now = time.monotonic()
        hit = self._cache.get(user)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            state = self.store.states([user]).get(user)
        except Exception as err:  # a store outage costs freshness, never an answer
            log.warning("shopper store unreadable (%s: %s): answering from the snapshot",
                        type(err).__name__, err)
            state = None
        value = None if state is None else self._arrays(user, state.items)
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[user] = (now + self.ttl, value)
        return value

    def forget(self, user: str) -> None:
        self._cache.pop(user, None)

    def _arrays(self, user: str, items: tuple[str, ...]
                ) -> tuple[np.ndarray, np.ndarray] | None:
        # Items unknown to the served catalogue (id 0) are left out; items added after training
        # are left out of what is offered but read as no history (the query tower has no
        # embedding for them). A shopper with no history it can read stays unknown: a cold
        # start, not a "personal" guess.
        ids = np.fromiter((self._index.get(i, 0) for i in items), np.int32, len(items))
        ids = ids[ids != 0]
        trained = ids[ids < self._trained]
        if not len(trained) and user not in self._snapshot[0]:
            return None
        snapshot = self._snapshot[0].get(user, np.zeros(0, np.int32))
        snapshot = snapshot[snapshot != 0]
        recent = np.concatenate([snapshot, newer_than(snapshot, trained)])[-self._length:]
        history = np.zeros(self._length, np.int32)
        if len(recent):
            history[-len(recent):] = recent
        earlier = self._snapshot[1].get(user, np.zeros(0, np.int32))
        merged = np.concatenate([earlier, ids]).astype(np.int32)
        _, first = np.unique(merged, return_index=True)
        return history, merged[np.sort(first)]


def newer_than(snapshot: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """The stored events that come after the snapshot's: those after the first place where the
    snapshot's whole sequence appears in the store (a store fed by every batch holds it), else
    all of them (a store that only saw what happened since, such as live feedback)."""
    n = len(snapshot)
    if n == 0 or len(stored) < n:
        return stored
    windows = np.lib.stride_tricks.sliding_window_view(stored, n)
    hits = np.flatnonzero((windows == snapshot).all(axis=1))
    return stored[hits[0] + n:] if len(hits) else stored


class _View(Mapping):
    """One of the two per-shopper arrays the recommender reads, store first, then snapshot."""

    def __init__(self, shoppers: LiveShoppers, part: int) -> None:
        self._shoppers, self._part = shoppers, part
        self._snapshot = shoppers._snapshot[part]

    def __getitem__(self, user: str) -> np.ndarray:
        live = self._shoppers.live(user)
        return live[self._part] if live is not None else self._snapshot[user]

    def __contains__(self, user: object) -> bool:
        return isinstance(user, str) and (user in self._snapshot
                                          or self._shoppers.live(user) is not None)

    def __iter__(self) -> Iterator[str]:  # the snapshot's shoppers: the store is not listed
        return iter(self._snapshot)

    def __len__(self) -> int:
        return len(self._snapshot)
