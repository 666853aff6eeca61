"""Everything a shopper reads: reasons backed by attributions, and the values they state.

A sentence is only ever said for a feature that pushed this item's score *up* (positive
attribution), strongest first, and only when the fact it states is true for this shopper and item
(its values are known and its counts are not zero). Nothing qualifying means a neutral line, never
a guess. All shopper-facing wording lives in this module (``TEMPLATES``, the fallbacks and the
feature values) so it can be reviewed, and translated, in one place.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from models.explain import Explanation
from models.feature_spec import PRICE_BANDS, FeatureSpec
from models.inputs import ItemTable


class Template(NamedTuple):
    text: str  # placeholders name keys of ``feature_values``' dict
    needs: tuple[str, ...] = ()  # further keys that must be known and non-zero


TEMPLATES: dict[str, Template] = {
    # The wide item-item part, attributed per past purchase: only the positive ones are named.
    "history_items": Template("Because you bought {bought}"),
    "category_affinity": Template("You often buy {category}", needs=("category_count",)),
    "brand_affinity": Template("From {brand}, which you have bought {brand_times}",
                               needs=("brand_count",)),
    "price_band_affinity": Template("In your usual price range ({price_band})",
                                    needs=("price_band_count",)),
    "popularity": Template("Popular with other shoppers ({popularity_share} of purchases)"),
    "history": Template("Similar to items you bought before", needs=("history_count",)),
    "retrieval_score": Template("Similar to items you bought before", needs=("history_count",)),
    "hour": Template("Often bought at this time of day ({hour})"),
    "day_of_week": Template("Often bought on {day_of_week}"),
    "tag_affinity": Template("You often choose {tag}", needs=("tag_count",)),
    "rating": Template("Highly rated by other shoppers", needs=("rated_high",)),
}
# The keys each template states, parsed once (a reason is built per recommended item).
_STATED = {feature: tuple(name for _, name, _, _ in string.Formatter().parse(t.text) if name)
           for feature, t in TEMPLATES.items()}
FALLBACK = "Recommended for you."
SIMILAR_LABELS = {"category": "category", "brand": "brand", "price_band": "price band"}

# "other" is the contract's placeholder category (a source without categories), not a fact.
_EMPTY = {"", "unknown", "none", "other"}


def reason(
    explanation: Explanation,
    values: Mapping[str, str],
    max_sentences: int = 2,
    min_attribution: float = 0.0,
) -> str:
    """One or two sentences naming the strongest positive features, or a neutral fallback."""
    sentences = [s for _, s in _chosen(explanation, values, max_sentences, min_attribution)]
    return " ".join(_full_stop(s) for s in sentences) if sentences else FALLBACK


def _full_stop(sentence: str) -> str:
    """End a sentence once: a catalogue title can end in its own full stop ("SKULL.")."""
    return sentence if sentence.endswith((".", "!", "?")) else f"{sentence}."


def reason_features(
    explanation: Explanation,
    values: Mapping[str, str],
    max_sentences: int = 2,
    min_attribution: float = 0.0,
) -> list[str]:
    """The features ``reason`` states, in order: empty when it falls back."""
    return [f for f, _ in _chosen(explanation, values, max_sentences, min_attribution)]


def _chosen(
    explanation: Explanation,
    values: Mapping[str, str],
    max_sentences: int,
    min_attribution: float,
) -> list[tuple[str, str]]:
    chosen: list[tuple[str, str]] = []
    for feature, attribution in explanation.sorted_attributions():
        if len(chosen) >= max_sentences or not attribution > max(min_attribution, 0.0):
            break  # sorted: everything after is weaker
        if feature not in TEMPLATES:
            continue
        sentence = _fill(feature, values)
        if sentence is not None and sentence not in (s for _, s in chosen):
            chosen.append((feature, sentence))
    return chosen


def _fill(feature: str, values: Mapping[str, str]) -> str | None:
    """The sentence, or None when any value it states or needs is unknown, empty or zero."""
    stated, template = _STATED[feature], TEMPLATES[feature]
    if not all(_known(values.get(k)) for k in (*stated, *template.needs)):
        return None
    return template.text.format_map({k: values[k] for k in stated})


def _known(value: str | None) -> bool:
    if value is None or value.strip().lower() in _EMPTY:
        return False
    try:
        return float(value.strip().rstrip("%")) != 0.0
    except ValueError:
        return True


def popular_reason(share: float, category: str | None = None) -> str:
    """Why an unknown shopper sees a best seller: there is no history to attribute a score to."""
    segment = f"in {category}" if category else "in the shop"
    return (f"Popular with shoppers {segment} ({percent(share)} of purchases). We do not know "
            "your purchases yet, so these are best sellers.")


def similar_reason(shared: Sequence[tuple[str, str]]) -> str:
    """Why an item is shown beside another: the attributes they share, and co-purchase."""
    if not shared:
        return "Often chosen by the same shoppers."
    parts = [f"{SIMILAR_LABELS[name]} ({value})" for name, value in shared]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"Same {listed}; often chosen by the same shoppers."


def percent(share: float) -> str:
    """A share as shoppers read it: ``0.0123`` -> ``1.2%``."""
    return "0%" if share <= 0 else f"{share * 100:.2g}%"


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
            shared = {name: counts[name][row] for name in self.COUNTED}
            named = " and ".join(bought[row]) if bought[row] else "unknown"
            out.append(self._item(item) | {
                "history": self.spec.display("history", n),
                "hour": _shown(self._hours, int(pairs["hour"][row]), "hour", self.spec),
                "day_of_week": _shown(self._days, int(pairs["day_of_week"][row]),
                                      "day_of_week", self.spec),
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
            "trend": "recent sales",
            "tags": ", ".join(names) if names else "unknown",
            "rating": "unknown" if rating == 0 else
            "above average" if rating > 0 else "below average",
            "rated_high": "yes" if rating > 0 else "unknown",
            # Never the attributes themselves: an answer does not echo what the shop knows.
            "shopper": "your profile",
        }
        return known


def _shown(table: list[str], value: int, feature: str, spec: FeatureSpec) -> str:
    return table[value] if 0 <= value < len(table) else spec.display(feature, value)


def _affinity(count: int, n_history: int) -> str:
    return f"{count} of your {n_history} recent purchases" if n_history else "no purchases yet"


def _scalar(value: Any) -> int:
    return int(np.asarray(value).reshape(-1)[0])
