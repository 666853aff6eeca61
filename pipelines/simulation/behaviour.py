"""What a simulated shopper does with a list of recommendations: pure and seeded.

A position-based click model (Craswell et al. 2008; Joachims, Swaminathan & Schnabel 2017): the
shopper looks at the item at rank ``r`` with probability ``1 / r ** position_power`` and, having
looked, clicks it with a probability that grows with how well it matches their planted taste.
A click (a ``view`` event) may lead to ``add_to_cart`` and that to ``purchase``, both likelier for
a matching item, as in the generator's funnel. Shoppers differ in how much they click at all, as
they do in the shop, where each browses in proportion to a planted activity (lognormal: a few
heavy shoppers, many light ones): P(click | looked) is scaled by ``activity ** engagement``
(capped at 1), so a heavy shopper clicks more of whatever is shown. ``engagement=0`` makes every
shopper alike. Interleaving compares two models within each shopper, so this between-shopper
spread costs it nothing, while an A/B split has to average it out.

The match mirrors the synthetic shop (``pipelines.data.synthetic_shop``): its shoppers look
outside their preferred category only by popularity, and brand and price band tilt their choice
*within* that category. So an item outside the preferred category matches 0; inside it, the
category is worth ``category_weight`` and the planted brand and band add theirs (1 in all).

Every shown item consumes exactly three uniform draws, whatever happened before, so one seed
gives two lists the same dice at each rank: comparing two models' lists under a seed differs
only by what they show (common random numbers), which keeps small comparisons meaningful.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

PRICE_BANDS = ("low", "mid", "high")


@dataclass(frozen=True)
class Taste:
    """A shopper's planted preferences, as ``ground_truth.json`` holds them."""

    category: str
    brand: str  # "" when the category has no branded items
    price_band: str


@dataclass(frozen=True)
class Shopper:
    user_id: str  # the raw customer id, as ``POST /recommend`` and ``/feedback`` take it
    taste: Taste
    activity: float = 1.0  # planted, relative to the mean shopper's (1 where none is planted)


@dataclass(frozen=True)
class Product:
    """What the simulator knows of a catalogue item: what a taste can match, and its price."""

    item_id: str
    category: str
    brand: str
    price_band: str
    price: float | None


@dataclass(frozen=True)
class Behaviour:
    """The model's parameters. Defaults: a fully matching item at rank 1 is clicked about half
    the time and bought after a click about one time in four; an item outside the shopper's
    category, one time in fifty and one in a hundred."""

    position_power: float = 1.0  # examination at rank r: 1 / r ** position_power
    category_weight: float = 0.5  # match inside the preferred category, before brand and band
    brand_weight: float = 0.3
    band_weight: float = 0.2
    click_floor: float = 0.02  # P(click | examined) at match 0 ...
    click_ceiling: float = 0.55  # ... and at match 1; linear between
    cart_floor: float = 0.05  # P(add_to_cart | click)
    cart_ceiling: float = 0.45
    purchase_floor: float = 0.2  # P(purchase | add_to_cart)
    purchase_ceiling: float = 0.6
    engagement: float = 1.0  # P(click | examined) scales with activity ** engagement

    def __post_init__(self) -> None:
        weights = self.category_weight + self.brand_weight + self.band_weight
        if abs(weights - 1.0) > 1e-9:
            raise ValueError(f"category, brand and band weights must add up to 1, not {weights}")
        for name in ("click", "cart", "purchase"):
            low, high = getattr(self, f"{name}_floor"), getattr(self, f"{name}_ceiling")
            if not 0.0 <= low <= high <= 1.0:
                raise ValueError(f"need 0 <= {name}_floor <= {name}_ceiling <= 1")
        if self.position_power < 0 or self.engagement < 0:
            raise ValueError("position_power and engagement must be >= 0")


DEFAULT = Behaviour()


@dataclass(frozen=True)
class Event:
    """One feedback event to post: ``view`` (a click), ``add_to_cart`` or ``purchase``."""

    item_id: str
    event_type: str
    rank: int
    unit_price: float | None = None
    quantity: int = 1


def price_band(price: float | None, cuts: dict[str, Sequence[float]] | None) -> str:
    """The band of ``price`` in its category, from ``ground_truth.json``'s ``price_bands``
    entry (``{"low": [min, cut_low], "mid": [cut_low, cut_mid], "high": [...]}``, upper bounds
    inclusive, as the generator assigns them); "" when either is unknown."""
    if price is None or not cuts or "low" not in cuts or "mid" not in cuts:
        return ""
    if price <= float(cuts["low"][1]):
        return "low"
    return "mid" if price <= float(cuts["mid"][1]) else "high"


def match(taste: Taste, product: Product | None, behaviour: Behaviour = DEFAULT) -> float:
    """How well ``product`` fits ``taste``, 0 to 1 (0 for an item the catalogue lacks)."""
    if product is None or product.category != taste.category:
        return 0.0
    score = behaviour.category_weight
    if taste.brand and product.brand == taste.brand:
        score += behaviour.brand_weight
    if taste.price_band and product.price_band == taste.price_band:
        score += behaviour.band_weight
    return score


def examination(rank: int, behaviour: Behaviour = DEFAULT) -> float:
    """Probability that the shopper looks at the item shown at ``rank`` (1-based)."""
    if rank < 1:
        raise ValueError(f"ranks start at 1, not {rank}")
    return 1.0 / rank ** behaviour.position_power


def _between(low: float, high: float, fit: float) -> float:
    return low + (high - low) * fit


def click_probability(taste: Taste, product: Product | None, rank: int,
                      behaviour: Behaviour = DEFAULT, activity: float = 1.0) -> float:
    """P(view event) for ``product`` shown at ``rank`` to a shopper of ``activity``: examined,
    then attractive enough."""
    if activity <= 0:
        raise ValueError(f"activity must be > 0, not {activity}")
    fit = match(taste, product, behaviour)
    attracted = _between(behaviour.click_floor, behaviour.click_ceiling, fit)
    return examination(rank, behaviour) * min(1.0, attracted * activity ** behaviour.engagement)


def react(taste: Taste, shown: Sequence[tuple[str, Product | None]], rng: random.Random,
          behaviour: Behaviour = DEFAULT, activity: float = 1.0) -> list[Event]:
    """The events one visit of a shopper of ``activity`` produces for a list shown in order:
    ``(item_id, product or None when the catalogue does not know it)`` per rank. Three draws
    per shown item, always."""
    events: list[Event] = []
    for rank, (item_id, product) in enumerate(shown, start=1):
        u_click, u_cart, u_buy = rng.random(), rng.random(), rng.random()
        fit = match(taste, product, behaviour)
        if u_click >= click_probability(taste, product, rank, behaviour, activity):
            continue
        price = product.price if product is not None else None
        events.append(Event(item_id, "view", rank))
        if u_cart >= _between(behaviour.cart_floor, behaviour.cart_ceiling, fit):
            continue
        events.append(Event(item_id, "add_to_cart", rank, price))
        if u_buy < _between(behaviour.purchase_floor, behaviour.purchase_ceiling, fit):
            events.append(Event(item_id, "purchase", rank, price))
    return events
