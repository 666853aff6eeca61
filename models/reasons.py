"""Plain-language reasons for a recommendation, backed by its integrated-gradients attributions.

A sentence is only ever said for a feature that pushed this item's score *up* (positive
attribution), strongest first, and only when the fact it states is true for this shopper and item
(its values are known and its counts are not zero). Nothing qualifying means a neutral line, never
a guess. All wording lives in ``TEMPLATES`` so it can be reviewed (and translated) in one place.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import NamedTuple

from models.explain import Explanation


class Template(NamedTuple):
    text: str  # placeholders name keys of ``feature_values``' dict
    needs: tuple[str, ...] = ()  # further keys that must be known and non-zero


TEMPLATES: dict[str, Template] = {
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
