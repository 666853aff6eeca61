"""The HTTP driver against a fake endpoint (``httpx.MockTransport``): what it posts, that it ties
feedback to ``request_id`` when the answer has one, its bounds, and the loopback rule."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
import pytest

from pipelines.simulation.behaviour import Product, Shopper, Taste
from pipelines.simulation.driver import (
    NotLoopback,
    SimulationSpec,
    require_loopback,
    simulate,
)

PRODUCTS = {f"T{i}": Product(f"T{i}", "toys" if i % 2 else "books", "Playfold", "mid", 10.0 + i)
            for i in range(20)}
SHOPPERS = [Shopper(f"C{i}", Taste("toys", "Playfold", "mid")) for i in range(12)]
SPEC = SimulationSpec(endpoint="http://127.0.0.1:3000", shoppers=12, seconds=30, seed=3)


class FakeEndpoint:
    """Answers /recommend with the toys first (a good model) and records every request."""

    def __init__(self, request_id: bool = True, status: int = 200, delay: float = 0.0) -> None:
        self.request_id, self.status, self.delay = request_id, status, delay
        self.posts: list[tuple[str, dict]] = []
        self.headers: list[str | None] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.posts.append((request.url.path, body))
        self.headers.append(request.headers.get("authorization"))
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.url.path == "/feedback":
            return httpx.Response(422 if body["item_id"] == "T1" else 200,
                                  json={"feedback_id": "f", "batch": "b"})
        if self.status != 200:
            return httpx.Response(self.status, json={"detail": "no"})
        ranked = sorted(PRODUCTS, key=lambda i: (int(i[1:]) % 2 == 0, int(i[1:])))[:body["k"]]
        answer = {"user_id": body["user_id"], "fallback": None,
                  "model": {"name": "shoprec", "version": "2" if body["user_id"] < "C5" else "1",
                            "run_id": "r"},
                  "items": [{"item_id": i, "title": i, "category": "toys", "price": 1.0,
                             "score": 1.0, "rank": r} for r, i in enumerate(ranked, start=1)]}
        if self.request_id:
            answer["request_id"] = f"req-{body['user_id']}"
        return httpx.Response(200, json=answer)


def _run(fake: FakeEndpoint, **changes) -> tuple:
    spec = SimulationSpec(**{**SPEC.__dict__, **changes})
    return simulate(SHOPPERS, PRODUCTS, spec, transport=httpx.MockTransport(fake)), fake


def test_each_visit_asks_then_posts_its_events_with_the_answers_request_id() -> None:
    result, fake = _run(FakeEndpoint(), token="s3cret")

    recommends = [body for path, body in fake.posts if path == "/recommend"]
    feedback = [body for path, body in fake.posts if path == "/feedback"]
    assert sorted(b["user_id"] for b in recommends) == sorted(s.user_id for s in SHOPPERS)
    assert all(b == {"user_id": b["user_id"], "k": 10, "explain": False} for b in recommends)
    assert feedback, "a list of toys for toy lovers earns clicks"
    assert all(b["request_id"] == f"req-{b['user_id']}" for b in feedback)
    assert all(b.get("unit_price") == PRODUCTS[b["item_id"]].price
               for b in feedback if b["event_type"] != "view")
    assert set(fake.headers) == {"Bearer s3cret"}

    refused = sum(b["item_id"] == "T1" for b in feedback)
    assert result.stopped == "done" and not result.failed
    assert result.visits == 12 and result.requests_sent == len(fake.posts)
    assert result.feedback_refused == refused
    assert result.feedback_posted == result.feedback_with_request_id == len(feedback) - refused
    kinds = Counter(b["event_type"] for b in feedback if b["item_id"] != "T1")
    t = result.totals
    assert (t.views, t.carts, t.purchases) == (kinds["view"], kinds["add_to_cart"],
                                                kinds["purchase"])
    assert t.impressions == 120
    assert {v: c.requests for v, c in result.by_version.items()} == {"1": 5, "2": 7}
    assert result.to_json()["ctr"] == pytest.approx(t.views / 120, abs=1e-4)


def test_without_request_id_in_the_answer_feedback_goes_without() -> None:
    result, fake = _run(FakeEndpoint(request_id=False))
    feedback = [body for path, body in fake.posts if path == "/feedback"]
    assert feedback and not any("request_id" in b for b in feedback)
    assert result.feedback_with_request_id == 0


def test_same_seed_same_events_whatever_the_concurrency() -> None:
    def events(concurrency: int, seed: int = 3) -> list[str]:
        _, fake = _run(FakeEndpoint(), concurrency=concurrency, seed=seed)
        return sorted(json.dumps(b, sort_keys=True) for p, b in fake.posts if p == "/feedback")

    assert events(1) == events(4) == events(4)
    assert events(4) != events(4, seed=4)


def test_the_request_cap_and_the_deadline_bound_it() -> None:
    capped, fake = _run(FakeEndpoint(), max_requests=5, visits_per_shopper=3)
    assert len(fake.posts) == 5 and capped.requests_sent == 5
    assert capped.stopped == "request cap" and not capped.failed

    slow, fake = _run(FakeEndpoint(delay=0.2), seconds=0.5, visits_per_shopper=50)
    assert slow.stopped == "time limit" and not slow.failed
    assert slow.elapsed_seconds < 2.0
    assert slow.visits < 50 * 12


def test_a_refused_token_or_no_endpoint_stops_it_with_the_reason() -> None:
    refused, fake = _run(FakeEndpoint(status=401), concurrency=1)
    assert refused.failed and "SHOPREC_API_TOKEN" in refused.stopped
    assert len(fake.posts) == 1

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    spec = SimulationSpec(**{**SPEC.__dict__, "concurrency": 1})
    down = simulate(SHOPPERS, PRODUCTS, spec, transport=httpx.MockTransport(unreachable))
    assert down.failed and down.stopped.startswith("endpoint unreachable")
    assert down.requests_sent == 1

    unready, _ = _run(FakeEndpoint(status=503))
    assert unready.recommend_errors == 12 and unready.stopped == "done"


def test_a_slow_answer_is_counted_not_fatal() -> None:
    fake = FakeEndpoint()

    async def sometimes_slow(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/recommend" and b'"C3"' in request.content:
            raise httpx.ReadTimeout("no answer in time", request=request)
        return await fake(request)

    spec = SimulationSpec(**SPEC.__dict__)
    result = simulate(SHOPPERS, PRODUCTS, spec, transport=httpx.MockTransport(sometimes_slow))
    assert result.stopped == "done" and result.recommend_errors == 1 and result.visits == 11


@pytest.mark.parametrize("url", ["http://127.0.0.1:3000", "http://127.8.9.10", "http://[::1]:3000",
                                 "http://localhost:3000/", "https://127.0.0.1"])
def test_loopback_endpoints_are_accepted(url: str) -> None:
    assert require_loopback(url) == url


@pytest.mark.parametrize("url", ["http://10.0.0.1:3000", "http://8.8.8.8", "http://0.0.0.0:3000",
                                 "http://nosuchhost.invalid:3000", "ftp://127.0.0.1",
                                 "127.0.0.1:3000", "http://[::ffff:10.0.0.1]"])
def test_anything_else_is_refused_in_one_line(url: str) -> None:
    with pytest.raises(NotLoopback) as caught:
        require_loopback(url)
    assert "\n" not in str(caught.value)


def test_the_spec_is_bounded() -> None:
    from pipelines.data.sources.base import UsageError

    for bad in ({"max_requests": 10**6}, {"seconds": 0}, {"shoppers": 0}, {"k": 0},
                {"concurrency": 0}):
        with pytest.raises(UsageError):
            SimulationSpec(**{**SPEC.__dict__, **bad})
