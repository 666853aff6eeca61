"""The one feature spec: names, vocabularies, embedding sizes and how values read to a human.

Training, serving and explanations all take their features from here, so a vocabulary or a
display rule can never differ between them. The spec is plain data (JSON-serialisable) built from
curated training data; it does no I/O itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

OOV = "[UNK]"
MULTI_SEPARATOR = "|"  # between the values of a multi-valued cell (items' tags, users' segments)
EMBEDDING_DIMS = {
    "user_id": 32, "item_id": 32, "category": 8, "brand": 8, "price_band": 4, "title": 16,
    "hour": 4, "day_of_week": 4, "history": 32, "tags": 8, "shopper": 8,
}
PRICE_BANDS = ("low", "mid", "high")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Vocabulary:
    """String values to dense ids; id 0 is reserved for values not seen in training."""

    name: str
    values: tuple[str, ...]

    @classmethod
    def build(cls, name: str, values: Iterable[Any], max_size: int | None = None) -> Vocabulary:
        counts = pd.Series([str(v) for v in values if not pd.isna(v)]).value_counts()
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = [v for v, _ in ordered][: max_size]
        return cls(name, (OOV, *kept))

    @property
    def size(self) -> int:
        return len(self.values)

    def index(self) -> dict[str, int]:
        return {v: i for i, v in enumerate(self.values)}

    def lookup(self, values: Iterable[Any]) -> np.ndarray:
        index = self.index()
        return np.fromiter((index.get(str(v), 0) for v in values), dtype=np.int32)


@dataclass(frozen=True)
class FeatureSpec:
    """Everything a model needs to turn raw users, items and context into tensors and back."""

    users: Vocabulary
    items: Vocabulary
    categories: Vocabulary
    brands: Vocabulary
    title_tokens: Vocabulary
    # Per-category price cut points (low/mid upper bounds): a "mid" lamp and a "mid" book differ.
    price_cuts: dict[str, tuple[float, float]]
    history_length: int = 50
    title_length: int = 8
    # What a source carries beyond the core columns: items' tags (genres, styles) and shoppers'
    # attributes (``country:…`` and the ``segments`` a source gives, such as ``age:25-34``).
    tags: Vocabulary = field(default_factory=lambda: Vocabulary("tags", (OOV,)))
    shopper_attributes: Vocabulary = field(
        default_factory=lambda: Vocabulary("shopper_attributes", (OOV,)))
    tag_length: int = 8
    attribute_length: int = 8
    embedding_dims: dict[str, int] = field(default_factory=lambda: dict(EMBEDDING_DIMS))

    # ---- building -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        events: pd.DataFrame,
        items: pd.DataFrame,
        users: pd.DataFrame,
        history_length: int = 50,
    ) -> FeatureSpec:
        """Vocabularies from the training window only, so evaluation sees genuinely new values."""
        price_cuts = {}
        for category, prices in items.groupby("category")["price"]:
            known = prices.dropna().astype(float)
            if len(known):
                low, mid = np.quantile(known, [1 / 3, 2 / 3])
                price_cuts[str(category)] = (round(float(low), 2), round(float(mid), 2))
        return cls(
            users=Vocabulary.build("user_id", events["user_id"]),
            items=Vocabulary.build("item_id", items["item_id"]),
            categories=Vocabulary.build("category", items["category"]),
            brands=Vocabulary.build("brand", items["brand"]),
            title_tokens=Vocabulary.build(
                "title", (t for title in items["title"] for t in tokenize(title)), max_size=5000
            ),
            price_cuts=price_cuts,
            history_length=history_length,
            tags=Vocabulary.build(
                "tags", (t for text in items.get("tags", ()) for t in split_values(text)),
                max_size=1000),
            shopper_attributes=Vocabulary.build(
                "shopper_attributes", (a for row in shopper_attributes(users) for a in row),
                max_size=1000),
        )

    # ---- features ---------------------------------------------------------------------------
    def price_band(self, category: str, price: float | None) -> str | None:
        cuts = self.price_cuts.get(str(category))
        if cuts is None or price is None or not math.isfinite(price):
            return None
        return PRICE_BANDS[0] if price <= cuts[0] else PRICE_BANDS[1] if price <= cuts[1] \
            else PRICE_BANDS[2]

    def price_band_ids(self, categories: Iterable[str], prices: Iterable[float]) -> np.ndarray:
        """0 = unknown, 1..3 = low, mid, high."""
        bands = [self.price_band(c, p) for c, p in zip(categories, prices, strict=True)]
        return np.array([0 if b is None else PRICE_BANDS.index(b) + 1 for b in bands], np.int32)

    def tag_ids(self, tags: Iterable[Any]) -> np.ndarray:
        """(n, tag_length) ids of each item's tags (a ``tags`` cell each), 0 = padding."""
        return _padded(self.tags.index(), (split_values(t) for t in tags), self.tag_length)

    def attribute_ids(self, users: pd.DataFrame) -> np.ndarray:
        """(n, attribute_length) ids of each user row's attributes, 0 = padding."""
        return _padded(self.shopper_attributes.index(), shopper_attributes(users),
                       self.attribute_length)

    def title_ids(self, titles: Iterable[str]) -> np.ndarray:
        index = self.title_tokens.index()
        rows = []
        for title in titles:
            ids = [index.get(t, 0) for t in tokenize(title)][: self.title_length]
            rows.append(ids + [0] * (self.title_length - len(ids)))
        return np.array(rows, dtype=np.int32).reshape(-1, self.title_length)

    # ---- display ----------------------------------------------------------------------------
    def display(self, feature: str, value: Any) -> str:
        """How a raw feature value reads to a shopper (used by explanations and reasons)."""
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "unknown"
        if feature == "price":
            return f"{float(value):.2f}"
        if feature == "price_band":
            return str(value)
        if feature == "hour":
            return f"{int(value):02d}:00-{(int(value) + 1) % 24:02d}:00"
        if feature == "day_of_week":
            return DAY_NAMES[int(value)]
        if feature == "history":
            return f"{int(value)} earlier purchases" if isinstance(value, int | np.integer) \
                else str(value)
        return str(value)

    def price_range(self, category: str, band: str) -> str:
        """E.g. ``10.00-20.00`` for the band's bounds in that category."""
        cuts = self.price_cuts.get(str(category))
        if cuts is None:
            return "unknown"
        low, mid = cuts
        return {"low": f"up to {low:.2f}", "mid": f"{low:.2f}-{mid:.2f}",
                "high": f"over {mid:.2f}"}[band]

    # ---- persistence (plain data; the caller does the I/O) ----------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """A spec from ``to_dict``'s data; fields added since it was written take defaults."""
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        vocab = {k: Vocabulary(v["name"], tuple(v["values"])) for k, v in data.items()
                 if isinstance(v, dict) and "values" in v}
        rest = {k: v for k, v in data.items() if k not in vocab}
        rest["price_cuts"] = {k: tuple(v) for k, v in rest["price_cuts"].items()}
        if "embedding_dims" in rest:
            rest["embedding_dims"] = EMBEDDING_DIMS | rest["embedding_dims"]
        return cls(**vocab, **rest)


