"""Adapter for the UCI Online Retail data set, landed as one CSV file per trading day.

Every row is one invoice line of a UK gift retailer. Invoices starting with ``C`` are
cancellations (negative quantities) and become ``return`` events; everything else is a
``purchase``. The source's normal dirt (lines without a customer, postage/fee/adjustment lines,
free or negative prices, zero quantities) is set aside as rejected rows with a reason, so the
batch checks stay strict for genuine breakage. The catalogue and the customers are derived from
the accepted lines of the same batch, because the data set ships no separate item or user files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from contracts.pseudonyms import Pseudonymiser
from contracts.tables import conform
from pipelines.data.sources.base import (
    BatchInput,
    Conformed,
    Source,
    expand,
    file_batch,
    parse_day,
    set_aside,
)
from pipelines.data.sources.reading import read_delimited

RAW_COLUMNS = [
    "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
    "CustomerID", "Country",
]

# The data set's rules, shared with the fixed benchmark protocol
# (``pipelines.evaluation.benchmark``): products have a 5-digit stock code, optionally with a letter
# suffix (85123A); the rest are postage, manual adjustments, bank charges, fees, gift vouchers,
# samples... Invoice numbers starting with C are cancellations.
PRODUCT_CODE = r"^\d{5}"
CANCELLATION_PREFIX = "C"

# Reasons a raw line is set aside, checked in this order; the first that applies is recorded.
REJECT_REASONS: tuple[str, ...] = (
    "missing_customer_id",
    "missing_invoice_no",
    "missing_stock_code",
    "non_product_stock_code",
    "non_positive_price",
    "non_positive_quantity",
    "unparseable_quantity",
    "unparseable_price",
    "unparseable_invoice_date",
)

# The shop has no categories; a coarse one from the description is enough for diversity and
# explanations. First match wins, so seasonal and lighting beat the generic "heart"/"card" words.
CATEGORY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("christmas", ("christmas", "xmas", "santa", "reindeer", "advent")),
    ("lighting", ("candle", "light", "lantern", "t-light", "tealight")),
    ("bags", ("bag", "tote", "purse")),
    (
        "kitchen",
        ("mug", "cup", "teacup", "teapot", "plate", "bowl", "tea", "jar", "cake", "baking",
         "spoon", "napkin"),
    ),
    (
        "stationery",
        ("card", "wrap", "wrapping", "paper", "notebook", "pen", "pencil", "sticker", "envelope"),
    ),
    ("home-decor", ("heart", "sign", "frame", "clock", "cushion", "doormat", "mirror", "vase")),
    ("toys", ("toy", "doll", "game", "jigsaw", "puzzle", "playhouse")),
)
_CATEGORY_PATTERNS = [
    (name, r"\b(?:" + "|".join(words) + r")(?:s|es)?\b") for name, words in CATEGORY_KEYWORDS
]

# Country values that say "unknown" rather than naming a country.
_NO_COUNTRY = {"Unspecified"}


def _sort_key(path: Path) -> tuple[dt.date, str]:
    return parse_day(path.stem) or dt.date.min, path.name


class OnlineRetailSource(Source):
    name = "online-retail"
    raw_suite = "raw.online_retail"
    window_from_rows = True

    def discover(self, paths: Sequence[Path]) -> list[BatchInput]:
        files = sorted(dict.fromkeys(expand(paths, "*.csv")), key=_sort_key)
        return [file_batch(self.name, path) for path in files]

    def read_raw(self, batch: BatchInput) -> pd.DataFrame:
        # keep=(): a column the export gained is dropped and reported (it may hold an e-mail).
        return read_delimited(batch.files[0], RAW_COLUMNS, keep=())

    def conform(
        self, raw: pd.DataFrame, batch: BatchInput, pseudonymiser: Pseudonymiser
    ) -> Conformed:
        invoice = _text(raw["InvoiceNo"])
        stock = _text(raw["StockCode"]).str.upper()
        # Exported through a float column, so 17850 arrives as "17850.0".
        customer = _text(raw["CustomerID"]).str.replace(r"\.0$", "", regex=True)
        user_id = pseudonymiser.series(customer)
        cancellation = is_cancellation(invoice)
        quantity = _number(raw["Quantity"], whole=True)
        price = _number(raw["UnitPrice"])
        timestamp = pd.to_datetime(
            _text(raw["InvoiceDate"]), format="ISO8601", utc=True, errors="coerce"
        )

        checks = {
            "missing_customer_id": customer.isna(),
            "missing_invoice_no": invoice.isna(),
            "missing_stock_code": stock.isna(),
            "non_product_stock_code": ~is_product(stock),
            "non_positive_price": _flag(price <= 0),
            "non_positive_quantity": _flag((quantity == 0) | ((quantity < 0) & ~cancellation)),
            "unparseable_quantity": quantity.isna(),
            "unparseable_price": price.isna(),
            "unparseable_invoice_date": timestamp.isna(),
        }
        rejected, ok = set_aside(raw, checks, REJECT_REASONS, "CustomerID", user_id)
        events = pd.DataFrame(
            {
                "event_id": event_ids(invoice[ok], stock[ok], raw.loc[ok]),
                "user_id": user_id[ok],
                "item_id": stock[ok],
                "event_type": np.where(cancellation[ok], "return", "purchase"),
                "quantity": quantity[ok].abs(),
                "unit_price": price[ok],
                "timestamp": timestamp[ok],
                "order_id": invoice[ok],
            }
        )
        lines = events.assign(
            description=_text(raw.loc[ok, "Description"]),
            country=_text(raw.loc[ok, "Country"]),
            cancellation=cancellation[ok],
        )
        return Conformed(
            primary="events",
            tables={
                "events": conform("events", events),
                "items": conform("items", _items(lines)),
                "users": conform("users", _users(lines)),
            },
            rejected=rejected.reset_index(drop=True),
        )


def event_ids(invoice: pd.Series, stock: pd.Series, raw: pd.DataFrame) -> pd.Series:
    """``invoice:stock``, numbered ``:2``, ``:3``... when an invoice has the stock on several
    lines (ordered by their quantity, price and time, not their place in the file).

    Built from the line's content, never its line number, so an invoice exported again (a file
    resending yesterday's orders with today's) gets the same ids and is not curated twice.
    """
    if not len(invoice):
        return pd.Series([], dtype="string", index=invoice.index)
    content = (_text(raw["Quantity"]).fillna("") + "|" + _text(raw["UnitPrice"]).fillna("")
               + "|" + _text(raw["InvoiceDate"]).fillna(""))
    keys = pd.DataFrame({"invoice": invoice, "stock": stock, "content": content})
    ordered = keys.sort_values(["invoice", "stock", "content"], kind="stable")
    repeat = ordered.groupby(["invoice", "stock"]).cumcount().reindex(keys.index)
    suffix = repeat.map(lambda n: f":{n + 1}" if n else "").astype("string")
    return (invoice + ":" + stock + suffix).astype("string")


def is_cancellation(invoice: pd.Series) -> pd.Series:
    """Lines of cancelled invoices (the invoice number starts with C, in either case)."""
    return _flag(invoice.str.upper().str.startswith(CANCELLATION_PREFIX))


def is_product(stock_code: pd.Series) -> pd.Series:
    """Lines of real products (``PRODUCT_CODE``), not postage, fees or adjustments."""
    return _flag(stock_code.str.match(PRODUCT_CODE))


def _items(lines: pd.DataFrame) -> pd.DataFrame:
    """The batch's catalogue: each accepted stock code with its usual description and price."""
    by_item = lines.groupby("item_id")
    items = pd.DataFrame(index=pd.Index(sorted(by_item.groups), name="item_id"))
    titles = _most_frequent(lines["item_id"], lines["description"])
    # A title is required; the stock code is a poor but honest one when no line described it.
    items["title"] = titles.reindex(items.index).fillna(pd.Series(items.index, index=items.index))
    items["category"] = categorise(items["title"])
    items["brand"] = None
    sold = lines.loc[~lines["cancellation"]].groupby("item_id")["unit_price"].median()
    items["price"] = sold.reindex(items.index).fillna(by_item["unit_price"].median())
    items["first_seen"] = by_item["timestamp"].min()
    return items.reset_index()


