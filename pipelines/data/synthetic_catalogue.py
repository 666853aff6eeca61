"""The synthetic shop's catalogue: categories with their products and price spread, brands with
the categories they sell in, and the items drawn from them (titles, prices, price bands)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.data.synthetic_faults import money_text

PRICE_BANDS: tuple[str, ...] = ("low", "mid", "high")
ITEM_COLUMNS = ["item_id", "title", "category", "brand", "price", "first_seen"]
MISSING_BRAND_RATE = 0.05

# category -> (product nouns, lognormal mu, lognormal sigma); the spread gives usable price bands.
CATEGORIES: dict[str, tuple[tuple[str, ...], float, float]] = {
    "kitchenware": (
        ("Chef Knife", "Frying Pan", "Mixing Bowl", "Cutting Board", "Saucepan", "Kettle",
         "Spatula Set", "Colander"), 3.2, 0.6),
    "electronics": (
        ("Headphones", "Bluetooth Speaker", "USB-C Charger", "Smartwatch", "Power Bank", "Webcam",
         "Keyboard", "E-Reader"), 4.2, 0.8),
    "books": (
        ("Cookbook", "Novel", "Travel Guide", "Atlas", "Biography", "Poetry Collection",
         "Field Guide", "Sketchbook"), 2.7, 0.4),
    "toys": (
        ("Building Blocks", "Puzzle", "Plush Bear", "Board Game", "Toy Car", "Kite", "Doll House",
         "Science Kit"), 3.0, 0.6),
    "garden": (
        ("Watering Can", "Pruning Shears", "Planter", "Garden Hose", "Seed Kit", "Bird Feeder",
         "Trowel", "Solar Lantern"), 3.1, 0.7),
    "sports": (
        ("Yoga Mat", "Running Shoes", "Water Bottle", "Dumbbell Set", "Tennis Racket",
         "Cycling Gloves", "Jump Rope", "Backpack"), 3.4, 0.7),
    "beauty": (
        ("Face Serum", "Hand Cream", "Shampoo", "Lip Balm", "Hair Dryer", "Nail Kit",
         "Body Lotion", "Perfume"), 2.8, 0.6),
    "home-decor": (
        ("Desk Lamp", "Throw Pillow", "Wall Clock", "Picture Frame", "Vase", "Scented Candle",
         "Rug", "Mirror"), 3.3, 0.7),
}

# brand -> categories it sells in; some span two so brand and category are not interchangeable.
BRANDS: dict[str, tuple[str, ...]] = {
    "Nordvik": ("home-decor", "kitchenware"),
    "Cucina Forte": ("kitchenware",),
    "Pan & Pestle": ("kitchenware",),
    "Hearthstone": ("kitchenware", "home-decor"),
    "Voltra": ("electronics",),
    "Pixelwave": ("electronics",),
    "Arcline": ("electronics", "sports"),
    "Inkwell Press": ("books",),
    "Paperlane": ("books",),
    "Bramble": ("books", "toys"),
    "Tinker & Twig": ("toys",),
    "Playfold": ("toys",),
    "Greenthumb": ("garden",),
    "Fjällbo": ("garden", "home-decor"),
    "Mossgate": ("garden",),
    "Stride": ("sports",),
    "Peakform": ("sports",),
    "Lumina": ("beauty",),
    "Velvet Fern": ("beauty",),
    "Aurelle": ("beauty", "home-decor"),
}

ADJECTIVES = (
    "Classic", "Modern", "Compact", "Deluxe", "Essential", "Vintage", "Premium", "Everyday", "Eco",
    "Pro", "Mini", "Signature",
)
COUNTRIES = ("DE", "FR", "NL", "GB", "ES", "IT", "SE", "PL")
COUNTRY_WEIGHTS = (0.30, 0.16, 0.12, 0.12, 0.10, 0.08, 0.06, 0.06)


@dataclass(frozen=True)
class Catalogue:
    frame: pd.DataFrame
    category: np.ndarray  # category index per item
    brand: np.ndarray  # brand index per item, -1 when the brand is missing
    band: np.ndarray  # price band index per item
    price: np.ndarray
    popularity: np.ndarray
    bands: dict[str, dict[str, list[float]]]


def make_catalogue(rng: np.random.Generator, items: int, start: datetime.date) -> Catalogue:
    """Items spread evenly over the categories so each category's base rate is about 1/8."""
    names = list(CATEGORIES)
    brand_names = list(BRANDS)
    n = items
    category = rng.permutation(np.arange(n) % len(names))

    brands_of = [
        np.array([b for b, name in enumerate(brand_names) if cat in BRANDS[name]])
        for cat in names
    ]
    pick = rng.random(n)
    brand = np.array([
        brands_of[c][int(p * len(brands_of[c]))] for c, p in zip(category, pick, strict=True)
    ])
    brand[rng.random(n) < MISSING_BRAND_RATE] = -1

    mu = np.array([CATEGORIES[c][1] for c in names])[category]
    sigma = np.array([CATEGORIES[c][2] for c in names])[category]
    raw_price = np.maximum(np.exp(mu + sigma * rng.standard_normal(n)), 0.99)
    price = money_text(raw_price).astype(float)  # exactly the value written to the file

    adjective = rng.integers(0, len(ADJECTIVES), n)
    noun = rng.integers(0, 8, n)
    titles = [
        " ".join(
            part
            for part in (
                brand_names[b] if b >= 0 else "", ADJECTIVES[a], CATEGORIES[names[c]][0][k]
            )
            if part
        )
        for b, a, c, k in zip(brand, adjective, category, noun, strict=True)
    ]
    first_seen = [
        f"{start - datetime.timedelta(days=int(d))}T00:00:00Z"
        for d in rng.integers(1, 366, n)
    ]
    popularity = rng.lognormal(0.0, 0.6, n)

    band = np.zeros(n, dtype=np.int64)
    bands: dict[str, dict[str, list[float]]] = {}
    for c, cat in enumerate(names):
        in_cat = category == c
        cut_low, cut_mid = (round(float(q), 2) for q in np.quantile(price[in_cat], [1 / 3, 2 / 3]))
        # Upper bounds are inclusive: low is price <= cut_low, mid is cut_low < price <= cut_mid.
        band[in_cat] = np.select(
            [price[in_cat] <= cut_low, price[in_cat] <= cut_mid], [0, 1], 2
        )
        lo, hi = float(price[in_cat].min()), float(price[in_cat].max())
        bands[cat] = {"low": [lo, cut_low], "mid": [cut_low, cut_mid], "high": [cut_mid, hi]}

    frame = pd.DataFrame({
        "item_id": [f"SKU{i:05d}" for i in range(1, n + 1)],
        "title": titles,
        "category": [names[c] for c in category],
        "brand": [brand_names[b] if b >= 0 else "" for b in brand],
        "price": money_text(price),
        "first_seen": first_seen,
    })
    return Catalogue(frame, category, brand, band, price, popularity, bands)
