"""The simulator's shoppers and catalogue, read from a data directory or a generated shop.

Two layouts hold a synthetic shop's planted preferences:

* an ingested data directory: ``reference/ground_truth.json`` keyed by *pseudonym* (ingestion
  hashed the ids), the catalogue in ``curated/items``, and the raw customer ids only in the
  batches as received (``landing/**/users.csv``). The endpoint takes raw ids, so each landed id
  is pseudonymised with the key (``SHOPREC_PSEUDONYM_KEY``) to find its preferences;
* the folder ``shoprec generate --out`` wrote (the demo's inbox): ``ground_truth.json`` keyed by
  raw id beside ``items.csv``, no key needed.

Shoppers are sampled with their own ``random.Random(seed)`` from the sorted ids, so the same
seed picks the same shoppers whatever order files were listed in.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from typing import Any

from contracts.pseudonyms import Pseudonymiser
from contracts.storage import DataPath
from pipelines.data.sources.base import UsageError
from pipelines.simulation.behaviour import Product, Shopper, Taste, price_band

GROUND_TRUTH = "ground_truth.json"


@dataclass(frozen=True)
class SimShop:
    shoppers: list[Shopper]  # sorted by raw id
    products: dict[str, Product]  # by item id


def load_shop(folder: DataPath, pseudonym_key: str | None = None) -> SimShop:
    """Every shopper with planted preferences whose raw id is known, and the catalogue.

    ``UsageError`` (one line) when ``folder`` holds no planted preferences (real data has none),
    or only pseudonymised ones and no key to match raw ids to them.
    """
    if (folder / GROUND_TRUTH).is_file():  # a generated shop: raw ids
        truth = _read_json(folder / GROUND_TRUTH)
        raw = {user: user for user in truth["users"]}
        products = _products(_read_csv(folder / "items.csv"), truth)
    elif (folder / "reference" / GROUND_TRUTH).is_file():  # an ingested data directory
        truth = _read_json(folder / "reference" / GROUND_TRUTH)
        if not pseudonym_key:
            raise UsageError("the data directory's planted preferences are keyed by pseudonym: "
                             "set SHOPREC_PSEUDONYM_KEY (the endpoint's) to match raw ids")
        pseudonymiser = Pseudonymiser(pseudonym_key)
        raw = {pseudonymiser.one(user): user for user in _landed_customers(folder)}
        products = _products(_curated_items(folder), truth)
    else:
        raise UsageError(f"no planted preferences under {folder}: give a data directory of the "
                         f"synthetic shop (reference/{GROUND_TRUTH}) or a folder `shoprec "
                         "generate` wrote")
    shoppers = sorted(
        (Shopper(raw[key], Taste(prefs["category"], prefs.get("brand") or "",
                                 prefs["price_band"]), _activity(prefs.get("activity")))
         for key, prefs in truth["users"].items() if key in raw),
        key=lambda shopper: shopper.user_id)
    if not shoppers:
        raise UsageError(f"none of the landed customers under {folder} has planted preferences: "
                         "is SHOPREC_PSEUDONYM_KEY the key the data was ingested with?")
    return SimShop(shoppers, products)


def sample_shoppers(shoppers: list[Shopper], n: int, seed: int) -> list[Shopper]:
    """``n`` distinct shoppers (all of them when there are fewer), the same for one seed."""
    return random.Random(seed).sample(shoppers, min(n, len(shoppers)))


def _read_json(path: DataPath) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _read_csv(path: DataPath) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    return list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))


def _landed_customers(folder: DataPath) -> set[str]:
    """Raw customer ids of every customers file landed as received."""
    landing = folder / "landing"
    files = landing.glob("*/*/users.csv") if landing.is_dir() else []
    return {row["customer_id"].strip() for path in files for row in _read_csv(path)
            if row.get("customer_id", "").strip()}


def _curated_items(folder: DataPath) -> list[dict[str, Any]]:
    from pipelines.data import curated
    from pipelines.data.zones import DataDir

    frame = curated.read_table(DataDir(folder), "items")
    if frame.empty:
        return []
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")


def _products(rows: list[dict[str, Any]], truth: dict[str, Any]) -> dict[str, Product]:
    bands = truth.get("price_bands", {})
    products = {}
    for row in rows:
        price = _price(row.get("price"))
        category = str(row.get("category") or "")
        products[str(row["item_id"])] = Product(
            str(row["item_id"]), category, str(row.get("brand") or ""),
            price_band(price, bands.get(category)), price)
    return products


def _activity(value: Any) -> float:
    """The planted activity; 1 (the mean shopper) for a shop generated before it was planted,
    or a value that is not a positive number."""
    try:
        found = float(value)
    except (TypeError, ValueError):
        return 1.0
    return found if 0 < found < float("inf") else 1.0


def _price(value: Any) -> float | None:
    try:
        price = float(value)
    except (TypeError, ValueError):
        return None
    return price if price == price else None  # NaN: unknown
