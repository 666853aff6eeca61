"""The shopper's reaction model: position bias, taste match, the funnel, seeds, and that a list
serving the planted taste earns measurably more clicks and purchases than a random one."""

from __future__ import annotations

import random

import pytest

from pipelines.simulation.behaviour import (
    DEFAULT,
    Behaviour,
    Product,
    Taste,
    click_probability,
    examination,
    match,
    price_band,
    react,
)

TASTE = Taste("kitchenware", "Nordvik", "mid")
CATEGORIES = ("kitchenware", "books", "toys", "garden")
BRANDS = ("Nordvik", "Hearthstone", "Bramble", "")


def _catalogue() -> list[Product]:
    rng = random.Random(0)
    return [Product(f"SKU{i:03d}", CATEGORIES[i % 4], rng.choice(BRANDS),
                    rng.choice(("low", "mid", "high")), round(rng.uniform(5, 50), 2))
            for i in range(200)]


def _totals(lists: list[list[Product]], seed: int = 0) -> dict[str, int]:
    counts = {"view": 0, "add_to_cart": 0, "purchase": 0}
    for visit, shown in enumerate(lists):
        rng = random.Random(f"{seed}/{visit}")
        for event in react(TASTE, [(p.item_id, p) for p in shown], rng):
            counts[event.event_type] += 1
    return counts


def test_match_counts_brand_and_band_only_inside_the_planted_category() -> None:
    full = Product("a", "kitchenware", "Nordvik", "mid", 10.0)
    assert match(TASTE, full) == pytest.approx(1.0)
    assert match(TASTE, Product("b", "kitchenware", "Other", "high", 1.0)) == 0.5
    assert match(TASTE, Product("c", "kitchenware", "Other", "mid", 1.0)) == pytest.approx(0.7)
    assert match(TASTE, Product("d", "home-decor", "Nordvik", "mid", 1.0)) == 0.0
    assert match(TASTE, None) == 0.0
    assert match(Taste("books", "", "low"), Product("e", "books", "", "low", 1.0)) == \
        pytest.approx(0.7), "an empty planted brand matches no item's missing brand"


def test_position_bias_falls_with_rank() -> None:
    item = Product("a", "kitchenware", "Nordvik", "mid", 10.0)
    assert examination(1) == 1.0
    assert [examination(r) for r in (1, 2, 10)] == pytest.approx([1, 0.5, 0.1])
    assert click_probability(TASTE, item, 1) == pytest.approx(10 * click_probability(TASTE, item,
                                                                                     10))
    flat = Behaviour(position_power=0.0)
    assert click_probability(TASTE, item, 1, flat) == click_probability(TASTE, item, 10, flat)
    with pytest.raises(ValueError):
        examination(0)


def test_price_band_from_the_ground_truths_cuts() -> None:
    cuts = {"low": [5.0, 12.5], "mid": [12.5, 20.0], "high": [20.0, 90.0]}
    assert [price_band(p, cuts) for p in (5.0, 12.5, 12.51, 20.0, 20.01)] == \
        ["low", "low", "mid", "mid", "high"]
    assert price_band(None, cuts) == "" and price_band(3.0, None) == ""


def test_events_follow_the_funnel_with_the_catalogue_price() -> None:
    shown = [(p.item_id, p) for p in _catalogue()[:10]]
    for seed in range(300):
        events = react(TASTE, shown, random.Random(seed))
        for i, event in enumerate(events):
            if event.event_type == "add_to_cart":
                assert events[i - 1].event_type == "view"
                assert events[i - 1].item_id == event.item_id
            if event.event_type == "purchase":
                assert events[i - 1].event_type == "add_to_cart"
            if event.event_type != "view":
                assert event.unit_price == dict(shown)[event.item_id].price
        assert [e.rank for e in events] == sorted(e.rank for e in events)


def test_same_seed_same_events_and_unknown_items_are_rarely_clicked() -> None:
    shown = [(p.item_id, p) for p in _catalogue()[:10]]
    assert react(TASTE, shown, random.Random(5)) == react(TASTE, shown, random.Random(5))
    unknown = [(f"NEW{i}", None) for i in range(10)]
    clicks = sum(len(react(TASTE, unknown, random.Random(s))) for s in range(500))
    # P(click) = 0.02 / rank: about 0.06 clicks per visit, with few carts after.
    assert clicks < 0.15 * 500


def test_a_list_serving_the_planted_taste_earns_more_than_a_random_or_shuffled_one() -> None:
    catalogue = _catalogue()
    best = sorted(catalogue, key=lambda p: -match(TASTE, p))[:10]
    rng = random.Random(1)
    random_lists = [rng.sample(catalogue, 10) for _ in range(2000)]
    shuffled = [rng.sample(best, 10) for _ in range(2000)]  # the right items, the wrong order

    good = _totals([best] * 2000)
    poor = _totals(random_lists)
    unordered = _totals(shuffled)

    assert good["view"] > 3 * poor["view"]
    assert good["purchase"] > 5 * max(poor["purchase"], 1)
    assert good["view"] >= unordered["view"], "best first: position bias rewards the order"
    # The expectation agrees with the draws (within 5 %).
    expected = 2000 * sum(click_probability(TASTE, p, r) for r, p in enumerate(best, start=1))
    assert good["view"] == pytest.approx(expected, rel=0.05)


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="add up to 1"):
        Behaviour(brand_weight=0.5)
    with pytest.raises(ValueError, match="click_floor"):
        Behaviour(click_floor=0.9, click_ceiling=0.1)
    assert DEFAULT.click_ceiling > DEFAULT.click_floor


def test_a_heavier_shopper_clicks_more_of_the_same_list_and_engagement_0_makes_them_alike() -> None:
    item = Product("a", "kitchenware", "Nordvik", "mid", 10.0)
    outside = Product("b", "garden", "", "low", 3.0)
    light, heavy = 0.5, 2.0
    assert click_probability(TASTE, outside, 1, activity=heavy) == pytest.approx(
        4 * click_probability(TASTE, outside, 1, activity=light))
    assert click_probability(TASTE, item, 1, activity=10.0) == 1.0, "capped at certainty"
    alike = Behaviour(engagement=0.0)
    same = click_probability(TASTE, item, 2)
    assert click_probability(TASTE, item, 2, alike, activity=heavy) == same
    assert click_probability(TASTE, item, 2, alike, activity=light) == same
    shown = [(p.item_id, p) for p in _catalogue()[:10]]
    clicks = {a: sum(len(react(TASTE, shown, random.Random(s), activity=a)) for s in range(400))
              for a in (light, heavy)}
    assert clicks[heavy] > 2 * clicks[light]
    with pytest.raises(ValueError, match="activity"):
        click_probability(TASTE, item, 1, activity=0.0)
    with pytest.raises(ValueError, match="engagement"):
        Behaviour(engagement=-1.0)
