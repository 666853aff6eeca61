"""The online read-out of a canary: what shoppers did after each model's answers, and the verdict.

Per model version: impressions (answers shown), outcomes per type joined to those answers
(``view`` is a click on a shown item, ``add_to_cart``, ``purchase``), the rate of each per
impression and revenue per impression where purchases carry a price, each with a 95 % interval
over shoppers (``contracts.online_stats``). Then the difference that decides the canary, for the
outcome ``rollout_outcome``:

- ``split``: shoppers are routed to one model by a hash of their pseudonym, so the two groups
  are independent; the difference is the candidate's rate minus the stable model's.
- ``interleave``: each shopper of the canary share sees one team-draft list from both models,
  and each outcome is credited to the model that placed the item; the difference is the
  candidate's share of the credited outcomes minus the stable model's (``2 share - 1``), paired
  within each shopper.

The endpoint keeps one ``Readout`` per canary and feeds it answer by answer and outcome by
outcome; the offline read-out (``pipelines.steps.readout``) feeds one from the traffic and
outcome logs. Both call ``summary``, so both say the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from contracts.online_stats import (
    Estimate,
    Moments,
    at_least,
    decide,
    difference,
    sequence,
    wilson,
)

RATES: tuple[str, ...] = ("view", "add_to_cart", "purchase")  # outcomes with a rate
REVENUE = "revenue"
_METRICS = (*RATES, REVENUE)  # columns 1.. of a shopper's sums; column 0 is impressions
SPLIT, INTERLEAVE = "split", "interleave"
STABLE, CANDIDATE = 0, 1  # interleaving's teams: which model placed an item


class Arm:
    """One model version's per-shopper impressions, outcomes and revenue in one read-out."""

    def __init__(self, version: str, role: str) -> None:
        self.version, self.role = version, role
        self.sums: dict[str, list[float]] = {}
        self.moments = {name: Moments() for name in _METRICS}
        self.priced = 0  # purchases that carried a price

    def add(self, shopper: str, column: int, amount: float) -> None:
        """Add ``amount`` to one shopper's column (0: impressions; else ``_METRICS``)."""
        row = self.sums.get(shopper)
        if row is None:
            row = self.sums[shopper] = [0.0] * (len(_METRICS) + 1)
            row[column] += amount
            for j, name in enumerate(_METRICS, start=1):
                self.moments[name].change(None, (row[0], row[j]))
            return
        before = list(row)
        row[column] += amount
        for j, name in enumerate(_METRICS, start=1):
            if column in (0, j):
                self.moments[name].change((before[0], before[j]), (row[0], row[j]))

    def count(self, outcome: str) -> int:
        return int(self.moments[outcome].sy)

    def to_json(self) -> dict[str, Any]:
        revenue = self.moments[REVENUE].ratio() if self.priced else None
        return {"version": self.version, "role": self.role, "shoppers": len(self.sums),
                "impressions": int(self.moments[RATES[0]].sx),
                "outcomes": {name: self.count(name) for name in RATES},
                "rates": {name: self.moments[name].ratio().to_json() for name in RATES},
                "revenue_per_impression": revenue.to_json() if revenue else None}


class Readout:
    """Impressions and outcomes of a stable model and a candidate within one canary."""

    def __init__(self, stable: str, candidate: str, mode: str = SPLIT) -> None:
        if mode not in (SPLIT, INTERLEAVE):
            raise ValueError(f"unknown canary mode {mode!r}")
        self.mode = mode
        self.arms = (Arm(stable, "stable"), Arm(candidate, "canary"))
        self.outcomes = 0
        # Interleaving: per shopper and outcome, credits (stable, candidate), and the share's sums.
        self._credits: dict[str, dict[str, list[float]]] = {}
        self._share = {name: Moments() for name in RATES}

    def arm(self, version: str) -> Arm | None:
        return next((a for a in self.arms if a.version == version), None)

    def impression(self, shopper: str, versions: Iterable[str]) -> None:
        """One answer shown to ``shopper``, placed by these versions (both when interleaved)."""
        for version in set(versions):
            arm = self.arm(version)
            if arm is not None:
                arm.add(shopper, 0, 1.0)
        if self.mode == INTERLEAVE and shopper not in self._credits:
            self._credits[shopper] = {name: [0.0, 0.0] for name in RATES}
            for name in RATES:
                self._share[name].change(None, (0.0, 0.0))

    def outcome(self, shopper: str, version: str, event_type: str,
                revenue: float | None = None) -> bool:
        """One outcome credited to ``version``; False when it counts for nothing here (another
        version, or an event type without a rate, such as a return)."""
        arm = self.arm(version)
        if arm is None or event_type not in RATES:
            return False
        arm.add(shopper, 1 + _METRICS.index(event_type), 1.0)
        if event_type == "purchase" and revenue is not None:
            arm.priced += 1
            arm.add(shopper, 1 + _METRICS.index(REVENUE), float(revenue))
        self.outcomes += 1
        credits = self._credits.get(shopper) if self.mode == INTERLEAVE else None
        if credits is not None:
            pair = credits[event_type]
            before = (pair[0] + pair[1], pair[1])
            pair[self.arms.index(arm)] += 1.0
            self._share[event_type].change(before, (pair[0] + pair[1], pair[1]))
        return True

    def share(self, outcome: str) -> Estimate:
        """Interleaving: the candidate's share of the credited ``outcome``s, its interval over
        shoppers never narrower than the Wilson interval of the pooled credits. While every
        shopper's credits fall to one side (a few outcomes, early in a canary) the interval over
        shoppers has no width at all, and a single outcome would pass or roll back the canary."""
        moments = self._share[outcome]
        return at_least(moments.ratio(), wilson(moments.sy, moments.sx))

    def verdict(self, outcome: str, min_shoppers: int, margin: float) -> tuple[Estimate, int,
                                                                            str, str]:
        """(difference, shoppers, decision, reason) for the deciding ``outcome``."""
        stable, candidate = self.arms
        if self.mode == SPLIT:
            diff = difference(candidate.moments[outcome].ratio(), stable.moments[outcome].ratio())
            shoppers, what = min(len(stable.sums), len(candidate.sums)), f"{outcome} rate " \
                "difference"
        else:
            diff = self.share(outcome).scaled(2.0, -1.0)
            shoppers, what = len(self._credits), f"{outcome} share difference"
        found = stable.count(outcome) + candidate.count(outcome)
        decision, reason = decide(diff, shoppers, found, min_shoppers, margin, what,
                                  observed=self.observed())
        return diff, shoppers, decision, reason

    def observed(self) -> int:
        """Shoppers the difference rests on, what its confidence sequence counts: both groups
        of a split (each shopper is one draw of the difference's estimator), every interleaved
        shopper."""
        if self.mode == SPLIT:
            return sum(len(arm.sums) for arm in self.arms)
        return len(self._credits)

    def summary(self, outcome: str, min_shoppers: int, margin: float) -> dict[str, Any]:
        """Both arms' figures, the deciding difference and the decision (pass, roll_back, wait)."""
        diff, shoppers, decision, reason = self.verdict(outcome, min_shoppers, margin)
        share = self.share(outcome).to_json() if self.mode == INTERLEAVE else None
        return {"mode": self.mode, "outcome": outcome, "margin": margin,
                "min_shoppers": min_shoppers, "shoppers": shoppers,
                "stable": self.arms[0].to_json(), "candidate": self.arms[1].to_json(),
                "difference": diff.to_json(),
                "sequence": sequence(diff, self.observed()).to_json(), "candidate_share": share,
                "decision": decision, "reason": reason}
