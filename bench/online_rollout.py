"""Benchmark: issue 26's online goals, end to end on the real endpoint with simulated shoppers.

A synthetic shop (``shoprec generate``, ``--users`` shoppers: the default canary share of 0.1
needs about 1,000 shoppers for the read-out's 100 a side) is ingested and trained on
(``shoprec train``, the ``--train-grid``, by default one candidate) three times into one MLflow
store: as generated (``good``), with every event's item id and price permuted among the events
(``shuffled``: trained on shuffled labels), and with ``--partly-shuffled`` of them permuted
(``partly``: a subtly worse model). The aliases are then set by hand (``contracts.registry``),
since the gate would promote neither of the worse ones.

For each canary configuration of ``--configs`` (``mode:share``) each case runs on a freshly
started ``shoprec serve`` (its own local directory: the shopper store as ingested, empty traffic
and outcome logs, so no scenario sees another's feedback):

- ``worse``: good stable, shuffled in canary; a working read-out rolls it back;
- ``better``: shuffled stable, good in canary; it passes;
- ``subtle``: good stable, partly shuffled in canary; rolled back if the shoppers suffice.

``pipelines.steps.rollout.advance(settings, "canary", wait_s=--wait)`` runs in a thread (polling
the endpoint every 0.5 s) while ``shoprec simulate`` sends every shopper once (seeded order,
``--concurrency`` visits in flight); it stops at the verdict, or 5 s after the last shopper
(undecided). ``bench/online_report.py`` turns each scenario into figures (the verdict, which
rule decided, seconds, shoppers served and shoppers in the read-out, requests, rates; a replay
of the endpoint's logs at lower ``min_shoppers`` floors) and the ratios interleave / split.

The latency rules and the candidate timeout are relaxed (as in the rollout tests) unless
``--production-latency-rules``: on a shared 2-core machine a noisy p95 would otherwise decide
before the outcomes do, and this measures the outcome rule. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.online_report import GOAL_SECONDS, report, summarise  # noqa: E402
from contracts.launch import stop  # noqa: E402

SHOPREC = str(Path(sys.executable).with_name("shoprec"))
KEY = "online-rollout-bench-key"
RELAXED = {"SHOPREC_ROLLOUT_MAX_P95_RATIO": "1000", "SHOPREC_ROLLOUT_MAX_P99_RATIO": "1000",
           "SHOPREC_ROLLOUT_TIMEOUT_MS": "10000"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000, help="shoppers in the shop")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7, help="the shop's and the shuffle's seed")
    parser.add_argument("--sim-seed", type=int, default=0, help="the shoppers' order and dice")
    parser.add_argument("--visits-per-shopper", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--wait", type=float, default=GOAL_SECONDS, help="canary stage seconds")
    parser.add_argument("--configs", default="split:0.1,split:0.5,interleave:0.1,interleave:0.5")
    parser.add_argument("--cases", default="worse,better,subtle", help=", ".join(CASES))
    parser.add_argument("--partly-shuffled", type=float, default=0.5, help="share of the "
                        "events shuffled for the subtle case's model (0: no subtle case)")
    parser.add_argument("--train-grid", default='[{}]', help="SHOPREC_TRAIN_GRID for both")
    parser.add_argument("--train-config", default="{}", help="SHOPREC_TRAIN_CONFIG for both")
    parser.add_argument("--min-shoppers", type=int, help="SHOPREC_ROLLOUT_MIN_SHOPPERS "
                        "(default: the product's)")
    parser.add_argument("--outcome", choices=("view", "add_to_cart", "purchase"),
                        help="SHOPREC_ROLLOUT_OUTCOME (default: the product's)")
    parser.add_argument("--production-latency-rules", action="store_true")
    parser.add_argument("--work", type=Path, help="keep everything here; reuses trained models")
    args = parser.parse_args()
    configs = [(m, float(s)) for m, s in (c.split(":") for c in args.configs.split(","))]
    work = args.work or Path(tempfile.mkdtemp(prefix="shoprec-online-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        prepared = prepare(work, args)
        cases = [c for c in args.cases.split(",") if c != "subtle" or args.partly_shuffled > 0]
        scenarios = [run_scenario(work, prepared, args, mode, share, case)
                     for mode, share in configs for case in cases]
        from contracts.settings import Settings

        defaults = Settings(pseudonym_key=KEY).rollout
        rules = {"outcome": args.outcome or defaults.outcome, "margin": defaults.outcome_margin,
                 "min_shoppers": args.min_shoppers or defaults.min_shoppers,
                 "min_requests": defaults.min_requests,
                 "latency_rules": "production" if args.production_latency_rules else
                 "relaxed (p95/p99 ratio 1000, timeout 10 s)"}
        simulator = {"visits_per_shopper": args.visits_per_shopper,
                     "concurrency": args.concurrency, "seed": args.sim_seed}
        print(json.dumps(report(prepared, scenarios, rules, simulator), indent=2, default=str))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


# ---- the shop and the two models ---------------------------------------------------------------
def _shoprec(*args: str, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run([SHOPREC, *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode not in ok:
        raise SystemExit(f"shoprec {args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def _env(work: Path, **extra: str) -> dict[str, str]:
    return os.environ | {"SHOPREC_PSEUDONYM_KEY": KEY,
                         "SHOPREC_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"} | extra


def shuffle_events(raw: Path, out: Path, share: float, seed: int) -> int:
    """A copy of the generated shop in which ``share`` of the events, drawn at random, have their
    (item id, unit price) pairs permuted among themselves: the same shoppers, times, event types
    and item popularity, but those events say nothing about their shopper's taste any more
    (1.0: shuffled labels). The number of events shuffled."""
    shutil.copytree(raw, out)
    files = sorted((out / "events").glob("*.csv"))
    frames = [pd.read_csv(f, dtype=str, keep_default_na=False) for f in files]
    events = pd.concat(frames, ignore_index=True)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(events), round(share * len(events)), replace=False))
    moved = rows[rng.permutation(len(rows))]
    for column in ("item_id", "unit_price"):
        values = events[column].to_numpy().copy()
        values[rows] = values[moved]
        events[column] = values
    start = 0
    for path, frame in zip(files, frames, strict=True):
        events.iloc[start:start + len(frame)].to_csv(path, index=False)
        start += len(frame)
    return len(rows)


def prepare(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Generate the shop and train each model once per work directory (reused when there):
    ``good`` on the shop as generated, ``shuffled`` on shuffled labels, ``partly`` with
    ``--partly-shuffled`` of its events shuffled (the subtle case; 0: none)."""
    marker = work / "prepared.json"
    found = json.loads(marker.read_text()) if marker.is_file() else {}
    raw = work / "raw"
    if not found:
        _shoprec("generate", "--out", str(raw), "--days", str(args.days), "--seed",
                 str(args.seed), "--users", str(args.users), "--items", str(args.items),
                 env=_env(work))
        events = sum(len(pd.read_csv(f, usecols=[0])) for f in (raw / "events").glob("*.csv"))
        found = {"shop": {"users": args.users, "items": args.items, "days": args.days,
                          "events": events, "seed": args.seed}, "models": {},
                 "train_grid": json.loads(args.train_grid),
                 "train_config": json.loads(args.train_config)}
    wanted = {"good": 0.0, "shuffled": 1.0} | (
        {"partly": args.partly_shuffled} if args.partly_shuffled > 0 else {})
    for name, share in wanted.items():
        if name in found["models"]:
            continue
        source, data = (raw, work / "data-good") if share == 0 else (
            work / f"raw-{name}", work / f"data-{name}")
        shuffled = shuffle_events(raw, source, share, args.seed) if share else 0
        env = _env(work, SHOPREC_DATA_DIR=str(data), SHOPREC_TRAIN_GRID=args.train_grid,
                   SHOPREC_TRAIN_CONFIG=args.train_config)
        began = time.perf_counter()
        _shoprec("ingest", str(source), "--source", "synthetic", "--data-dir", str(data),
                 env=env)
        ingested = time.perf_counter()
        trained = json.loads(_shoprec("train", "--data-dir", str(data), "--json", env=env))
        gate = trained["gate"]
        found["models"][name] = {
            "version": str(gate["version"]), "shuffled_share": share,
            "events_shuffled": shuffled, "data_dir": str(data),
            "ingest_seconds": round(ingested - began),
            "train_seconds": round(time.perf_counter() - ingested),
            "gate": f"{gate['metric']} {gate['candidate']:.4f} on its own data; {gate['reason']}"}
        marker.write_text(json.dumps(found))
    return found


