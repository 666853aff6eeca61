"""Rates over shoppers with 95 % intervals, kept as running sums so each outcome costs O(1).

A rate per impression (clicks per impression, revenue per impression, a model's share of the
outcomes credited in an interleaved list) is a ratio of per-shopper sums, R = Σy / Σx. Requests
of one shopper are not independent (the same person clicks, or does not, again and again), so
the interval is over shoppers: the delta method for a ratio estimator with shoppers as clusters,
se(R) = sqrt(Σ(y - R x)² / (n (n - 1))) / mean(x). The sums it needs (n, Σx, Σy, Σx², Σy², Σxy)
are updated in place when one shopper's x or y changes, so the endpoint can judge a canary on
every outcome without touching every shopper, and the offline read-out over the logs
(``pipelines.steps.readout``) gets the very same figures. Pure: serving and pipelines import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Z95 = 1.959964  # two-sided 95 % normal quantile
ALPHA = 0.05  # the decisions' error rate, over the whole canary however often it is looked at
SEQUENCE_TIGHTEST_AT = 500  # shoppers at which the confidence sequence is narrowest


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95 % interval; ``low``/``high`` are None with fewer than two shoppers
    (or no impressions), when no interval can be said."""

    value: float | None
    low: float | None
    high: float | None

    def to_json(self) -> dict[str, Any]:
        return {"estimate": self.value, "low": self.low, "high": self.high}

    def scaled(self, factor: float, shift: float = 0.0) -> Estimate:
        """``factor * x + shift`` of the figure and both bounds (``factor`` > 0)."""
        def move(v: float | None) -> float | None:
            return None if v is None else factor * v + shift
        return Estimate(move(self.value), move(self.low), move(self.high))


class Moments:
    """The running sums behind a ratio of per-shopper sums; ``change`` moves one shopper."""

    __slots__ = ("n", "sx", "sy", "sxx", "syy", "sxy")

    def __init__(self) -> None:
        self.n = 0
        self.sx = self.sy = self.sxx = self.syy = self.sxy = 0.0

    def change(self, before: tuple[float, float] | None, after: tuple[float, float]) -> None:
        """One shopper's (x, y) went from ``before`` (None: a new shopper) to ``after``."""
        x0, y0 = before if before is not None else (0.0, 0.0)
        x1, y1 = after
        self.n += before is None
        self.sx += x1 - x0
        self.sy += y1 - y0
        self.sxx += x1 * x1 - x0 * x0
        self.syy += y1 * y1 - y0 * y0
        self.sxy += x1 * y1 - x0 * y0

    def ratio(self) -> Estimate:
        """Σy / Σx with its delta-method 95 % interval over shoppers."""
        if self.n == 0 or self.sx <= 0:
            return Estimate(None, None, None)
        rate = self.sy / self.sx
        if self.n < 2:
            return Estimate(rate, None, None)
        residual = max(self.syy - 2 * rate * self.sxy + rate * rate * self.sxx, 0.0)
        se = math.sqrt(residual / (self.n * (self.n - 1))) / (self.sx / self.n)
        return Estimate(rate, rate - Z95 * se, rate + Z95 * se)


def wilson(successes: float, trials: float) -> tuple[float, float] | None:
    """The 95 % Wilson score interval of a proportion (None without trials): unlike a normal
    interval it keeps a width when every trial went one way (1 of 1: 0.21 to 1)."""
    if trials <= 0:
        return None
    p, z2 = successes / trials, Z95 * Z95
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = Z95 * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return centre - half, centre + half


def at_least(found: Estimate, bounds: tuple[float, float] | None) -> Estimate:
    """``found`` with its interval widened to cover ``bounds`` where narrower, never narrowed."""
    if bounds is None or found.low is None or found.high is None:
        return found
    return Estimate(found.value, min(found.low, bounds[0]), max(found.high, bounds[1]))


