"""Drive the running endpoint as the synthetic shop's shoppers would, over HTTP.

Each visit is one ``POST /recommend`` for a sampled shopper, then one ``POST /feedback`` per event
the behaviour model draws for what was shown (a click is a ``view``; then ``add_to_cart`` and
``purchase`` with the catalogue's price), carrying the answer's ``request_id`` when the endpoint
gives one, so the endpoint can tie the feedback to the list (and, in a canary or interleaving
test, to the model) that earned it. An endpoint without ``request_id`` gets the feedback without.

Why the bounds: this is a load generator aimed at a shop's endpoint, so it only talks to this
machine (every address the host resolves to must be loopback, no proxy from the environment, no
redirects followed), stops at a deadline, and never sends more than ``max_requests`` requests.
A few concurrent visits (default 4) keep it cheap on a small machine.

Seeded: the shoppers, and each visit's dice (``random.Random`` seeded by seed, shopper and visit
number), so two runs against the same answers post the same events whatever the concurrency.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from pipelines.data.sources.base import UsageError
from pipelines.simulation.behaviour import DEFAULT, Behaviour, Product, Shopper, react

MAX_REQUESTS = 100_000  # whatever the options say
FATAL_STATUS = {401: "the endpoint refused the API token (401): set SHOPREC_API_TOKEN to its "
                "token", 403: "the endpoint refused the request (403)",
                404: "no /recommend at this URL (404): is it the shoprec endpoint?"}


class NotLoopback(UsageError):
    """The endpoint is not on this machine: the simulator refuses to send it traffic."""


@dataclass(frozen=True)
class SimulationSpec:
    """What to run; the defaults are the CLI's."""

    endpoint: str = ""  # the base URL; empty: the settings' endpoint (steps.simulate)
    shoppers: int = 50
    seconds: float = 60.0
    visits_per_shopper: int = 1
    seed: int = 0
    k: int = 10
    explain: bool = False
    concurrency: int = 4
    max_requests: int = 10_000
    request_timeout: float = 30.0
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.max_requests <= MAX_REQUESTS:
            raise UsageError(f"max_requests must be 1..{MAX_REQUESTS}, not {self.max_requests}")
        if not 0 < self.seconds <= 86_400:
            raise UsageError(f"seconds must be > 0 and at most a day, not {self.seconds}")
        if self.shoppers < 1 or self.visits_per_shopper < 1 or not 1 <= self.concurrency <= 64:
            raise UsageError("shoppers and visits per shopper must be >= 1, concurrency 1..64")
        if not 1 <= self.k <= 100:
            raise UsageError(f"k must be 1..100, not {self.k}")


@dataclass
class Counts:
    """What one model version's answers earned (or all of them together)."""

    requests: int = 0  # /recommend answered
    impressions: int = 0  # items shown
    views: int = 0  # clicks
    carts: int = 0
    purchases: int = 0
    revenue: float = 0.0

    def add(self, kind: str, price: float | None) -> None:
        if kind == "view":
            self.views += 1
        elif kind == "add_to_cart":
            self.carts += 1
        elif kind == "purchase":
            self.purchases += 1
            self.revenue = round(self.revenue + (price or 0.0), 2)


@dataclass
class SimulationResult:
    endpoint: str
    seed: int
    shoppers: int  # distinct shoppers sampled
    visits_planned: int
    visits: int = 0  # visits whose /recommend was answered
    recommend_errors: int = 0  # /recommend not answered 200 (or not at all)
    cold_start: int = 0  # answers with fallback cold_start
    feedback_posted: int = 0  # /feedback answered 200
    feedback_refused: int = 0  # /feedback answered otherwise, or not at all
    feedback_with_request_id: int = 0  # posted carrying the answer's request_id
    feedback_counted: int = 0  # answered ``counted: true`` (an endpoint that ties them)
    requests_sent: int = 0  # every HTTP request, both routes
    totals: Counts = field(default_factory=Counts)
    by_version: dict[str, Counts] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    stopped: str = "done"  # done, time limit, request cap, or why it gave up

    @property
    def failed(self) -> bool:
        return self.stopped not in ("done", "time limit", "request cap")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ctr"] = round(self.totals.views / self.totals.impressions, 4) \
            if self.totals.impressions else None
        return out