def _users(lines: pd.DataFrame) -> pd.DataFrame:
    """Customers with accepted lines, each with the country most of their lines name."""
    country = lines["country"].mask(lines["country"].isin(_NO_COUNTRY))
    users = pd.DataFrame(index=pd.Index(sorted(lines["user_id"].unique()), name="user_id"))
    users["country"] = _most_frequent(lines["user_id"], country).reindex(users.index)
    return users.reset_index()


def categorise(titles: pd.Series) -> pd.Series:
    """A coarse category from each description via ``CATEGORY_KEYWORDS``; ``other`` if none."""
    titles = titles.astype("string")
    category = pd.Series(pd.NA, index=titles.index, dtype="string")
    for name, pattern in _CATEGORY_PATTERNS:
        hit = _flag(titles.str.contains(pattern, case=False, regex=True))
        category = category.mask(category.isna() & hit, name)
    return category.fillna("other")


def _most_frequent(keys: pd.Series, values: pd.Series) -> pd.Series:
    """Per key, its most frequent non-null value; ties go to the alphabetically first, so the
    derived tables do not depend on row order."""
    pairs = pd.DataFrame({"key": keys, "value": values}).dropna()
    counts = pairs.value_counts().rename("n").reset_index()
    counts = counts.sort_values(["key", "n", "value"], ascending=[True, False, True])
    return counts.drop_duplicates("key").set_index("key")["value"]


def _text(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def _number(values: pd.Series, *, whole: bool = False) -> pd.Series:
    """Parsed numbers as Float64; unparseable, non-finite or (if ``whole``) fractional become NA."""
    numbers = pd.to_numeric(_text(values), errors="coerce").astype("Float64")
    valid = np.isfinite(numbers.to_numpy(dtype=float, na_value=np.nan))
    if whole:
        valid &= _flag(numbers == numbers.round()).to_numpy()
    return numbers.where(valid)


def _flag(mask: pd.Series) -> pd.Series:
    """A nullable boolean mask with NA counted as False."""
    return mask.fillna(False).astype(bool)
