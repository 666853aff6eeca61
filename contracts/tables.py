"""The shop data contract: the canonical tables every source adapter produces.

Adapters map their raw format onto these tables; Great Expectations suites in ``expectations/``
enforce them; everything downstream (features, training, serving) reads only these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

EVENT_TYPES: tuple[str, ...] = ("view", "add_to_cart", "purchase", "return")
# What a shopper's history is made of, in training and in the online shopper store.
POSITIVE_EVENTS: tuple[str, ...] = ("purchase", "add_to_cart")
TABLES: tuple[str, ...] = ("events", "items", "users")

DType = Literal["string", "int64", "float64", "timestamp"]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType
    required: bool  # must be present and non-null
    doc: str


SCHEMAS: dict[str, tuple[Column, ...]] = {
    "events": (
        Column("event_id", "string", True, "Unique id of the event."),
        Column("user_id", "string", True, "Pseudonymised customer id (keyed hash)."),
        Column("item_id", "string", True, "Item the event is about; must be in the catalogue."),
        Column("event_type", "string", True, "One of " + ", ".join(EVENT_TYPES) + "."),
        Column("quantity", "int64", True, "Units; positive for purchases and returns."),
        Column("unit_price", "float64", False, "Price per unit at event time, when known."),
        Column("timestamp", "timestamp", True, "When it happened, UTC."),
        Column("order_id", "string", False, "Order the purchase or return belongs to."),
        Column("rating", "float64", False, "Explicit rating, for sources that have one."),
    ),
    "items": (
        Column("item_id", "string", True, "Unique item id."),
        Column("title", "string", True, "Human-readable name."),
        Column("category", "string", True, "Category; 'other' when the source has none."),
        Column("brand", "string", False, "Brand, when known."),
        Column("price", "float64", False, "Current list price, when known."),
        Column("first_seen", "timestamp", True, "When the item first appeared, UTC."),
        Column("tags", "string", False, "Descriptive tags (genres, styles, ...), '|'-separated, "
               "when known."),
    ),
    "users": (
        Column("user_id", "string", True, "Pseudonymised customer id (keyed hash)."),
        Column("country", "string", False, "Country, when known."),
        Column("segments", "string", False, "Shopper attributes as 'name:value' tags (age band, "
               "membership tier, ...), '|'-separated, when known."),
    ),
}

KEYS: dict[str, str] = {"events": "event_id", "items": "item_id", "users": "user_id"}

# Event files as they arrive in the inbox from the synthetic shop and from ``POST /feedback``:
# raw customer ids (ingestion pseudonymises them), one event per line.
INBOX_EVENT_COLUMNS: tuple[str, ...] = (
    "event_id", "customer_id", "item_id", "event_type", "quantity", "unit_price", "timestamp",
    "order_id",
)

# The multi-valued columns, values separated by ``MULTI_SEPARATOR``.
MULTI_VALUED: tuple[str, ...] = ("tags", "segments")

_PANDAS_DTYPES = {
    "string": "string",
    "int64": "Int64",
    "float64": "Float64",
    "timestamp": "datetime64[ns, UTC]",
}


def columns(table: str) -> list[str]:
    return [c.name for c in SCHEMAS[table]]


def conform(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Give ``frame`` the table's column order and dtypes; missing optional columns become null.

    Values that cannot be converted become null, which the required-column expectations then
    catch, so a type problem surfaces as a named failed expectation rather than a traceback.
    Extra columns are kept after the contract's own.
    """
    out = pd.DataFrame(index=frame.index)
    for col in SCHEMAS[table]:
        values = frame[col.name] if col.name in frame else pd.Series(pd.NA, index=frame.index)
        out[col.name] = _convert(values, col.dtype)
    extras = [c for c in frame.columns if c not in out.columns]
    for name in extras:
        out[name] = frame[name]
    return out.reset_index(drop=True)


def _convert(values: pd.Series, dtype: DType) -> pd.Series:
    if dtype == "timestamp":
        return pd.to_datetime(values, utc=True, errors="coerce", format="mixed").astype(
            _PANDAS_DTYPES[dtype]
        )
    if dtype in ("int64", "float64"):
        numbers = pd.to_numeric(values, errors="coerce")
        if dtype == "int64":
            whole = numbers.where(numbers.isna() | (numbers == numbers.round()))
            return whole.astype("Float64").astype("Int64")
        return numbers.astype("Float64")
    text = values.astype("string").str.strip()
    return text.mask(text == "")