def require_loopback(url: str) -> str:
    """``url`` unchanged when its host resolves only to loopback addresses (127.0.0.0/8, ::1);
    ``NotLoopback`` with one line otherwise, or when it cannot be resolved."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as err:
        raise NotLoopback(f"not a URL: {url!r} ({err})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise NotLoopback(f"the endpoint must be an http(s) URL with a host, not {url!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        found = {info[4][0] for info in socket.getaddrinfo(parsed.host, port,
                                                          type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError) as err:
        raise NotLoopback(f"cannot resolve the endpoint's host {parsed.host!r}: {err}") from None
    outside = sorted(a for a in found if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if outside or not found:
        raise NotLoopback(f"refusing to simulate shoppers against {parsed.host} "
                          f"({', '.join(outside) or 'no address'}): loopback endpoints only "
                          "(127.0.0.0/8 or ::1)")
    return url


def visit_plan(shoppers: list[Shopper], visits_per_shopper: int) -> Iterator[tuple[Shopper, int]]:
    """Round after round, every sampled shopper once: (shopper, visit number)."""
    for visit in range(visits_per_shopper):
        for shopper in shoppers:
            yield shopper, visit


def simulate(shoppers: list[Shopper], products: dict[str, Product], spec: SimulationSpec,
             behaviour: Behaviour = DEFAULT,
             transport: httpx.AsyncBaseTransport | None = None) -> SimulationResult:
    """Run the visits against ``spec.endpoint`` (checked to be loopback unless a ``transport``
    stands in for the network) until they are done, the deadline passes or the request cap is
    reached; the counts."""
    if transport is None:
        require_loopback(spec.endpoint)
    return asyncio.run(_Run(shoppers, products, spec, behaviour).go(transport))


class _Run:
    """One simulation's shared state: the plan, the counters and the stop reason."""

    def __init__(self, shoppers: list[Shopper], products: dict[str, Product],
                 spec: SimulationSpec, behaviour: Behaviour) -> None:
        self.spec, self.products, self.behaviour = spec, products, behaviour
        self.plan = visit_plan(shoppers, spec.visits_per_shopper)
        self.result = SimulationResult(spec.endpoint.rstrip("/"), spec.seed, len(shoppers),
                                       len(shoppers) * spec.visits_per_shopper)

    async def go(self, transport: httpx.AsyncBaseTransport | None) -> SimulationResult:
        headers = {"Authorization": f"Bearer {self.spec.token}"} if self.spec.token else {}
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=self.result.endpoint, headers=headers,
                                     timeout=self.spec.request_timeout, transport=transport,
                                     trust_env=False, follow_redirects=False) as client:
            workers = [self._worker(client) for _ in range(self.spec.concurrency)]
            try:
                await asyncio.wait_for(asyncio.gather(*workers), self.spec.seconds)
            except TimeoutError:
                self.result.stopped = "time limit"
        self.result.elapsed_seconds = round(time.monotonic() - started, 3)
        return self.result

    def _stop(self, reason: str) -> None:
        if self.result.stopped == "done":
            self.result.stopped = reason

    def _may_send(self) -> bool:
        if self.result.stopped != "done":
            return False
        if self.result.requests_sent >= self.spec.max_requests:
            self._stop("request cap")
            return False
        self.result.requests_sent += 1
        return True

    async def _worker(self, client: httpx.AsyncClient) -> None:
        for shopper, number in self.plan:  # one shared iterator: each visit once
            if not self._may_send():
                return
            await self._visit(client, shopper, number)

    async def _visit(self, client: httpx.AsyncClient, shopper: Shopper, number: int) -> None:
        body = {"user_id": shopper.user_id, "k": self.spec.k, "explain": self.spec.explain}
        answer = await self._post(client, "/recommend", body)
        if not isinstance(answer, dict):
            self.result.recommend_errors += 1
            if answer in FATAL_STATUS or isinstance(answer, str):
                self._stop(FATAL_STATUS.get(answer, answer))  # type: ignore[arg-type]
            return
        self.result.visits += 1
        self.result.cold_start += answer.get("fallback") == "cold_start"
        version = str((answer.get("model") or {}).get("version") or "none")
        shown = [(str(item["item_id"]), self._product(item)) for item in answer.get("items") or []
                 if isinstance(item, dict) and "item_id" in item]
        for counts in (self.result.totals, self.result.by_version.setdefault(version, Counts())):
            counts.requests += 1
            counts.impressions += len(shown)
        request_id = answer.get("request_id")
        rng = random.Random(f"{self.spec.seed}/{shopper.user_id}/{number}")
        for event in react(shopper.taste, shown, rng, self.behaviour,
                           shopper.activity):
            if not self._may_send():
                return
            feedback = {"user_id": shopper.user_id, "item_id": event.item_id,
                        "event_type": event.event_type, "quantity": event.quantity}
            if event.unit_price is not None:
                feedback["unit_price"] = event.unit_price
            if isinstance(request_id, str) and request_id:
                feedback["request_id"] = request_id
            posted = await self._post(client, "/feedback", feedback)
            if not isinstance(posted, dict):
                self.result.feedback_refused += 1
                if isinstance(posted, str):  # unreachable now: so would every later post be
                    self._stop(posted)
                    return
                continue
            self.result.feedback_posted += 1
            self.result.feedback_with_request_id += "request_id" in feedback
            self.result.feedback_counted += posted.get("counted") is True
            for counts in (self.result.totals, self.result.by_version[version]):
                counts.add(event.event_type, event.unit_price)

    def _product(self, item: dict[str, Any]) -> Product:
        """The catalogue's facts; for an item it lacks (new since), what the answer says."""
        known = self.products.get(str(item["item_id"]))
        if known is not None:
            return known
        price = item.get("price")
        return Product(str(item["item_id"]), str(item.get("category") or ""), "", "",
                       float(price) if isinstance(price, int | float) else None)

    async def _post(self, client: httpx.AsyncClient, path: str,
                    body: dict[str, Any]) -> dict[str, Any] | int | str:
        """The decoded answer; the status when it was not 200 (0: no answer in time, or a
        broken one); a one-line reason when no connection could be made (a stop: every later
        request would fail the same way)."""
        try:
            response = await client.post(path, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            return f"endpoint unreachable at {self.result.endpoint}: {type(err).__name__}: {err}"
        except httpx.TransportError:  # a busy endpoint's read timeout: counted, not fatal
            return 0
        if response.status_code != 200:
            return response.status_code
        try:
            decoded = response.json()
        except ValueError:
            return response.status_code
        return decoded if isinstance(decoded, dict) else response.status_code