def split_values(text: Any) -> list[str]:
    """A multi-valued cell's values, blanks dropped, each once."""
    if text is None or text is pd.NA or (isinstance(text, float) and not math.isfinite(text)):
        return []
    parts = (part.strip() for part in str(text).split(MULTI_SEPARATOR))
    return list(dict.fromkeys(part for part in parts if part))


def shopper_attributes(users: pd.DataFrame) -> list[list[str]]:
    """Each user row's attributes: ``country:<country>`` and its ``segments`` values."""
    n = len(users)
    countries = users["country"] if "country" in users else pd.Series([None] * n)
    segments = users["segments"] if "segments" in users else pd.Series([None] * n)
    return [([f"country:{c}"] if not pd.isna(c) and str(c).strip() else []) + split_values(s)
            for c, s in zip(countries.tolist(), segments.tolist(), strict=True)]


def _padded(index: dict[str, int], rows: Iterable[list[str]], width: int) -> np.ndarray:
    """Known values' ids per row, left-aligned in ``width`` slots, 0 = padding or unknown."""
    out = [([index[v] for v in row if v in index] + [0] * width)[:width] for row in rows]
    return np.array(out, dtype=np.int32).reshape(-1, width)


def tokenize(title: Any) -> list[str]:
    text = str(title).lower() if title is not None else ""
    return [t for t in "".join(c if c.isalnum() else " " for c in text).split() if len(t) > 1]
