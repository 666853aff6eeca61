"""Benchmark: how the platform's cost grows with the shop (issue 17's cost curve).

For each size factor f of ``--sizes`` (default 1, 4, 16), a synthetic shop of base x sqrt(f)
shoppers, items and days (so about f times the events; base: the demo's 500 shoppers, 400 items,
30 days) is generated and run through the pipeline's own steps: ingest (land, validate, curate),
features, each baseline (popularity; EASE with its λ choice), training one candidate (fit,
evaluation, explanations, MLflow logging), packaging (BentoML model and Bento) and serving (p50 of
in-process single-shopper ``recommend`` calls on the logged model). Each stage runs in its own
process, so its peak RSS (``getrusage`` of that process and its children, reported by the process
itself) is its own; its ``seconds`` are its work after its imports (``process_seconds`` the whole
process, imports included).

Prints one JSON object: per size the shop and, per stage, seconds and peak RSS in MiB; the growth
exponent of each stage's time between consecutive sizes, log(t2/t1) / log(n2/n1) with n the
curated events; and the issue's checks (exponent <= 1.3 between the two largest sizes, peak RSS
under half the machine's memory). A stage that fails ends that size's run and is reported with
its error: that is where one machine ends. Settings come from the environment as usual
(``SHOPREC_TRAIN_CONFIG``, ``SHOPREC_EASE_MAX_ITEMS``, ...); data, MLflow store and BentoML store
live in a fresh work directory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contracts.progress import Progress, report  # noqa: E402

BASE = {"users": 500, "items": 400, "days": 30}
STAGES = ("ingest", "features", "baseline_popularity", "baseline_ease", "train", "package",
          "serve")
EXPONENT_LIMIT = 1.3
SERVE_CALLS = 200
PSEUDONYM_KEY = "scale-bench-key"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,4,16",
                        help="size factors, comma-separated (events grow about linearly)")
    parser.add_argument("--work", type=Path, help="keep the shops and stores here")
    parser.add_argument("--stage-timeout", type=float, default=3600.0, help="seconds per stage")
    parser.add_argument("--stage", choices=("generate", *STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--factor", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--state", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:  # one stage, in its own process: print what later stages need
        print(json.dumps(run_stage(args.stage, args.work, args.factor, json.loads(args.state))))
        return 0
    try:
        factors = sorted({float(f) for f in args.sizes.split(",")})
    except ValueError:
        parser.error(f"--sizes takes numbers separated by commas, not {args.sizes!r}")
    if not factors or min(factors) <= 0:
        parser.error("--sizes must be positive")
    from pipelines.cli.progress import progress_bars

    # Bars on stderr when a person watches it; stdout carries only the JSON.
    with progress_bars(sys.stderr.isatty()) as progress:
        if args.work is not None:
            print(json.dumps(curve(factors, args.work, args.stage_timeout, progress)))
            return 0
        with tempfile.TemporaryDirectory(prefix="shoprec-scale-") as tmp:
            print(json.dumps(curve(factors, Path(tmp), args.stage_timeout, progress)))
    return 0


def shop_size(factor: float) -> dict[str, int]:
    """Base x sqrt(factor) shoppers, items and days: about ``factor`` times the events."""
    return {k: max(1, round(v * math.sqrt(factor))) for k, v in BASE.items()}


def curve(factors: list[float], work: Path, timeout: float,
          progress: Progress | None = None) -> dict[str, Any]:
    sizes = []
    for factor in factors:
        folder = work / f"x{factor:g}"
        folder.mkdir(parents=True, exist_ok=True)
        sizes.append(one_size(factor, folder, timeout, progress))
    memory = machine_memory_mib()
    exponents = {
        f"x{a['factor']:g}->x{b['factor']:g}": growth(a, b) for a, b in pairwise(sizes)
    }
    largest = list(exponents.values())[-1] if exponents else {}
    peak = max((s.get("peak_rss_mib", 0.0) for size in sizes for s in size["stages"].values()),
               default=0.0)
    return {
        "benchmark": "scale",
        "machine": {"cpus": os.cpu_count(), "memory_mib": memory},
        "base": BASE,
        "sizes": sizes,
        "growth_exponent": exponents,
        "checks": {
            "exponent_limit": EXPONENT_LIMIT,
            "stages_over_limit_between_largest": sorted(
                s for s, e in largest.items() if e is not None and e > EXPONENT_LIMIT),
            "peak_rss_mib": peak,
            "peak_rss_under_half_memory": peak < memory / 2,
            "completed_every_stage": all(s.get("error") is None for s in sizes),
        },
    }


def one_size(factor: float, folder: Path, timeout: float,
             progress: Progress | None = None) -> dict[str, Any]:
    """Every stage at one size, each in its own process, until the first failure."""
    size: dict[str, Any] = {"factor": factor, **shop_size(factor), "stages": {}, "error": None}
    state: dict[str, Any] = {}
    stages = ("generate", *STAGES)
    for done, stage in enumerate(stages):
        report(progress, f"scale x{factor:g}: stages", done, len(stages))
        measured = run_child(stage, folder, factor, state, timeout)
        if "error" in measured:
            size["error"] = f"{stage}: {measured['error']}"
            break
        state |= measured.pop("outputs")
        if stage == "generate":
            size["generate_seconds"] = measured["seconds"]
        else:
            size["stages"][stage] = measured
    report(progress, f"scale x{factor:g}: stages", len(stages), len(stages))
    size["events"] = state.get("events")
    size["serve_p50_ms"] = state.get("p50_ms")
    return size


def run_child(stage: str, folder: Path, factor: float, state: dict[str, Any],
              timeout: float) -> dict[str, Any]:
    """Run one stage in a child process: its wall time, its own peak RSS and its outputs."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "SHOPREC_TRACKING_URI",
                        "SHOPREC_DATA_DIR", "BENTOML_HOME")}
    env["SHOPREC_PSEUDONYM_KEY"] = PSEUDONYM_KEY  # packaging imports the service, which checks
    command = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--work",
               str(folder), "--factor", str(factor), "--state", json.dumps(state)]
    log = folder / f"{stage}.log"
    started = time.perf_counter()
    with log.open("w") as stderr:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env,
                                 cwd=REPO, text=True)
        try:
            out, _ = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            return {"error": f"over {timeout:g} s (log: {log})"}
    process_seconds = time.perf_counter() - started
    if child.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {child.returncode}: {tail[0][:300]} (log: {log})"}
    report = json.loads(out.strip().splitlines()[-1])
    return {"seconds": report.pop("seconds"), "process_seconds": round(process_seconds, 2),
            "peak_rss_mib": report.pop("peak_rss_mib"), "outputs": report}