# ---- one scenario ----------------------------------------------------------------------------
# case: (stable model, candidate model, the verdict a working read-out should reach)
CASES = {"worse": ("good", "shuffled", "roll_back"), "better": ("shuffled", "good", "pass"),
         "subtle": ("good", "partly", "roll_back")}


def _settings(data: str, local: Path, port: int, token: str, rules: dict):
    from contracts.settings import Settings

    return Settings(data_dir=data, local_dir=local, pseudonym_key=KEY,
                    tracking_uri=f"sqlite:///{Path(data).parent / 'mlflow.db'}", api_token=token,
                    serve_host="127.0.0.1", serve_port=port,
                    **{k.removeprefix("SHOPREC_").lower(): v for k, v in rules.items()})


def _advance(settings, wait: float, out: dict[str, Any]) -> None:
    """The pipeline's canary stage, as the DAG and `shoprec rollout canary` run it."""
    from contracts.registry import CANARY
    from pipelines.steps import rollout

    try:
        result = rollout.advance(settings, CANARY, wait_s=wait,
                                 sleep=lambda s: time.sleep(min(s, 0.5)))
        out.update(verdict="pass", reason=result.reason, figures=result.rollout)
    except rollout.RolledBack as err:
        out.update(verdict="roll_back", reason=str(err), figures=err.figures)
    except rollout.NotEnoughTraffic as err:  # Undecided too
        out.update(verdict="undecided", reason=str(err), figures=None)
    except Exception as err:  # reported, never hidden
        out.update(verdict="error", reason=f"{type(err).__name__}: {err}", figures=None)
    out["at"] = datetime.now(UTC)


