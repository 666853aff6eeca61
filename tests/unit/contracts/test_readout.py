"""The canary read-out: impressions and outcomes per model, the split and interleaved verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from contracts.online_stats import moments_of
from contracts.readout import INTERLEAVE, SPLIT, Readout


def _split(clicks: dict[str, tuple[int, float]], shoppers: int = 60) -> Readout:
    """Each version's shoppers see 10 answers and add to cart with the given share of them."""
    readout = Readout("1", "2", SPLIT)
    for version, (first, share) in clicks.items():
        for s in range(first, first + shoppers):
            shopper = f"u_{s:016x}"
            for i in range(10):
                readout.impression(shopper, [version])
                if (i + s) % 10 < share * 10:
                    readout.outcome(shopper, version, "add_to_cart")
    return readout


def test_rates_per_impression_with_intervals_and_revenue_where_priced() -> None:
    readout = Readout("1", "2", SPLIT)
    for s, shopper in enumerate(("u_a", "u_b", "u_c")):
        for _ in range(4):
            readout.impression(shopper, ["1"])
        readout.outcome(shopper, "1", "view")
        readout.outcome(shopper, "1", "purchase", revenue=10.0 * (s + 1))
    assert not readout.outcome("u_a", "3", "view"), "another version counts for nothing"
    assert not readout.outcome("u_a", "1", "return"), "a return has no rate"
    stable = readout.summary("view", 2, 0.0)["stable"]
    assert stable["impressions"] == 12 and stable["shoppers"] == 3
    assert stable["outcomes"] == {"view": 3, "add_to_cart": 0, "purchase": 3}
    assert stable["rates"]["view"]["estimate"] == 0.25
    assert stable["rates"]["view"]["low"] == stable["rates"]["view"]["high"] == 0.25, \
        "every shopper the same: no spread"
    revenue = stable["revenue_per_impression"]
    assert revenue["estimate"] == 60 / 12
    expected = moments_of([(4.0, 10.0), (4.0, 20.0), (4.0, 30.0)]).ratio()
    assert math.isclose(revenue["low"], expected.low)
    assert readout.summary("view", 2, 0.0)["candidate"]["revenue_per_impression"] is None


def test_a_split_canary_clearly_worse_is_rolled_back_and_clearly_better_passes() -> None:
    worse = _split({"1": (0, 0.5), "2": (1000, 0.1)}).summary("add_to_cart", 50, -0.01)
    assert worse["decision"] == "roll_back", worse["reason"]
    assert math.isclose(worse["difference"]["estimate"], -0.4)
    assert worse["difference"]["high"] < -0.01 and worse["shoppers"] == 60
    assert worse["reason"].startswith("add_to_cart rate difference -0.4000")
    better = _split({"1": (0, 0.1), "2": (1000, 0.5)}).summary("add_to_cart", 50, -0.01)
    assert better["decision"] == "pass" and better["difference"]["low"] > -0.01


def test_too_few_shoppers_wait_whatever_the_figures() -> None:
    found = _split({"1": (0, 0.5), "2": (1000, 0.1)}, shoppers=20).summary("add_to_cart", 50, 0)
    assert found["decision"] == "wait" and found["reason"].startswith("20 of the 50 shoppers")


def test_interleaving_credits_each_outcome_to_its_model_and_pairs_within_shoppers() -> None:
    readout = Readout("1", "2", INTERLEAVE)
    rng = np.random.default_rng(0)
    for s in range(80):
        shopper = f"u_{s:016x}"
        for _ in range(5):
            readout.impression(shopper, ["1", "2", "1"])  # one list, both models in it
            for _ in range(rng.binomial(3, 0.5)):
                readout.outcome(shopper, "2" if rng.random() < 0.8 else "1", "view")
    found = readout.summary("view", 50, 0.0)
    assert found["stable"]["impressions"] == found["candidate"]["impressions"] == 400
    credited = found["candidate"]["outcomes"]["view"] + found["stable"]["outcomes"]["view"]
    share = found["candidate_share"]
    assert math.isclose(share["estimate"], found["candidate"]["outcomes"]["view"] / credited)
    assert share["low"] < 0.8 < share["high"]
    assert math.isclose(found["difference"]["estimate"], 2 * share["estimate"] - 1)
    assert found["decision"] == "pass" and found["shoppers"] == 80
    assert "view share difference" in found["reason"]


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="canary mode"):
        Readout("1", "2", "abtest")


def test_one_sided_interleaved_credits_from_a_handful_of_shoppers_decide_nothing() -> None:
    """While every credited outcome went to one model, the interval over shoppers has no width
    (each shopper's share is exactly the pooled one); the Wilson interval of the pooled credits
    still has one, so one add to cart among ten interleaved shoppers is no verdict, thirty are."""
    readout = Readout("1", "2", INTERLEAVE)
    for s in range(10):
        readout.impression(f"u_{s:016x}", ["1", "2"])
    readout.outcome("u_0000000000000000", "2", "add_to_cart")
    found = readout.summary("add_to_cart", 10, -0.005)
    assert found["candidate_share"]["estimate"] == 1.0
    assert found["candidate_share"]["low"] < 0.25 and found["decision"] == "wait", found
    for s in range(1, 30):
        readout.impression(f"u_{s:016x}", ["1", "2"])
        readout.outcome(f"u_{s:016x}", "2", "add_to_cart")
    found = readout.summary("add_to_cart", 10, -0.005)
    assert found["decision"] == "pass" and 0.85 < found["candidate_share"]["low"] < 0.9, found
