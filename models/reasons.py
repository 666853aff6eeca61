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
}
FALLBACK = "Recommended for you."
SIMILAR_LABELS = {"category": "category", "brand": "brand", "price_band": "price band"}

_EMPTY = {"", "unknown", "none"}


def reason(
    explanation: Explanation,
    values: Mapping[str, str],
    max_sentences: int = 2,
    min_attribution: float = 0.0,
) -> str:
    """One or two sentences naming the strongest positive features, or a neutral fallback."""
    sentences = [s for _, s in _chosen(explanation, values, max_sentences, min_attribution)]
    return " ".join(f"{s}." for s in sentences) if sentences else FALLBACK


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
        template = TEMPLATES.get(feature)
        if template is None:
            continue
        sentence = _fill(template, values)
        if sentence is not None and sentence not in (s for _, s in chosen):
            chosen.append((feature, sentence))
    return chosen


def _fill(template: Template, values: Mapping[str, str]) -> str | None:
    """The sentence, or None when any value it states or needs is unknown, empty or zero."""
    keys = [name for _, name, _, _ in string.Formatter().parse(template.text) if name]
    if not all(_known(values.get(k)) for k in (*keys, *template.needs)):
        return None
    return template.text.format_map({k: values[k] for k in keys})


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
    attribute), ``brand_times`` and ``popularity_share``.
    """
    item = _scalar(features_row["item_id"])
    history = np.asarray(features_row["history"] if user_history is None else user_history)
    history = history.reshape(-1).astype(np.int64)
    history = history[history != 0]
    n_history = len(history)

    category_id, brand_id, band_id = (
        int(table.category[item]), int(table.brand[item]), int(table.price_band[item])
    )
    category = spec.categories.values[category_id] if category_id else None
    brand = spec.brands.values[brand_id] if brand_id else None
    band = PRICE_BANDS[band_id - 1] if band_id else None
    key = spec.items.values[item]
    price = float(np.expm1(table.log_price[item]))
    share = float(table.popularity[item])

    def shared(column: np.ndarray, value: int) -> int:
        return int(np.sum(column[history] == value)) if value else 0

    counts = {
        "category": shared(table.category, category_id),
        "brand": shared(table.brand, brand_id),
        "price_band": shared(table.price_band, band_id),
    }

    def affinity(count: int) -> str:
        return f"{count} of your {n_history} recent purchases" if n_history else "no purchases yet"

    values = {
        "user_id": "you",  # never the shopper's pseudonym: an answer must not echo an id
        "history": spec.display("history", n_history),
        "item_id": key,
        "category": spec.display("category", category),
        "brand": spec.display("brand", brand),
        "price_band": f"{band} ({spec.price_range(category, band)})" if band and category
        else "unknown",
        "title": (titles or {}).get(key) or key,
        "price": spec.display("price", price if price > 0 else None),
        "hour": spec.display("hour", _scalar(features_row["hour"])),
        "day_of_week": spec.display("day_of_week", _scalar(features_row["day_of_week"])),
        "category_affinity": affinity(counts["category"]),
        "brand_affinity": affinity(counts["brand"]),
        "price_band_affinity": affinity(counts["price_band"]),
        "popularity": f"{percent(share)} of purchases",
        "retrieval_score": "similar to what you bought" if n_history
        else "matches your context",
    }
    values |= {f"{name}_count": str(count) for name, count in counts.items()}
    values["history_count"] = str(n_history)
    values["brand_times"] = {1: "once", 2: "twice"}.get(counts["brand"], f"{counts['brand']} times")
    values["popularity_share"] = percent(share)
    values["bought"] = " and ".join(bought) if bought else "unknown"
    values["history_items"] = values["bought"]
    values["trend"] = "recent sales"
    return values


def _scalar(value: Any) -> int:
    return int(np.asarray(value).reshape(-1)[0])
