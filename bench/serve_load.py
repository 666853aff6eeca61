"""Load benchmark of the real endpoint: ``shoprec serve`` driven over HTTP from another process.

For explain=false and explain=true, a fixed number of keep-alive connections call
``POST /recommend`` for a fixed time; ``GET /healthz`` at the same concurrency gives the floor of
the HTTP stack alone. The load comes from ``wrk`` when it is installed (Debian package ``wrk``: one
C thread, so the generator costs the shared cores little), else from a Python client in its own
process. The same call is then timed in-process on the engine the server builds, both alone and
with the same number of concurrent callers awaiting it (as the server's event loop does), so
``HTTP p50 / in-process p50`` at equal concurrency is what HTTP costs on top of the model, with
the model's own queueing on both sides. Prints one JSON object with the ratios the serving issue
sets as goals. Needs a data dir whose registry has a champion (``make demo`` or ``shoprec train``).
``--locales en,zh-CN`` also times the explained call once per locale (the body's ``locale``), in
alternating rounds so drift on a shared machine falls on every locale alike: issue 29's goal is
each locale's p50 within 1.05x of the first's.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import http.client
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOALS = {"p99_over_p50": 2.5, "explained_over_unexplained_rps": 0.5,
         "http_over_in_process_p50": 3.0, "rss_growth_pct": 5.0, "locale_over_first_p50": 1.05}
WRK_SCRIPT = """
local users = {}
for line in io.lines(os.getenv("USERS_FILE")) do users[#users + 1] = line end
local n = tonumber(os.getenv("OFFSET") or "0")
local body = os.getenv("BODY")
local auth = os.getenv("AUTH")
local path = os.getenv("ROUTE")
request = function()
  n = n + 1
  local headers = {["Content-Type"] = "application/json"}
  if auth ~= "" then headers["Authorization"] = auth end
  if path ~= "/recommend" then return wrk.format("GET", path, headers) end
  local user = users[(n % #users) + 1]
  return wrk.format("POST", path, headers, string.format(body, user))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nRESULT {"requests": %d, "errors": %d, "seconds": %.3f, ' ..
    '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\\n',
    summary.requests, e.connect + e.read + e.write + e.timeout + e.status,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, help="with a champion (default: settings)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--in-process-calls", type=int, default=400)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--locales", type=lambda v: [t for t in v.split(",") if t], default=[],
                        help="comma-separated locales to time explained answers in, e.g. en,zh-CN")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per locale")
    parser.add_argument("--users", type=lambda v: [u for u in v.split(",") if u], default=None,
                        help="comma-separated raw customer ids (default: the landed files')")
    args = parser.parse_args()

    from contracts import launch
    from contracts.settings import get_settings

    settings = get_settings()
    if args.data_dir is not None:
        settings = settings.with_values(data_dir=args.data_dir.resolve())
    client = ("wrk" if shutil.which("wrk") else "python") if args.client == "auto" else args.client
    users = args.users or raw_users(settings.data_dir)
    port = launch.free_port()
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    token = settings.api_token.get_secret_value() if settings.api_token else None
    load = Load(client, port, token, users, work, args.concurrency)
    # The server needs the key the champion's data was pseudonymised with (fails closed).
    server = launch.start(settings.data_dir, port, work / "server.log",
                          {"SHOPREC_PSEUDONYM_KEY": settings.require_pseudonym_key()})
    try:
        ready = launch.status(f"http://127.0.0.1:{port}/readyz")
        if ready != 200:
            raise SystemExit(f"the server is not ready ({ready}): no champion in "
                             f"{settings.data_dir}? see {work / 'server.log'}")
        runs = {}
        for explain in (False, True):
            body = {"k": args.k, "explain": explain}
            load.run("/recommend", body, min(5.0, args.duration))  # warm the connections
            rss_start = rss_mb(server.pid)
            result = load.run("/recommend", body, args.duration)
            rss_end = rss_mb(server.pid)
            runs[f"explain_{str(explain).lower()}"] = result | {
                "rss_start_mb": round(rss_start, 1), "rss_end_mb": round(rss_end, 1),
                "rss_growth_pct": round(100 * (rss_end / rss_start - 1), 2),
            }
        healthz = load.run("/healthz", {}, min(15.0, args.duration))
        by_locale = locale_runs(load, args.k, args.locales, args.rounds, args.duration)
    finally:
        launch.stop(server)
    in_process = in_process_times(settings, users, args.k, args.in_process_calls,
                                  args.concurrency)
    report = {
        "client": client, "duration_s": args.duration, "concurrency": args.concurrency,
        "k": args.k, "users": len(users), "cpu_count": os.cpu_count(), "runs": runs,
        "healthz": healthz, "in_process_ms": in_process, "ratios": ratios(runs, in_process),
    }
    report["goals_met"] = goals_met(report["ratios"], runs)
    if by_locale:
        report["locales"] = by_locale
        first = by_locale[args.locales[0]]["p50_ms"]
        report["ratios"]["locale_over_first_p50"] = {
            tag: round(run["p50_ms"] / first, 3) for tag, run in by_locale.items()}
        report["goals_met"]["locale_over_first_p50"] = all(
            ratio <= GOALS["locale_over_first_p50"]
            for ratio in report["ratios"]["locale_over_first_p50"].values())
    print(json.dumps(report, indent=2))
    return 0


def locale_runs(load: Load, k: int, locales: list[str], rounds: int, duration: float) -> dict:
    """Explained answers per locale: ``rounds`` alternating runs of ``duration / rounds`` each,
    their latencies pooled by request count (p50 the request-weighted mean of the runs')."""
    runs: dict[str, list[dict]] = {tag: [] for tag in locales}
    for _ in range(rounds if locales else 0):
        for tag in locales:
            runs[tag].append(load.run("/recommend", {"k": k, "explain": True, "locale": tag},
                                      duration / rounds))
    out = {}
    for tag, parts in runs.items():
        n = sum(p["requests"] for p in parts)
        out[tag] = {"requests": n, "errors": sum(p["errors"] for p in parts),
                    "rps": round(sum(p["rps"] for p in parts) / len(parts), 1),
                    **{key: round(sum(p[key] * p["requests"] for p in parts) / max(n, 1), 2)
                       for key in ("p50_ms", "p95_ms", "p99_ms")},
                    "p50_ms_per_round": [p["p50_ms"] for p in parts]}
    return out


def raw_users(data_dir: Path, limit: int = 500) -> list[str]:
    """Raw customer ids as landed (the endpoint pseudonymises them), most recent files first."""
    from pipelines.data.zones import DataDir

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


class Load:
    """Fixed-concurrency keep-alive load on one route, from wrk or the Python client."""

    def __init__(self, client: str, port: int, token: str | None, users: list[str],
                 work: Path, concurrency: int) -> None:
        self.client, self.port, self.token, self.users = client, port, token, users
        self.concurrency = concurrency
        self.users_file = work / "users.txt"
        self.users_file.write_text("\n".join(users), encoding="utf-8")
        self.script = work / "load.lua"
        self.script.write_text(WRK_SCRIPT, encoding="utf-8")

    def run(self, route: str, body: dict, duration: float) -> dict:
        if self.client == "wrk":
            raw = self._wrk(route, body, duration)
        else:
            raw = self._python(route, body, duration)
        return {"requests": raw["requests"], "errors": raw["errors"],
                "rps": round(raw["requests"] / raw["seconds"], 1),
                **{key: round(raw[key], 2) for key in ("p50_ms", "p95_ms", "p99_ms")}}

    def _wrk(self, route: str, body: dict, duration: float) -> dict:
        # The body is a format string: the Lua script puts each request's user into it.
        template = json.dumps(body | {"user_id": "@USER@"}).replace("%", "%%")
        env = os.environ | {
            "USERS_FILE": str(self.users_file), "ROUTE": route,
            "BODY": template.replace('"@USER@"', '"%s"'),
            "AUTH": f"Bearer {self.token}" if self.token else "",
        }
        out = subprocess.run(
            ["wrk", "-t1", f"-c{self.concurrency}", f"-d{max(1, round(duration))}s",
             "--timeout", "30s", "-s", str(self.script), f"http://127.0.0.1:{self.port}"],
            capture_output=True, text=True, env=env, check=True,
        ).stdout
        return json.loads(out.split("RESULT ", 1)[1])

    def _python(self, route: str, body: dict, duration: float) -> dict:
        """The server's clients run in another process, so they are not the server's CPU."""
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            latencies, errors, elapsed = pool.apply(
                _python_load, (self.port, self.token, self.users, route, body,
                               self.concurrency, duration))
        ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
        return {"requests": len(latencies), "errors": errors, "seconds": elapsed,
                **{f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 95, 99)}}


def _python_load(port, token, users, route, body, concurrency, duration):
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
            n += concurrency
            started = time.perf_counter()
            try:
                if route == "/recommend":
                    payload = json.dumps(body | {"user_id": users[n % len(users)]})
                    connection.request("POST", route, payload, headers)
                else:
                    connection.request("GET", route, headers=headers)
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


def in_process_times(settings, users: list[str], k: int, calls: int, concurrency: int) -> dict:
    """The same recommend call without HTTP, on the engine the server builds: one caller at a
    time (the model's own latency) and ``concurrency`` callers at once on one event loop (what
    the server's loop does, micro-batching and queueing for the model thread included)."""
    from serving.loading import describe_served, load_engine

    engine = load_engine(settings, describe_served(settings))
    loop = asyncio.new_event_loop()

    async def timed(n: int, explain: bool) -> float:
        started = time.perf_counter()
        await engine.recommend(users[n % len(users)], k, explain)
        return (time.perf_counter() - started) * 1000

    async def waves(explain: bool) -> list[float]:
        times: list[float] = []
        for wave in range(calls // concurrency):
            times += await asyncio.gather(*(timed(wave * concurrency + i, explain)
                                            for i in range(concurrency)))
        return times

    out = {}
    for explain in (False, True):
        alone = [loop.run_until_complete(timed(n, explain)) for n in range(calls)][10:]
        together = loop.run_until_complete(waves(explain))[concurrency:]
        out[f"explain_{str(explain).lower()}"] = {
            "alone_p50": round(float(np.percentile(alone, 50)), 2),
            "alone_p99": round(float(np.percentile(alone, 99)), 2),
            "concurrent_p50": round(float(np.percentile(together, 50)), 2),
            "concurrent_p99": round(float(np.percentile(together, 99)), 2),
        }
    loop.close()
    return out


def ratios(runs: dict, in_process: dict) -> dict:
    out: dict[str, object] = {
        "explained_over_unexplained_rps": round(
            runs["explain_true"]["rps"] / runs["explain_false"]["rps"], 3),
    }
    for name, run in runs.items():
        model = in_process[name]
        out[name] = {
            "p99_over_p50": round(run["p99_ms"] / run["p50_ms"], 2),
            "http_over_in_process_p50": round(run["p50_ms"] / model["concurrent_p50"], 2),
            "http_over_in_process_alone_p50": round(run["p50_ms"] / model["alone_p50"], 2),
        }
    return out


def goals_met(ratio: dict, runs: dict) -> dict:
    met: dict[str, object] = {"explained_over_unexplained_rps": (
        ratio["explained_over_unexplained_rps"] >= GOALS["explained_over_unexplained_rps"])}
    for name, run in runs.items():
        met[name] = {
            "p99_over_p50": ratio[name]["p99_over_p50"] <= GOALS["p99_over_p50"],
            "http_over_in_process_p50": (
                ratio[name]["http_over_in_process_p50"] <= GOALS["http_over_in_process_p50"]),
            "zero_errors": run["errors"] == 0,
            "rss_growth": run["rss_growth_pct"] <= GOALS["rss_growth_pct"],
        }
    return met


if __name__ == "__main__":
    sys.exit(main())
