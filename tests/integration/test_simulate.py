"""``shoprec simulate`` end to end against a small real HTTP server on 127.0.0.1 that records
what it is sent: the token, ``request_id`` carried back, the same events for the same seed, and
a server that answers with the shoppers' planted tastes earning more than one that answers at
random. (The real endpoint: ``tests/integration/serving/test_simulate.py``.)"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipelines.data.synthetic_shop import ShopSpec, generate_shop
from pipelines.simulation.behaviour import match
from pipelines.simulation.shop import load_shop

SHOPREC = str(Path(sys.executable).with_name("shoprec"))  # beside the Python running the tests
TOKEN = "sim-token"


class Recorder(ThreadingHTTPServer):
    """Answers /recommend with the catalogue ranked by the shopper's taste (``good``) or at
    random, each answer with a ``request_id``; records every request."""

    def __init__(self, shop_dir: Path, good: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        shop = load_shop(shop_dir)
        self.tastes = {s.user_id: s.taste for s in shop.shoppers}
        self.products = sorted(shop.products.values(), key=lambda p: p.item_id)
        self.good, self.lock = good, threading.Lock()
        self.seen: list[tuple[str, dict, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, path: str, body: dict) -> dict:
        if path == "/feedback":
            return {"feedback_id": "f", "batch": "b", "request_id": body.get("request_id"),
                    "counted": "request_id" in body}
        taste = self.tastes[body["user_id"]]
        if self.good:
            ranked = sorted(self.products, key=lambda p: (-match(taste, p), p.item_id))
        else:
            ranked = random.Random(body["user_id"]).sample(self.products, len(self.products))
        return {"user_id": body["user_id"], "fallback": None, "request_id": f"r-{len(self.seen)}",
                "model": {"name": "shoprec", "version": "7", "run_id": "x"},
                "items": [{"item_id": p.item_id, "title": p.item_id, "category": p.category,
                           "price": p.price, "score": 0.0, "rank": r}
                          for r, p in enumerate(ranked[:body["k"]], start=1)]}


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:  # noqa: N802  (the standard library's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.seen.append((self.path, body, self.headers.get("Authorization")))
            payload = json.dumps(self.server.answer(self.path, body)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sim") / "shop"
    generate_shop(folder, ShopSpec(days=1, users=80, items=120, seed=11))
    return folder


def _serving(shop_dir: Path, good: bool) -> Iterator[Recorder]:
    server = Recorder(shop_dir, good)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _simulate(server: Recorder, shop_dir: Path, *extra: str) -> dict:
    done = subprocess.run(
        [SHOPREC, "simulate", "--endpoint", server.url, "--data-dir", str(shop_dir), "--json",
         "--shoppers", "60", "--visits-per-shopper", "2", "--seconds", "120", "--seed", "5",
         *extra],
        capture_output=True, text=True, timeout=180,
        env={"PATH": "/usr/bin:/bin", "SHOPREC_API_TOKEN": TOKEN, "HOME": str(shop_dir.parent),
             "SHOPREC_DATA_DIR": str(shop_dir.parent / "unused")})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_cli_drives_a_loopback_server_with_the_token_and_request_ids(shop_dir: Path) -> None:
    for server in _serving(shop_dir, good=True):
        first = _simulate(server, shop_dir)
        seen_first = list(server.seen)
        server.seen.clear()
        again = _simulate(server, shop_dir, "--concurrency", "2")

    feedback = [(body, auth) for path, body, auth in seen_first if path == "/feedback"]
    recommends = [body for path, body, _ in seen_first if path == "/recommend"]
    assert len(recommends) == first["visits"] == 120 and len({b["user_id"] for b in recommends}) \
        == 60
    assert {auth for _, _, auth in seen_first} == {f"Bearer {TOKEN}"}
    assert feedback and all(body["request_id"].startswith("r-") for body, _ in feedback)
    assert first["feedback_posted"] == first["feedback_counted"] == len(feedback)
    assert first["feedback_refused"] == 0 and first["stopped"] == "done"
    assert first["by_version"]["7"]["requests"] == 120

    def events(seen: list) -> list[str]:
        return sorted(json.dumps({k: v for k, v in body.items() if k != "request_id"},
                                 sort_keys=True) for path, body, _ in seen if path == "/feedback")

    assert events(server.seen) == events(seen_first), "same seed, same answers: same events"
    assert again["totals"] == first["totals"]


def test_answers_that_serve_the_planted_tastes_earn_more(shop_dir: Path) -> None:
    results = {}
    for good in (True, False):
        for server in _serving(shop_dir, good):
            results[good] = _simulate(server, shop_dir)["totals"]

    assert results[True]["views"] > 2 * results[False]["views"]
    assert results[True]["purchases"] > 2 * results[False]["purchases"]
    assert results[True]["revenue"] > results[False]["revenue"]