def _stage(meta: dict[str, Any]) -> str | None:
    return (meta.get("rollout") or {}).get("stage")


def _traffic(sim: subprocess.Popen, stage: threading.Thread, settings, out: dict) -> dict:
    """Wait for the stage's verdict; when every shopper was served first (the simulator is
    done) and none comes within 5 s, the scenario ends undecided: no more traffic would come.
    The verdict, with the rollback's own moment when the endpoint rolled back."""
    from pipelines.steps.package import endpoint_metadata

    while stage.is_alive() and sim.poll() is None:
        stage.join(0.2)
    stage.join(5.0)
    if stage.is_alive():
        found = (endpoint_metadata(settings).get("rollout") or {})
        return {"verdict": "undecided", "at": datetime.now(UTC), "figures": found,
                "reason": "every shopper served, read-out still undecided: "
                          f"{(found.get('readout') or {}).get('reason')}"}
    found = dict(out)
    event = next((e for e in endpoint_metadata(settings)["rollbacks"]
                  if e["version"] == (found.get("figures") or {}).get("candidate", {}).get(
                      "version")), None)
    if event is not None:
        found["at"] = datetime.fromisoformat(str(event["at"]).replace("Z", "+00:00"))
    return found


def run_scenario(work: Path, prepared: dict[str, Any], args: argparse.Namespace, mode: str,
                 share: float, case: str) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    from contracts import launch, registry
    from pipelines.steps.package import endpoint_metadata

    models, data = prepared["models"], prepared["models"]["good"]["data_dir"]
    stable, candidate = (models[CASES[case][i]]["version"] for i in (0, 1))
    local = work / "scenarios" / f"{mode}-{share:g}-{case}"
    shutil.rmtree(local, ignore_errors=True)
    shutil.copytree(Path(data) / "online", local / "online")  # the store as ingested
    rules = {"SHOPREC_ROLLOUT_CANARY_MODE": mode, "SHOPREC_ROLLOUT_CANARY_SHARE": str(share)}
    rules |= {} if args.production_latency_rules else RELAXED
    if args.min_shoppers is not None:
        rules["SHOPREC_ROLLOUT_MIN_SHOPPERS"] = str(args.min_shoppers)
    if args.outcome is not None:
        rules["SHOPREC_ROLLOUT_OUTCOME"] = args.outcome
    token, port = secrets.token_urlsafe(16), launch.free_port()
    settings = _settings(data, local, port, token, rules)
    name = settings.model_name
    registry.configure(settings)
    registry.mark_stable(name, stable)  # nothing on trial at start-up: the stable model alone
    MlflowClient().set_registered_model_alias(name, registry.CHAMPION, stable)
    env = {k: v for k, v in _env(work).items() if not k.startswith("SHOPREC_")} | {
        "SHOPREC_PSEUDONYM_KEY": KEY, "SHOPREC_TRACKING_URI": settings.mlflow_tracking_uri,
        "SHOPREC_LOCAL_DIR": str(local), "SHOPREC_API_TOKEN": token,
        "SHOPREC_TRAFFIC_FLUSH_SECONDS": "0.5"} | rules
    server = launch.spawn([SHOPREC, "serve", "--host", "127.0.0.1", "--port", str(port),
                           "--data-dir", data], port, local / "serve.log", env, ready="/readyz")
    out: dict[str, Any] = {}
    sim = stage = None
    try:
        MlflowClient().set_registered_model_alias(name, registry.CHAMPION, candidate)
        stage = threading.Thread(target=_advance, args=(settings, args.wait, out), daemon=True)
        stage.start()
        while stage.is_alive() and _stage(endpoint_metadata(settings)) != "canary":
            time.sleep(0.2)
        with (local / "simulate.json").open("w") as log:
            sim = subprocess.Popen(
                [SHOPREC, "simulate", "--data-dir", data, "--endpoint",
                 f"http://127.0.0.1:{port}", "--shoppers", str(prepared["shop"]["users"]),
                 "--visits-per-shopper", str(args.visits_per_shopper), "--seconds",
                 str(args.wait), "--max-requests", "100000", "--seed", str(args.sim_seed),
                 "--concurrency", str(args.concurrency), "--json"], env=env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        result = _traffic(sim, stage, settings, out)
        stop(sim)
        time.sleep(1.5)  # the traffic and outcome logs are flushed every 0.5 s
    finally:
        if sim is not None:
            stop(sim)
        launch.stop(server)
        if stage is not None:
            stage.join(30)  # an undecided stage ends on the stopped endpoint
    return summarise(local, settings, mode, share, case, stable, candidate, result,
                     CASES[case][2], prepared["shop"]["users"])


if __name__ == "__main__":
    raise SystemExit(main())