def growth(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float | None]:
    """Per stage: log(t_b / t_a) / log(n_b / n_a), n the events (None when unmeasured); and
    the same for the serving p50."""
    if not a.get("events") or not b.get("events") or a["events"] == b["events"]:
        return {}
    ratio = math.log(b["events"] / a["events"])
    out: dict[str, float | None] = {}
    for stage in STAGES:
        ta, tb = (s["stages"].get(stage, {}).get("seconds") for s in (a, b))
        out[stage] = round(math.log(tb / ta) / ratio, 2) if ta and tb else None
    ta, tb = a.get("serve_p50_ms"), b.get("serve_p50_ms")  # the serve stage loads the model too
    out["serve_p50"] = round(math.log(tb / ta) / ratio, 2) if ta and tb else None
    return out


def machine_memory_mib() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


# ---- the stages, each run by a child process ---------------------------------------------------
def run_stage(stage: str, folder: Path, factor: float, state: dict[str, Any]) -> dict[str, Any]:
    """Import what the stage needs, then time its work alone: importing TensorFlow or MLflow is
    a constant that would flatten the curve at small sizes (it counts in ``process_seconds``)."""
    import importlib
    import resource

    for module in STAGE_IMPORTS.get(stage.removeprefix("baseline_"), ()):
        importlib.import_module(module)
    started = time.perf_counter()
    outputs = STAGE_FUNCTIONS[stage](folder, factor, state)
    seconds = time.perf_counter() - started
    usage = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return outputs | {"seconds": round(seconds, 2),
                      "peak_rss_mib": round(usage / 1024, 1)}  # Linux reports KiB


