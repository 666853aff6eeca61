"""What each explained (shopper, item) pair's features read as: the values reasons state.

One string per feature as an engineer reads it (``"3 of your 10 recent purchases"``; the
attribution chart's values), the counts reasons need before they may say anything, and the raw
facts (``hour_of_day``, ``weekday``, ``band``, ``band_low``, ``band_high``, ``share``) a reason
in any language is rendered from (``models.reasons.render``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.feature_spec import PRICE_BANDS, FeatureSpec
from models.inputs import ItemTable
from models.reasons import percent


def feature_values(
    spec: FeatureSpec,
    table: ItemTable,
    features_row: Mapping[str, Any],
    user_history: Sequence[int] | np.ndarray | None = None,
    titles: Mapping[str, str] | None = None,
    bought: Sequence[str] = (),
) -> dict[str, str]:
    """What each named feature's value is for one (user, item) pair, as a shopper would read it.

    ``features_row`` holds the pair's raw ids (scalars or length-1 arrays; ``history`` a row of
    item ids, 0 = padding). ``user_history`` defaults to that row: pass it only if it is the same
    history the model saw, or the values will not match what was explained. ``titles`` maps item
    keys to catalogue titles. Besides one value per feature the dict carries counts reasons need:
    ``history_count`` and ``<category|brand|price_band>_count`` (history items sharing the item's
    attribute), ``tag`` and ``tag_count`` (the item's tag most of the history shares, and how
    many history items carry one of the item's tags), ``rated_high``, ``brand_times`` and
    ``popularity_share``. ``ValueBook.values`` does the same for
    many pairs at once.
    """
    history = np.asarray(features_row["history"] if user_history is None else user_history)
    pairs = {"item_id": np.asarray([_scalar(features_row["item_id"])]),
             "history": history.reshape(1, -1),
             "hour": np.asarray([_scalar(features_row["hour"])]),
             "day_of_week": np.asarray([_scalar(features_row["day_of_week"])])}
    return ValueBook(spec, table, titles).values(pairs, [bought])[0]


class ValueBook:
    """``feature_values`` for many pairs: what depends on the item alone is worked out once per
    item and kept (one book per served model), what depends on the shopper's history is counted
    for all pairs in one array operation."""

    COUNTED = ("category", "brand", "price_band")

    def __init__(self, spec: FeatureSpec, table: ItemTable,
                 titles: Mapping[str, str] | None = None,
                 keys: Sequence[str] | None = None) -> None:
        """``keys``: each item id's key (default the spec's vocabulary; a served catalogue
        with items added after training holds more)."""
        self.spec, self.table, self.titles = spec, table, titles or {}
        self.keys = list(keys) if keys is not None else list(spec.items.values)
        self._items: dict[int, dict[str, str]] = {}
        self._hours = [spec.display("hour", h) for h in range(24)]
        self._days = [spec.display("day_of_week", d) for d in range(7)]

    def values(self, pairs: Mapping[str, np.ndarray], bought: Sequence[Sequence[str]]
               ) -> list[dict[str, str]]:
        """One dict per row of ``pairs`` (raw ids: ``item_id``, ``history`` (rows x length, 0 =
        padding), ``hour``, ``day_of_week``); ``bought`` the past purchases each row names."""
        items = np.asarray(pairs["item_id"]).reshape(-1).astype(np.int64)
        if not len(items):
            return []
        history = np.asarray(pairs["history"]).reshape(len(items), -1).astype(np.int64)
        held = history != 0
        n_history = held.sum(axis=1).tolist()
        counts = {}
        for name in self.COUNTED:
            column = np.asarray(getattr(self.table, name))
            own = column[items]
            counts[name] = ((column[history] == own[:, None]) & held
                            & (own != 0)[:, None]).sum(axis=1).tolist()
        tag, tag_count = self._tags(items, history, held)
        out = []
        for row, item in enumerate(items.tolist()):
            n = n_history[row]
            hour, day = int(pairs["hour"][row]), int(pairs["day_of_week"][row])
            shared = {name: counts[name][row] for name in self.COUNTED}
            named = " and ".join(bought[row]) if bought[row] else "unknown"
            out.append(self._item(item) | {
                "history": self.spec.display("history", n),
                "hour": _shown(self._hours, hour, "hour", self.spec),
                "day_of_week": _shown(self._days, day, "day_of_week", self.spec),
                "hour_of_day": str(hour) if 0 <= hour < 24 else "unknown",
                "weekday": str(day) if 0 <= day < 7 else "unknown",
                "category_affinity": _affinity(shared["category"], n),
                "brand_affinity": _affinity(shared["brand"], n),
                "price_band_affinity": _affinity(shared["price_band"], n),
                "retrieval_score": "similar to what you bought" if n else "matches your context",
                "category_count": str(shared["category"]),
                "brand_count": str(shared["brand"]),
                "price_band_count": str(shared["price_band"]),
                "history_count": str(n),
                "brand_times": {1: "once", 2: "twice"}.get(shared["brand"],
                                                           f"{shared['brand']} times"),
                "bought": named,
                "history_items": named,
                "tag_affinity": _affinity(tag_count[row], n),
                "tag": tag[row],
                "tag_count": str(tag_count[row]),
            })
        return out

    def _tags(self, items: np.ndarray, history: np.ndarray, held: np.ndarray
              ) -> tuple[list[str], list[int]]:
        """Per row: the item's tag the most history items carry ("unknown" when none does),
        and how many history items carry any of the item's tags."""
        tags = np.asarray(self.table.tags)
        own, past = tags[items], tags[history]  # (r, T), (r, L, T)
        # (r, L, T): whether the history item carries the item's t-th tag.
        carries = (past[:, :, None, :] == own[:, None, :, None]).any(-1)
        carries &= held[:, :, None] & (own != 0)[:, None, :]
        per_tag = carries.sum(axis=1)  # (r, T)
        best = per_tag.argmax(axis=1)
        names = self.spec.tags.values
        tag = [names[own[r, t]] if per_tag[r, t] else "unknown" for r, t in enumerate(best)]
        return tag, carries.any(-1).sum(axis=1).tolist()

    def prepare(self) -> None:
        """Work out every item's part now (the endpoint's warm-up), not on a first request."""
        for item in range(1, len(self.keys)):
            self._item(item)

    def _item(self, item: int) -> dict[str, str]:
        """What a pair's values say about the item alone (kept: the catalogue is fixed)."""
        known = self._items.get(item)
        if known is not None:
            return known
        spec, table = self.spec, self.table
        category_id, brand_id, band_id = (
            int(table.category[item]), int(table.brand[item]), int(table.price_band[item]))
        category = spec.categories.values[category_id] if category_id else None
        brand = spec.brands.values[brand_id] if brand_id else None
        band = PRICE_BANDS[band_id - 1] if band_id else None
        key = self.keys[item]
        price = float(np.expm1(table.log_price[item]))
        share = float(table.popularity[item])
        names = [spec.tags.values[t] for t in np.asarray(table.tags[item]).tolist() if t]
        rating = float(table.rating[item])
        low, high = _bounds(spec, category, band)
        known = self._items[item] = {
            "user_id": "you",  # never the shopper's pseudonym: an answer must not echo an id
            "item_id": key,
            "category": spec.display("category", category),
            "brand": spec.display("brand", brand),
            "price_band": f"{band} ({spec.price_range(category, band)})" if band and category
            else "unknown",
            "title": self.titles.get(key) or key,
            "price": spec.display("price", price if price > 0 else None),
            "popularity": f"{percent(share)} of purchases",
            "popularity_share": percent(share),
            "share": repr(share),
            "band": band or "unknown",
            "band_low": low,
            "band_high": high,
            "trend": "recent sales",
            "tags": ", ".join(names) if names else "unknown",
            "rating": "unknown" if rating == 0 else
            "above average" if rating > 0 else "below average",
            "rated_high": "yes" if rating > 0 else "unknown",
            # Never the attributes themselves: an answer does not echo what the shop knows.
            "shopper": "your profile",
        }
        return known


def _bounds(spec: FeatureSpec, category: str | None, band: str | None) -> tuple[str, str]:
    """The band's lower and upper price in its category ("" for an open end, "unknown" when the
    category has no cuts): raw numbers, formatted per locale when a reason is rendered."""
    cuts = spec.price_cuts.get(str(category)) if band and category else None
    if cuts is None:
        return "unknown", "unknown"
    low, mid = cuts
    return {"low": ("", repr(low)), "mid": (repr(low), repr(mid)),
            "high": (repr(mid), "")}[band]


def _shown(table: list[str], value: int, feature: str, spec: FeatureSpec) -> str:
    return table[value] if 0 <= value < len(table) else spec.display(feature, value)


def _affinity(count: int, n_history: int) -> str:
    return f"{count} of your {n_history} recent purchases" if n_history else "no purchases yet"


def _scalar(value: Any) -> int:
    return int(np.asarray(value).reshape(-1)[0])
