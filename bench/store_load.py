"""Load benchmark of the online shopper store: what reading it per request costs the endpoint,
and how soon a purchase sent as feedback leaves the shopper's answers, under load.

On one champion, one server per store (``off``: the model's snapshot alone, then the embedded
SQLite store, then Redis), each loaded alike, as ``bench/serve_load.py`` does (``POST /recommend``,
explain=false, fixed keep-alive concurrency, ``wrk`` when installed). Then, under the same load, a
probe thread repeatedly takes a shopper's top item, sends its purchase to ``/feedback`` and polls
``/recommend`` until the item is gone: ``feedback_to_excluded`` is that time's p50 / p99 (the
goal: p99 <= 1 s). Both stores are first caught up from the curated zone, as the next ingest
would. The servers are loaded there and back (off, sqlite, redis, redis, sqlite, off), each
store's p50 the mean of its two passes, so a machine that drifts meanwhile weighs on all alike.
Prints one JSON object with each store's p50 over the snapshot's (the goal: <= 1.15x).
Needs a data dir whose registry has a champion, and Redis for the Redis run
(``SHOPREC_TEST_REDIS``, default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from serve_load import Load, raw_users  # noqa: E402  (a sibling benchmark: its load generator)

GOALS = {"p50_over_snapshot": 1.15, "feedback_to_excluded_p99_s": 1.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="with a champion")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per store")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--stores", default="off,sqlite,redis",
                        help="which servers to load, in this order (off must be one)")
    parser.add_argument("--redis", default=os.environ.get("SHOPREC_TEST_REDIS",
                                                          "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    from contracts import launch
    from contracts.settings import get_settings
    from pipelines.data.ingestor import Ingestor

    settings = get_settings().with_values(data_dir=args.data_dir.resolve())
    prefix = f"shoprec-bench-{uuid.uuid4().hex[:8]}"
    urls = {"off": "off", "sqlite": None, "redis": f"{args.redis}?prefix={prefix}"}
    names = args.stores.split(",")
    for url in (None, urls["redis"]):  # caught up as the next ingest would
        Ingestor(settings.with_values(shopper_store=url))
    client = ("wrk" if shutil.which("wrk") else "python") if args.client == "auto" else args.client
    users = raw_users(settings.data_dir)
    work = Path(tempfile.mkdtemp(prefix="store-load-"))
    passes: dict[str, list[dict]] = {name: [] for name in names}
    try:
        # There and back (off, sqlite, redis, redis, sqlite, off): a machine that drifts during
        # the run weighs on every store alike.
        for name in [*names, *reversed(names)]:
            port = launch.free_port()
            env = {"SHOPREC_PSEUDONYM_KEY": settings.require_pseudonym_key(),
                   "SHOPREC_TRAFFIC_LOG": "false"}
            if urls[name] is not None:
                env["SHOPREC_SHOPPER_STORE"] = urls[name]
            server = launch.start(settings.data_dir, port, work / f"{name}.log", env)
            try:
                if launch.status(f"http://127.0.0.1:{port}/readyz") != 200:
                    raise SystemExit(f"no champion in {settings.data_dir}? see {work}/{name}.log")
                load = Load(client, port, None, users, work, args.concurrency)
                body = {"k": args.k, "explain": False}
                load.run("/recommend", body, min(5.0, args.duration))  # warm the connections
                run = load.run("/recommend", body, args.duration)  # the same load for each
                if name != "off" and not passes[name]:  # then feedback, under the same load
                    probe = Probe(port, users[len(users) // 2:], args.k)
                    probe.start()
                    load.run("/recommend", body, min(20.0, args.duration))
                    run["feedback_to_excluded"] = probe.stop()
                passes[name].append(run)
            finally:
                launch.stop(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        _drop_redis(args.redis, prefix)
    runs = {name: {"p50_ms": round(float(np.mean([r["p50_ms"] for r in done])), 2),
                   "p99_ms": round(float(np.mean([r["p99_ms"] for r in done])), 2),
                   "rps": round(float(np.mean([r["rps"] for r in done])), 1),
                   "errors": sum(r["errors"] for r in done), "passes": done}
            for name, done in passes.items()}
    base = runs["off"]["p50_ms"]
    measured = [name for name in ("sqlite", "redis") if name in runs]
    for name in measured:
        runs[name]["p50_over_snapshot"] = round(runs[name]["p50_ms"] / base, 3)
        runs[name]["feedback_to_excluded"] = passes[name][0]["feedback_to_excluded"]
    met = {name: runs[name]["p50_over_snapshot"] <= GOALS["p50_over_snapshot"]
           and runs[name]["errors"] == 0 and runs[name]["feedback_to_excluded"]["p99_s"]
           is not None and runs[name]["feedback_to_excluded"]["p99_s"]
           <= GOALS["feedback_to_excluded_p99_s"] for name in measured}
    print(json.dumps({"client": client, "duration_s": args.duration,
                      "concurrency": args.concurrency, "k": args.k, "cpu_count": os.cpu_count(),
                      "runs": runs, "goals": GOALS, "goals_met": met}, indent=2))
    return 0


class Probe(threading.Thread):
    """Purchase a shopper's top item through /feedback; time until /recommend leaves it out."""

    def __init__(self, port: int, users: list[str], k: int) -> None:
        super().__init__(daemon=True)
        self.port, self.users, self.k = port, users, k
        self.times: list[float] = []
        self.failures = 0
        self._done = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        n = 0
        while not self._done.is_set():
            user = self.users[n % len(self.users)]
            n += 1
            items = self._top(connection, user)
            if not items:
                continue
            item = items[0]
            self._call(connection, "/feedback", {"user_id": user, "item_id": item,
                                                 "event_type": "purchase"})
            sent = time.perf_counter()
            while item in self._top(connection, user):
                if time.perf_counter() - sent > 10:
                    self.failures += 1
                    break
            else:
                self.times.append(time.perf_counter() - sent)
            time.sleep(0.05)
        connection.close()

    def _top(self, connection: http.client.HTTPConnection, user: str) -> list[str]:
        answer = self._call(connection, "/recommend", {"user_id": user, "k": self.k,
                                                       "explain": False})
        return [i["item_id"] for i in answer.get("items", [])]

    def _call(self, connection, route: str, body: dict) -> dict:
        connection.request("POST", route, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return json.loads(response.read() or b"{}")

    def stop(self) -> dict:
        self._done.set()
        self.join(timeout=30)
        times = np.array(self.times)
        return {"probes": len(times), "failures": self.failures,
                "p50_s": round(float(np.percentile(times, 50)), 4) if len(times) else None,
                "p99_s": round(float(np.percentile(times, 99)), 4) if len(times) else None}


def _drop_redis(url: str, prefix: str) -> None:
    try:
        import redis

        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    except Exception:  # the benchmark's figures stand; stale keys are under a unique prefix
        pass


if __name__ == "__main__":
    raise SystemExit(main())