def _settings(folder: Path):
    from contracts.settings import Settings

    return Settings(data_dir=folder / "data", bentoml_home=folder / "bentoml",
                    pseudonym_key=PSEUDONYM_KEY, dataset="scale")


def _generate(folder: Path, factor: float, state: dict[str, Any]) -> dict[str, Any]:
    from pipelines.data.synthetic_shop import ShopSpec, generate_shop

    shop = generate_shop(folder / "shop", ShopSpec(**shop_size(factor)))
    return {"shop": str(shop.out_dir)}


def _ingest(folder: Path, factor: float, state: dict[str, Any]) -> dict[str, Any]:
    from pipelines.data.ingestor import ingest

    results = ingest([Path(state["shop"])], "synthetic", _settings(folder))
    failed = [r.batch for r in results if r.status == "quarantined"]
    if failed:
        raise RuntimeError(f"quarantined: {failed[:3]}")
    events = sum(r.rows_accepted for r in results if "events" in r.batch)
    return {"events": events}


def _features(folder: Path, factor: float, state: dict[str, Any]) -> dict[str, Any]:
    from pipelines.steps.features import build_features_step

    return {"features_uri": build_features_step(_settings(folder))}


def _baseline(family: str):
    def fit(folder: Path, factor: float, state: dict[str, Any]) -> dict[str, Any]:
        from pipelines.data.features import load_features
        from pipelines.evaluation.splits import K_VALUES, validation_split
        from pipelines.steps.baselines import baseline, baseline_topk

        features = load_features(state["features_uri"])
        split = validation_split(features)
        model, params = baseline(family, _settings(folder), features, split)
        baseline_topk(model, split, max(K_VALUES))
        return {f"{family}_params": {k: v for k, v in params.items() if "ndcg" not in k}}

    return fit


def _train(folder: Path, factor: float, state: dict[str, Any]) -> dict[str, Any]:
    from pipelines.steps.candidate import train_candidate

    result = train_candidate(_settings(folder), state["features_uri"])
    return {"model_uri": result.model_uri, "ndcg@10": result.metrics.get("ndcg@10")}


def _package(folder: Path, factor: float, state: dict[str, Any]) -> dict[str, Any]:
    """Register the model (as the gate would) and build its BentoML model and Bento."""
    import mlflow

    from contracts import registry
    from pipelines.steps.package import package_champion

    settings = _settings(folder)
    registry.configure(settings)
    version = mlflow.register_model(state["model_uri"], settings.model_name).version
    uri = f"models:/{settings.model_name}/{version}"
    return {"bento": package_champion(settings, uri).bento_tag}


def _serve(folder: Path, factor: float, state: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from contracts import registry
    from contracts.pyfunc import load_logged

    registry.configure(_settings(folder))
    recommender = load_logged(state["model_uri"])
    users = recommender.known_users
    picked = [users[i] for i in np.random.default_rng(0).permutation(len(users))[:SERVE_CALLS]]
    recommender.recommend(picked[0], k=10)  # the first call traces the model
    times = []
    for user in picked:
        started = time.perf_counter()
        recommender.recommend(user, k=10)
        times.append(time.perf_counter() - started)
    return {"p50_ms": round(float(np.median(times)) * 1000, 2),
            "p95_ms": round(float(np.quantile(times, 0.95)) * 1000, 2)}


STAGE_IMPORTS = {  # imported before a stage's clock starts
    "ingest": ("pipelines.data.ingestor", "great_expectations"),
    "features": ("pipelines.data.features", "models.fit"),
    "popularity": ("pipelines.steps.baselines",), "ease": ("pipelines.steps.baselines",),
    "train": ("pipelines.steps.candidate",),
    "package": ("pipelines.steps.package", "bentoml", "mlflow"),
    "serve": ("pipelines.evaluation.explain_check", "mlflow", "models.two_stage"),
}
STAGE_FUNCTIONS = {
    "generate": _generate, "ingest": _ingest, "features": _features,
    "baseline_popularity": _baseline("popularity"), "baseline_ease": _baseline("ease"),
    "train": _train, "package": _package, "serve": _serve,
}


if __name__ == "__main__":
    sys.exit(main())
