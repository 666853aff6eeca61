"""Load benchmark of the real endpoint: ``shoprec serve`` driven over HTTP from another process.

For each of explain=false and explain=true: a fixed concurrency of keep-alive clients calls
``POST /recommend`` for a fixed time. Prints one JSON object: p50/p95/p99 latency, requests per
second, errors, server RSS (all its processes) at the start and end of each run, the in-process
time of the same call (so the HTTP overhead shows as a ratio), and the issue's goals met or not.
Needs a data dir whose registry has a champion (``make demo`` or ``shoprec train``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import http.client
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOALS = {"explain_false": {"p99_ms": 25.0, "rps": 150.0}, "explain_true": {"p99_ms": 60.0}}
MAX_RSS_GROWTH = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, help="with a champion (default: settings)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--in-process-calls", type=int, default=300)
    args = parser.parse_args()

    from contracts.settings import get_settings
    from serving import launch

    settings = get_settings()
    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": args.data_dir.resolve()})
    users = raw_users(settings.data_dir)
    port = launch.free_port()
    log = Path(tempfile.mkdtemp(prefix="serve-load-")) / "server.log"
    token = settings.api_token.get_secret_value() if settings.api_token else None
    # The server needs the key the champion's data was pseudonymised with (fails closed).
    server = launch.start(settings.data_dir, port, log,
                          {"SHOPREC_PSEUDONYM_KEY": settings.require_pseudonym_key()})
    try:
        ready = launch.status(f"http://127.0.0.1:{port}/readyz")
        if ready != 200:
            raise SystemExit(f"the server is not ready ({ready}): no champion in "
                             f"{settings.data_dir}? see {log}")
        runs = {}
        for explain in (False, True):
            body = {"k": args.k, "explain": explain}
            drive(port, token, users, body, args.concurrency, min(3.0, args.duration))  # warm
            rss_start = rss_mb(server.pid)
            result = drive(port, token, users, body, args.concurrency, args.duration)
            rss_end = rss_mb(server.pid)
            runs[f"explain_{str(explain).lower()}"] = result | {
                "rss_start_mb": round(rss_start, 1), "rss_end_mb": round(rss_end, 1),
                "rss_growth_pct": round(100 * (rss_end / rss_start - 1), 2),
            }
    finally:
        launch.stop(server)
    in_process = in_process_times(settings, users, args.k, args.in_process_calls)
    report = {
        "duration_s": args.duration, "concurrency": args.concurrency, "k": args.k,
        "users": len(users), "cpu_count": os.cpu_count(), "runs": runs,
        "in_process_ms": in_process,
        "http_over_in_process_p50": {name: round(runs[name]["p50_ms"] / in_process[name]["p50"],
                                                  2) for name in runs},
        "goals_met": goals_met(runs),
    }
    print(json.dumps(report, indent=2))
    return 0


def raw_users(data_dir: Path, limit: int = 500) -> list[str]:
    """Raw customer ids as landed (the endpoint pseudonymises them), most recent files first."""
    from pipelines.zones import DataDir

    found: list[str] = []
    for path in sorted(DataDir(data_dir).landing.rglob("*.csv"), reverse=True):
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.DictReader(handle)
            if "customer_id" not in (reader.fieldnames or []):
                continue
            found.extend(row["customer_id"] for row in reader if row.get("customer_id"))
        found = list(dict.fromkeys(found))
        if len(found) >= limit:
            break
    return found[:limit] or ["bench-unknown-user"]


def drive(port: int, token: str | None, users: list[str], body: dict, concurrency: int,
          duration: float) -> dict:
    """Run the load in a separate process (the server's clients are not the server's CPU)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        latencies, errors, elapsed = pool.apply(_load, (port, token, users, body, concurrency,
                                                        duration))
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies), "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        **{f"p{q}_ms": round(float(np.percentile(ms, q)), 2) if len(ms) else None
           for q in (50, 95, 99)},
    }


def _load(port, token, users, body, concurrency, duration):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    latencies: list[float] = []
    errors = [0]
    deadline = time.perf_counter() + duration

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = offset
        while time.perf_counter() < deadline:
            payload = json.dumps(body | {"user_id": users[n % len(users)]})
            n += concurrency
            started = time.perf_counter()
            try:
                connection.request("POST", "/recommend", payload, headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors[0] += 1
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0], time.perf_counter() - started


def rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    tree = [process, *process.children(recursive=True)]
    return sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20


def in_process_times(settings, users: list[str], k: int, calls: int) -> dict:
    """The same recommend call without HTTP: the engine the server builds, called directly."""
    from serving.loading import describe_served, load_engine

    engine = load_engine(settings, describe_served(settings))
    loop = asyncio.new_event_loop()  # as in the server: the loop awaits the model's thread
    out = {}
    for explain in (False, True):
        times = []
        for n in range(calls):
            started = time.perf_counter()
            loop.run_until_complete(engine.recommend(users[n % len(users)], k, explain))
            times.append((time.perf_counter() - started) * 1000)
        times = times[10:]
        out[f"explain_{str(explain).lower()}"] = {
            "p50": round(float(np.percentile(times, 50)), 2),
            "p99": round(float(np.percentile(times, 99)), 2),
        }
    loop.close()
    return out


def goals_met(runs: dict) -> dict:
    met = {}
    for name, goal in GOALS.items():
        run = runs[name]
        met[name] = {
            "p99": run["p99_ms"] is not None and run["p99_ms"] <= goal["p99_ms"],
            **({"rps": run["rps"] >= goal["rps"]} if "rps" in goal else {}),
            "zero_errors": run["errors"] == 0,
            "rss_growth": run["rss_growth_pct"] <= 100 * MAX_RSS_GROWTH,
        }
    return met


if __name__ == "__main__":
    sys.exit(main())
