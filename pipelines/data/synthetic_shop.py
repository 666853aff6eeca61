"""Deterministic synthetic shop: catalogue, customers and daily event files with planted tastes.

The platform needs a data set whose "right answers" are known, so that training, evaluation and
the recommender's explanations can be checked end to end without real customer data. Every user
gets a planted preferred category, brand and price band and an activity level (how much they
browse, lognormal: a few heavy shoppers, many light ones; all written to ``ground_truth.json``)
and behaves accordingly; a view/cart/purchase/return funnel, weekday and evening seasonality and a
mild trend make the events look like a shop's export. With ``faults`` a few deliberately bad batches
are added so the demo can show quarantine working.

Everything is drawn from ``numpy.random.default_rng(seed)`` in a fixed order and written with
fixed formatting, so the same spec gives byte-identical files. The fault files use a separate
generator, so switching faults on does not change any of the clean files.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from contracts.tables import INBOX_EVENT_COLUMNS
from pipelines.data.synthetic_catalogue import (
    BRANDS,
    CATEGORIES,
    COUNTRIES,
    COUNTRY_WEIGHTS,
    ITEM_COLUMNS,
    PRICE_BANDS,
    Catalogue,
    make_catalogue,
)
from pipelines.data.synthetic_faults import (
    csv_text,
    money_text,
    remove_stale_faults,
    write_faults,
    write_text,
)

EVENT_TYPES: tuple[str, ...] = ("view", "add_to_cart", "purchase", "return")
USER_COLUMNS = ["customer_id", "country", "signup_date"]
EVENT_COLUMNS = list(INBOX_EVENT_COLUMNS)

# Behaviour knobs. Strong enough that preferences are recoverable from a few dozen events.
VIEWS_PER_USER_DAY = 4.0
WEEKDAY_FACTOR = (0.95, 0.93, 0.95, 1.0, 1.08, 1.3, 1.22)  # Monday .. Sunday
TREND_PER_DAY = 0.005
HOUR_WEIGHTS = np.array([
    0.5, 0.3, 0.2, 0.2, 0.2, 0.3, 0.6, 1.0, 1.3, 1.5, 1.6, 1.7,
    1.9, 1.8, 1.6, 1.6, 1.8, 2.2, 2.8, 3.3, 3.5, 3.2, 2.4, 1.2,
])
CATEGORY_SHARE = 0.75  # share of a user's views on their preferred category
# Split of those views by (preferred brand?, preferred price band?): brand 55%, band 65%.
CELL_SHARES = {(True, True): 0.40, (True, False): 0.15, (False, True): 0.25, (False, False): 0.20}
RETURN_RATE = 0.05
DAY_SECONDS = 86_400


@dataclass(frozen=True)
class ShopSpec:
    """What to generate; the whole output is a pure function of these fields."""

    days: int = 30
    seed: int = 7
    users: int = 500
    items: int = 400
    start: datetime.date = datetime.date(2026, 1, 1)
    faults: bool = False


@dataclass(frozen=True)
class GeneratedShop:
    """Where ``generate_shop`` wrote each file, so callers need not rebuild the layout."""

    out_dir: Path
    items_file: Path
    users_file: Path
    event_files: list[Path]  # one per day, sorted by date (the faulty replaced day included)
    ground_truth_file: Path
    fault_files: list[Path]  # files that are deliberately bad (empty unless faults)


@dataclass(frozen=True)
class _Users:
    frame: pd.DataFrame
    category: np.ndarray
    brand: np.ndarray  # -1 when the category has no branded items
    band: np.ndarray
    activity: np.ndarray


def generate_shop(out_dir: Path, spec: ShopSpec) -> GeneratedShop:
    """Write the synthetic shop under ``out_dir`` and return where each file went."""
    _validate(spec)
    out_dir = Path(out_dir)
    events_dir = out_dir / "events"
    events_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_faults(out_dir)

    rng = np.random.default_rng(spec.seed)
    catalogue = make_catalogue(rng, spec.items, spec.start)
    users = _make_users(rng, spec, catalogue)
    # One day more than asked for: it is only written, truncated, as a fault, but simulating it
    # always keeps the clean files independent of the faults flag.
    events = _simulate_events(rng, spec, catalogue, users, spec.days + 1)

    items_file = out_dir / "items.csv"
    users_file = out_dir / "users.csv"
    truth_file = out_dir / "ground_truth.json"
    write_text(items_file, csv_text(catalogue.frame[ITEM_COLUMNS]))
    write_text(users_file, csv_text(users.frame[USER_COLUMNS]))
    write_text(truth_file, _ground_truth(spec, catalogue, users))

    day_frames = _split_days(events, spec.days + 1)
    event_files = []
    for index in range(spec.days):
        path = events_dir / f"{_day(spec, index).isoformat()}.csv"
        write_text(path, csv_text(day_frames[index]))
        event_files.append(path)

    fault_files: list[Path] = []
    if spec.faults:
        fault_files = write_faults(out_dir, spec.seed, day_frames,
                                   [_day(spec, d) for d in range(spec.days + 1)])
    return GeneratedShop(
        out_dir=out_dir,
        items_file=items_file,
        users_file=users_file,
        event_files=event_files,
        ground_truth_file=truth_file,
        fault_files=fault_files,
    )


def _validate(spec: ShopSpec) -> None:
    if spec.days < 1 or spec.users < 1:
        raise ValueError("a shop needs at least one day and one user")
    if spec.items < len(CATEGORIES):
        raise ValueError(f"a shop needs at least {len(CATEGORIES)} items, one per category")


def _day(spec: ShopSpec, index: int) -> datetime.date:
    return spec.start + datetime.timedelta(days=index)


def _make_users(rng: np.random.Generator, spec: ShopSpec, catalogue: Catalogue) -> _Users:
    """Tastes are drawn only among brand/band pairs the preferred category actually stocks."""
    n = spec.users
    country = rng.choice(len(COUNTRIES), size=n, p=np.array(COUNTRY_WEIGHTS))
    signup = [spec.start - datetime.timedelta(days=int(d)) for d in rng.integers(1, 1096, n)]
    category = rng.integers(0, len(CATEGORIES), n)
    cells = [_taste_cells(catalogue, c) for c in range(len(CATEGORIES))]
    pick = [cells[c][int(p * len(cells[c]))] for c, p in zip(category, rng.random(n), strict=True)]
    brand = np.array([b for b, _ in pick], dtype=np.int64)
    band = np.array([p for _, p in pick], dtype=np.int64)
    activity = rng.lognormal(0.0, 0.9, n)
    frame = pd.DataFrame({
        "customer_id": [f"C{i:06d}" for i in range(1, n + 1)],
        "country": [COUNTRIES[c] for c in country],
        "signup_date": [d.isoformat() for d in signup],
    })
    return _Users(frame, category, brand, band, activity)


def _taste_cells(catalogue: Catalogue, category: int) -> list[tuple[int, int]]:
    """(brand, band) pairs with items in the category: a taste the catalogue can satisfy."""
    in_cat = catalogue.category == category
    branded = in_cat & (catalogue.brand >= 0)
    mask = branded if branded.any() else in_cat
    pairs = {
        (int(b), int(p)) for b, p in zip(catalogue.brand[mask], catalogue.band[mask], strict=True)
    }
    return sorted(pairs)


def _seconds_of_day(rng: np.random.Generator, size: int) -> np.ndarray:
    """Times of day following ``HOUR_WEIGHTS``: quiet at night, busiest in the evening."""
    hour = rng.choice(24, size=size, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    return hour * 3600 + rng.integers(0, 3600, size)


def _item_weights(catalogue: Catalogue, category: int, brand: int, band: int) -> np.ndarray:
    """One user's view distribution over the catalogue: mostly their category, tilted to taste.

    Within the category each brand x band cell gets a fixed share (by popularity inside it), not
    a per-item boost, so the planted brand and band win even when they have only a few items.
    """
    in_cat = catalogue.category == category
    weights = np.zeros(len(in_cat))
    total = 0.0
    for (is_brand, is_band), share in CELL_SHARES.items():
        cell = in_cat & ((catalogue.brand == brand) == is_brand) & (
            (catalogue.band == band) == is_band
        )
        if cell.any():
            weights[cell] = share * catalogue.popularity[cell] / catalogue.popularity[cell].sum()
            total += share
    weights *= CATEGORY_SHARE / total
    outside = catalogue.popularity * ~in_cat
    if outside.sum() == 0:
        return weights / weights.sum()
    return weights + (1 - CATEGORY_SHARE) * outside / outside.sum()


def _simulate_events(
    rng: np.random.Generator,
    spec: ShopSpec,
    catalogue: Catalogue,
    users: _Users,
    total_days: int,
) -> pd.DataFrame:
    """Views first, then carts, purchases and returns derived from them, all as arrays."""
    factor = np.array([
        WEEKDAY_FACTOR[_day(spec, d).weekday()] * (1 + TREND_PER_DAY * d)
        for d in range(total_days)
    ])
    # At least one view a day: a header-only file would be quarantined as empty.
    counts = np.maximum(rng.poisson(VIEWS_PER_USER_DAY * spec.users * factor), 1)
    n = int(counts.sum())
    v_day = np.repeat(np.arange(total_days), counts)
    v_sec = _seconds_of_day(rng, n)
    v_user = rng.choice(spec.users, size=n, p=users.activity / users.activity.sum())

    # Items are drawn per user (one call each), not per event.
    v_item = np.empty(n, dtype=np.int64)
    order = np.argsort(v_user, kind="stable")
    bounds = np.searchsorted(v_user[order], np.arange(spec.users + 1))
    for u in range(spec.users):
        rows = order[bounds[u] : bounds[u + 1]]
        if len(rows):
            p = _item_weights(catalogue, users.category[u], users.brand[u], users.band[u])
            v_item[rows] = rng.choice(spec.items, size=len(rows), p=p)

    # Funnel: matching items convert better, which sharpens the signal in carts and purchases.
    in_cat = catalogue.category[v_item] == users.category[v_user]
    brand_match = in_cat & (catalogue.brand[v_item] == users.brand[v_user])
    p_cart = 0.08 + 0.04 * in_cat + 0.04 * brand_match
    cart_sec = v_sec + 20 + rng.exponential(240.0, n).astype(np.int64)
    buy_sec = cart_sec + 30 + rng.exponential(600.0, n).astype(np.int64)
    direct_sec = v_sec + 30 + rng.exponential(300.0, n).astype(np.int64)
    quantity = np.minimum(rng.geometric(0.75, n), 5)
    u_cart, u_buy, u_direct = rng.random(n), rng.random(n), rng.random(n)
    cart = (u_cart < p_cart) & (cart_sec < DAY_SECONDS)
    bought = cart & (u_buy < 0.35) & (buy_sec < DAY_SECONDS)
    direct = ~cart & (u_direct < 0.005) & (direct_sec < DAY_SECONDS)

    p_day = np.concatenate([v_day[bought], v_day[direct]])
    p_sec = np.concatenate([buy_sec[bought], direct_sec[direct]])
    p_user = np.concatenate([v_user[bought], v_user[direct]])
    p_item = np.concatenate([v_item[bought], v_item[direct]])
    p_qty = np.concatenate([quantity[bought], np.ones(int(direct.sum()), dtype=np.int64)])
    p_order = _order_numbers(p_day, p_sec, p_user, spec.users)

    m = len(p_day)
    returned = rng.random(m) < RETURN_RATE
    r_day = p_day + rng.integers(1, 6, m)  # returned one to five days later
    r_sec = _seconds_of_day(rng, m)
    r_qty = 1 + (rng.random(m) * p_qty).astype(np.int64)
    keep = returned & (r_day < total_days)

    parts = [
        (v_day, v_sec, v_user, v_item, 0, np.ones(n, dtype=np.int64), -1),
        (v_day[cart], cart_sec[cart], v_user[cart], v_item[cart], 1, quantity[cart], -1),
        (p_day, p_sec, p_user, p_item, 2, p_qty, p_order),
        (r_day[keep], r_sec[keep], p_user[keep], p_item[keep], 3, r_qty[keep], p_order[keep]),
    ]
    day, sec, user, item, kind, qty, order_no = (
        np.concatenate([np.broadcast_to(np.asarray(part[i]), part[0].shape) for part in parts])
        for i in range(7)
    )
    order = np.lexsort((item, user, kind, sec, day))
    day, sec, user, item, kind, qty, order_no = (
        a[order] for a in (day, sec, user, item, kind, qty, order_no)
    )

    moment = np.datetime64(spec.start, "s") + (day * DAY_SECONDS + sec).astype("timedelta64[s]")
    events = pd.DataFrame({
        "event_id": np.char.mod("E%07d", np.arange(1, len(day) + 1)),
        "customer_id": users.frame["customer_id"].to_numpy()[user],
        "item_id": catalogue.frame["item_id"].to_numpy()[item],
        "event_type": np.array(EVENT_TYPES)[kind],
        "quantity": qty,
        "unit_price": money_text(catalogue.price[item]),
        "timestamp": np.char.add(np.datetime_as_string(moment, unit="s"), "Z"),
        "order_id": np.where(order_no >= 0, np.char.mod("O%06d", order_no), ""),
    })
    events["_day"] = day
    return events


def _order_numbers(day: np.ndarray, sec: np.ndarray, user: np.ndarray, n_users: int) -> np.ndarray:
    """A user's purchases on one day form one order; orders are numbered in time order."""
    if len(day) == 0:
        return np.zeros(0, dtype=np.int64)
    groups, group_of = np.unique(day * n_users + user, return_inverse=True)
    first = np.full(len(groups), DAY_SECONDS, dtype=np.int64)
    np.minimum.at(first, group_of, sec)
    rank = np.empty(len(groups), dtype=np.int64)
    rank[np.lexsort((groups % n_users, first, groups // n_users))] = np.arange(1, len(groups) + 1)
    return rank[group_of]


def _split_days(events: pd.DataFrame, total_days: int) -> list[pd.DataFrame]:
    bounds = np.searchsorted(events["_day"].to_numpy(), np.arange(total_days + 1))
    frame = events[EVENT_COLUMNS]
    return [frame.iloc[bounds[d] : bounds[d + 1]] for d in range(total_days)]


def _ground_truth(spec: ShopSpec, catalogue: Catalogue, users: _Users) -> str:
    brand_names = list(BRANDS)
    names = list(CATEGORIES)
    # Activity relative to the mean shopper's: how many views (clicks) a shopper makes, which
    # the simulator needs to click as often as the shopper browses here.
    relative = users.activity / users.activity.mean()
    prefs = {
        cid: {
            "category": names[c],
            "brand": brand_names[b] if b >= 0 else "",
            "price_band": PRICE_BANDS[p],
            "activity": round(float(a), 4),
        }
        for cid, c, b, p, a in zip(
            users.frame["customer_id"], users.category, users.brand, users.band, relative,
            strict=True,
        )
    }
    spec_dict = asdict(spec)
    spec_dict["start"] = spec.start.isoformat()
    truth = {"seed": spec.seed, "spec": spec_dict, "price_bands": catalogue.bands, "users": prefs}
    return json.dumps(truth, indent=2, ensure_ascii=False) + "\n"
