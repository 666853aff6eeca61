"""A new champion on trial beside the stable model: routing, per-model health, automatic rollback.

Shadow: the stable model answers every request; for a share of them the candidate answers too,
after the response and off the request path (its items are logged, never returned). Canary: a
share of shoppers, chosen by a hash of their pseudonym (so a shopper keeps getting the same
model), get the candidate's answer; when the candidate fails or is slower than the timeout they
get the stable model's answer instead, so clients never see its failures. Both stages count each
model's calls, errors and latencies; once the candidate has enough calls, the first breach of a
threshold (error rate, p95 or p99 latency against the stable model's) calls ``on_breach`` once.

A canary also reads out what shoppers did (``contracts.readout``): each answer routed as the
hash says counts as an impression of its model, each outcome joined to it
(``serving.attribution``) for the model credited with the item, and the candidate is rolled back
through the same ``on_breach`` once its outcome difference's upper bound is below the margin.
Under ``canary_mode=interleave`` the canary share of shoppers get one team-draft list
(``serving.interleaving``) of both models' answers instead of the candidate's alone.
Everything runs on the event loop, so the counters need no lock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from contracts.online_stats import ROLL_BACK
from contracts.readout import INTERLEAVE, SPLIT, Readout
from contracts.registry import CANARY, SHADOW
from contracts.settings import Settings
from serving import metrics
from serving.interleaving import team_draft

if TYPE_CHECKING:  # the engine (TensorFlow) loads with the first model, not with this module
    from models.queries import Filters
    from serving.engine import Engine, Page

log = logging.getLogger(__name__)
shadow_log = logging.getLogger("shoprec.serving.shadow")

WINDOW = 1024  # latest latencies kept per model: recent enough to react, enough for a p99
JUDGE_EVERY = 8  # successful candidate calls between latency checks (a failure is judged at once)
_HASH_RANGE = 2**32


class ModelHealth:
    """One model's calls, failures and recent latencies within a rollout stage."""

    def __init__(self, engine: Engine, role: str) -> None:
        self.engine, self.role = engine, role
        self.calls = self.errors = 0
        self.latencies: deque[float] = deque(maxlen=WINDOW)
        version = str(engine.info.version)
        self._ok = metrics.ROLLOUT_REQUESTS.labels(version, role, "ok")
        self._failed = metrics.ROLLOUT_REQUESTS.labels(version, role, "error")
        self._seconds = metrics.ROLLOUT_SECONDS.labels(version, role)

    def record(self, seconds: float | None) -> None:
        """One call: its latency, or None when it failed or timed out."""
        self.calls += 1
        if seconds is None:
            self.errors += 1
            self._failed.inc()
            return
        self.latencies.append(seconds)
        self._ok.inc()
        self._seconds.observe(seconds)

    def percentiles(self) -> tuple[float, float, float] | None:
        """p50, p95 and p99 latency in seconds, None before the first answer."""
        if not self.latencies:
            return None
        p50, p95, p99 = np.percentile(tuple(self.latencies), (50, 95, 99))  # one GIL step
        return float(p50), float(p95), float(p99)

    def to_json(self) -> dict[str, Any]:
        info, found = self.engine.info, self.percentiles()
        p50, p95, p99 = (round(p * 1e3, 3) for p in found) if found else (None, None, None)
        return {"version": info.version, "run_id": info.run_id, "role": self.role,
                "requests": self.calls, "errors": self.errors,
                "error_rate": self.errors / self.calls if self.calls else None,
                "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


class Served(NamedTuple):
    """One answer during a rollout: the page, the engine named as its model, the version
    credited with each item when interleaved, and whether it counts in the canary's read-out."""

    page: Page
    engine: Engine
    credited: tuple[str, ...] | None = None
    in_readout: bool = False


class Rollout:
    """The stable model and a candidate in one stage (``shadow`` or ``canary``)."""

    def __init__(self, stable: Engine, candidate: Engine, stage: str, settings: Settings,
                 on_breach: Callable[[Rollout, str], None],
                 since: datetime | None = None) -> None:
        if stage not in (SHADOW, CANARY):
            raise ValueError(f"unknown rollout stage {stage!r}")
        self.stable, self.candidate, self.stage, self.settings = stable, candidate, stage, settings
        self.share = settings.rollout.canary_share if stage == CANARY else \
            settings.rollout.shadow_share
        self.started_at = since or datetime.now(UTC)  # the registry's, for a restarted endpoint
        self.mode = settings.rollout.canary_mode if stage == CANARY else SPLIT
        self.readout = Readout(str(stable.info.version), str(candidate.info.version),
                               self.mode) if stage == CANARY else None
        self._shown = 0
        self.health = ModelHealth(stable, "stable"), ModelHealth(candidate, stage)
        self.ended = False
        self._on_breach = on_breach
        self._cutoff = int(self.share * _HASH_RANGE)
        self._timeout = settings.rollout.timeout_ms / 1e3
        self._shadows: set[asyncio.Task] = set()  # strong references until each call ends
        metrics.ROLLOUT_SHARE.labels(stage).set(self.share)

    def serves_candidate(self, user: str) -> bool:
        """Canary routing: the same shopper (pseudonym) always lands on the same side."""
        return self.stage == CANARY and zlib.crc32(user.encode()) < self._cutoff

    async def recommend(self, user: str, k: int, explain: bool, exclude_purchased: bool,
                        filters: Filters, request_id: str = "") -> Served:
        """The answer for a pseudonymised shopper; ``request_id`` seeds an interleaved draw,
        so the same request id always gives the same list."""
        query = (user, k, explain, exclude_purchased, filters)
        routed = self.serves_candidate(user)
        if routed and self.mode == INTERLEAVE:
            return await self._interleaved(query, request_id)
        if routed:
            page = await self._candidate(query)
            if page is not None:
                return Served(page, self.candidate, None, self.readout is not None)
        page = await self._stable(query)
        if self.stage == SHADOW and random.random() < self.share:
            task = asyncio.get_running_loop().create_task(self._shadow(query, page))
            self._shadows.add(task)
            task.add_done_callback(self._shadows.discard)
        # A canary shopper's fallback to stable counts for neither side, so the groups stay
        # apart; interleaving reads out its mixed lists alone.
        return Served(page, self.stable, None,
                      self.readout is not None and not routed and self.mode == SPLIT)

    def shown(self, user: str, served: Served) -> None:
        """An answer in the read-out reached the shopper: one impression of each model in it."""
        if self.readout is None or not served.in_readout:
            return
        self.readout.impression(user, served.credited or (str(served.engine.info.version),))
        self._shown += 1
        if self._shown % JUDGE_EVERY == 0:
            self.judge_outcomes()

    def outcome(self, user: str, version: str | None, event_type: str,
                revenue: float | None) -> None:
        """An outcome joined to an answer in this read-out, credited to ``version``."""
        if self.readout is not None and self.readout.outcome(user, str(version), event_type,
                                                             revenue):
            self.judge_outcomes()

    def summary(self) -> dict[str, Any] | None:
        """The canary's outcome read-out (None in shadow), also set on the Prometheus gauges."""
        if self.readout is None:
            return None
        rules = self.settings.rollout
        found = self.readout.summary(rules.outcome, rules.min_shoppers, rules.outcome_margin)
        metrics.readout(found)
        return found

    def end(self) -> None:
        """Replaced or rolled back: judge nothing more, and say so on /metrics."""
        self.ended = True
        metrics.ROLLOUT_SHARE.labels(self.stage).set(0.0)

    def breach(self) -> str | None:
        """Which threshold the candidate breaks, if any, once it has enough calls."""
        settings, (stable, candidate) = self.settings, self.health
        if candidate.calls < settings.rollout.min_requests:
            return None
        rate = candidate.errors / candidate.calls
        if rate > settings.rollout.max_error_rate:
            return (f"error rate {rate:.1%} over {candidate.calls} calls exceeds "
                    f"{settings.rollout.max_error_rate:.1%}")
        mine, theirs = candidate.percentiles(), stable.percentiles()
        if mine is None or theirs is None:
            return None
        limits = (("p95", 1, settings.rollout.max_p95_ratio),
                  ("p99", 2, settings.rollout.max_p99_ratio))
        for name, ours, base, limit in ((n, mine[i], theirs[i], lim) for n, i, lim in limits):
            if ours > limit * base:
                return (f"{name} latency {ours * 1e3:.1f} ms is {ours / base:.1f}x the stable "
                        f"model's {base * 1e3:.1f} ms (limit {limit:g}x)")
        return None

    def to_json(self) -> dict[str, Any]:
        stable, candidate = self.health
        return {"stage": self.stage, "share": self.share, "started_at": self.started_at,
                "stable": stable.to_json(), "candidate": candidate.to_json(),
                "readout": self.summary()}

    # ---- parts ------------------------------------------------------------------------------
    async def _stable(self, query: tuple) -> Page:
        health, start = self.health[0], perf_counter()
        page = await self.stable.recommend(*query, pseudonymised=True)
        health.record(perf_counter() - start)
        return page

    async def _interleaved(self, query: tuple, request_id: str) -> Served:
        """Both models answer at once; the shopper sees their team draft, each item credited
        to the model that placed it. A failed candidate leaves the stable answer alone."""
        stable_call = asyncio.get_running_loop().create_task(self._stable(query))
        try:
            theirs = await self._candidate(query)
        finally:
            ours = await stable_call
        if theirs is None:
            return Served(ours, self.stable)
        versions = (str(self.stable.info.version), str(self.candidate.info.version))
        pages = (ours, theirs)
        by_team = [{item["item_id"]: item for item in page.items} for page in pages]
        draft = team_draft([i["item_id"] for i in ours.items],
                           [i["item_id"] for i in theirs.items], query[1],
                           random.Random(request_id or None))
        items = [by_team[team][item] | {"rank": rank}
                 for rank, (item, team) in enumerate(draft, start=1)]
        fallback = ours.fallback if ours.fallback == theirs.fallback else None
        return Served(replace(ours, items=items, fallback=fallback), self.candidate,
                      tuple(versions[team] for _, team in draft), True)

    def judge_outcomes(self) -> None:
        """Roll back the moment the read-out says the candidate is worse than the margin."""
        if self.ended:
            return
        found = self.summary()
        if found is not None and found["decision"] == ROLL_BACK:
            self.end()
            self._on_breach(self, found["reason"])

    async def _candidate(self, query: tuple) -> Page | None:
        """The candidate's answer, or None when it failed or ran out of time (counted)."""
        health = self.health[1]
        start = perf_counter()
        try:
            page = await asyncio.wait_for(
                self.candidate.recommend(*query, pseudonymised=True), self._timeout)
        except Exception as err:  # a failing candidate must never reach a client
            if not health.errors:
                log.warning("candidate v%s failed in %s: %s: %s", self.candidate.info.version,
                            self.stage, type(err).__name__, err)
            health.record(None)
            self._judge()
            return None
        health.record(perf_counter() - start)
        if health.calls % JUDGE_EVERY == 0:
            self._judge()
        return page

    async def _shadow(self, query: tuple, served: Page) -> None:
        page = await self._candidate(query)
        if page is not None:
            shadow_log.info("shadow v%s for %s: %s (served v%s: %s)",
                            self.candidate.info.version, query[0],
                            [i["item_id"] for i in page.items], self.stable.info.version,
                            [i["item_id"] for i in served.items])

    def _judge(self) -> None:
        if self.ended:
            return
        reason = self.breach()
        if reason is not None:
            self.end()
            self._on_breach(self, reason)