def moments_of(pairs: list[tuple[float, float]]) -> Moments:
    """The sums of (x, y) per shopper, one pair per shopper (the offline read-out's way in)."""
    found = Moments()
    for pair in pairs:
        found.change(None, pair)
    return found


def difference(candidate: Estimate, stable: Estimate) -> Estimate:
    """Candidate minus stable for independent groups of shoppers (the split canary)."""
    if candidate.value is None or stable.value is None:
        return Estimate(None, None, None)
    value = candidate.value - stable.value
    if None in (candidate.low, candidate.high, stable.low, stable.high):
        return Estimate(value, None, None)
    se = math.hypot((candidate.high - candidate.low) / (2 * Z95),
                    (stable.high - stable.low) / (2 * Z95))
    return Estimate(value, value - Z95 * se, value + Z95 * se)


def sequence_factor(shoppers: int, alpha: float = ALPHA,
                    tightest_at: int = SEQUENCE_TIGHTEST_AT) -> float:
    """How many standard errors a two-sided ``1 - alpha`` asymptotic confidence sequence spans
    after ``shoppers`` observations (Waudby-Smith, Arnold, Wu & Ramdas, "Time-uniform central
    limit theory and asymptotic confidence sequences", Ann. Statist. 2024, Thm 2.2, with its
    ρ chosen so the sequence is tightest at ``tightest_at``).

    The endpoint judges a canary after every outcome. A fixed 95 % interval looked at that
    often is crossed by chance far more than 5 % of the time (a replay of the logs passed a
    worse canary at 35 shoppers a side); a confidence sequence covers the truth at every
    shopper count at once, so a verdict may be taken the moment it is crossed. It is wider than
    the fixed interval: about 3.0 standard errors at 500 shoppers, 3.4 at 100, 5.1 at 20."""
    c = -2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)
    t = max(shoppers, 1) * c / tightest_at  # t ρ²
    return math.sqrt(2 * (t + 1) / t * math.log(math.sqrt(t + 1) / alpha))


def sequence(diff: Estimate, shoppers: int) -> Estimate:
    """``diff``'s 95 % interval widened into the confidence sequence at ``shoppers`` (each side
    scaled alike, so an interval kept asymmetric by a Wilson floor stays so)."""
    if diff.value is None or diff.low is None or diff.high is None:
        return diff
    scale = sequence_factor(shoppers) / Z95
    return Estimate(diff.value, diff.value - (diff.value - diff.low) * scale,
                    diff.value + (diff.high - diff.value) * scale)


PASS, ROLL_BACK, WAIT = "pass", "roll_back", "wait"


def decide(diff: Estimate, shoppers: int, outcomes: int, min_shoppers: int,
           margin: float, what: str, observed: int | None = None) -> tuple[str, str]:
    """(verdict, reason): pass when the difference's confidence sequence (``sequence``, over
    ``observed`` shoppers, default ``shoppers``) lies above ``margin``, roll back when it lies
    below it, else wait: too few shoppers, no outcome yet, or a sequence that still straddles
    the margin. ``shoppers`` is what ``min_shoppers`` counts; ``what`` names the difference."""
    if shoppers < min_shoppers:
        return WAIT, f"{shoppers} of the {min_shoppers} shoppers needed to judge {what}"
    if outcomes == 0 or diff.low is None or diff.high is None:
        return WAIT, f"no {what} to judge yet over {shoppers} shoppers"
    bounds = sequence(diff, shoppers if observed is None else observed)
    figure = (f"{what} {diff.value:+.4f} (95 % confidence sequence {bounds.low:+.4f} to "
              f"{bounds.high:+.4f}, {shoppers} shoppers)")
    if bounds.low > margin:
        return PASS, f"{figure} is above the margin {margin:+.4f}"
    if bounds.high < margin:
        return ROLL_BACK, f"{figure} is below the margin {margin:+.4f}"
    return WAIT, f"{figure} still includes the margin {margin:+.4f}"
