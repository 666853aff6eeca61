"""One function per ``shoprec`` command: parse nothing, call the step functions, print."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from pathlib import Path

from contracts.settings import get_settings
from contracts.storage import DataPath
from pipelines.cli.parser import EXIT_DRIFT, EXIT_OK, EXIT_QUARANTINED
from pipelines.cli.progress import progress_bars, wants_bars
from pipelines.data.sources.base import UsageError


def _generate(args: argparse.Namespace) -> int:
    from pipelines.data.synthetic_shop import ShopSpec, generate_shop

    shop = generate_shop(
        args.out,
        ShopSpec(days=args.days, seed=args.seed, users=args.users, items=args.items,
                 start=args.start, faults=args.faults),
    )
    print(f"wrote {len(shop.event_files)} event files, catalogue and customers to {shop.out_dir}")
    return EXIT_OK


def _ingest(args: argparse.Namespace) -> int:
    from pipelines.data.ingest_lock import data_dir_lock
    from pipelines.data.ingestor import ingest

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    settings = get_settings()
    settings.require_pseudonym_key()  # fail closed: no silent development key
    # One ingest at a time: a second one waits.
    with data_dir_lock(settings, args.data_dir), progress_bars(wants_bars(args.json)) as bars:
        results = ingest(args.paths, args.source, settings, mapping=args.mapping,
                         data_dir=args.data_dir, progress=bars)
    for result in results:
        if args.json:
            print(json.dumps(result.to_json(), default=str), flush=True)
        else:
            line = (f"{result.status:<11} {result.batch}  in={result.rows_in} "
                    f"accepted={result.rows_accepted} rejected={result.rows_rejected}")
            print(line + (f"  reason: {result.reason}" if result.reason else ""), flush=True)
    quarantined = any(r.status == "quarantined" for r in results)
    return EXIT_QUARANTINED if quarantined else EXIT_OK


def _progress_to_stderr(active: bool):
    """Keras writes epoch progress to stdout; with --json, stdout carries only the JSON."""
    return contextlib.redirect_stdout(sys.stderr) if active else contextlib.nullcontext()


def _train(args: argparse.Namespace) -> int:
    settings = _settings_for(args.data_dir)
    settings.require_pseudonym_key()
    epochs = {"retrieval_epochs": args.retrieval_epochs, "ranking_epochs": args.ranking_epochs}
    # The flags override settings.train_config, as SHOPREC_TRAIN_CONFIG would: every grid entry
    # trains on top of them, as in the DAG.
    train_config = settings.train_config | {k: v for k, v in epochs.items() if v is not None}
    settings = settings.with_values(train_config=train_config)
    data_dir = settings.data_dir
    if not (data_dir / "curated" / "events").is_dir():
        raise UsageError(f"no curated events under {data_dir}: run `shoprec ingest` first")
    from pipelines.steps.train import train  # TensorFlow: only once there is something to train

    with _progress_to_stderr(args.json), progress_bars(wants_bars(args.json)) as bars:
        result = train(settings, dataset=args.dataset, register=not args.no_register,
                       progress=bars)
    if not result.run_id:  # a non-chief worker of a multi-worker run: the chief reports
        print(f"worker done: trained in step with the chief in {result.train_seconds:.0f}s",
              file=sys.stderr)
    elif args.json:
        print(json.dumps(result.to_json(), default=str))
    else:
        ndcg = result.metrics["ndcg@10"]
        print(f"run {result.run_id}: ndcg@10 {ndcg:.4f} (popularity "
              f"{result.baselines['popularity']['ndcg@10']:.4f}, EASE "
              f"{result.baselines['ease']['ndcg@10']:.4f}); model {result.model_uri}")
        if result.gate:
            print(f"gate: version {result.gate.version} -> {result.gate.alias}: "
                  f"{result.gate.reason}")
    return EXIT_OK


def _settings_for(data_dir: DataPath | None):
    settings = get_settings()
    if data_dir is not None:  # the data dir also holds the default MLflow store
        settings = settings.with_values(data_dir=data_dir)
    return settings


def _evaluate(args: argparse.Namespace) -> int:
    settings = _settings_for(args.data_dir)
    if not (settings.data_dir / "curated" / "events").is_dir():
        raise UsageError(f"no curated events under {settings.data_dir}: run `shoprec ingest` "
                         "first")
    from pipelines.evaluation.gate_window import evaluate_models

    with _progress_to_stderr(args.json):
        try:
            result = evaluate_models(settings, args.model_uri).to_json()
        except LookupError as err:
            raise UsageError(str(err)) from None
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return EXIT_OK


def _explain_check(args: argparse.Namespace) -> int:
    import numpy as np

    from contracts import registry
    from contracts.pyfunc import load_logged
    from pipelines.evaluation.explain_check import explain_check, load_ground_truth

    settings = _settings_for(args.data_dir)
    registry.configure(settings)
    uri = args.model_uri or registry.champion_uri(settings.model_name)
    if uri is None:
        raise UsageError(f"no champion of {settings.model_name!r} yet: run `shoprec train` first")
    with _progress_to_stderr(args.json):
        recommender = load_logged(uri)
        users = recommender.known_users
        picked = np.random.default_rng(0).permutation(len(users))[: args.users]
        figures = explain_check(recommender, [users[i] for i in picked], k=args.k,
                                ground_truth=load_ground_truth(settings.data_dir))
    figures["model_uri"] = uri
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))
    return EXIT_OK


def _benchmark(args: argparse.Namespace) -> int:
    from pipelines.evaluation.benchmark import benchmark

    if (args.dataset is None) == (args.protocol is None):
        raise UsageError("give --dataset (a built-in protocol) or --protocol with --data-dir "
                         "(an ingested data directory)")
    if args.protocol is not None and args.data_dir is None:
        raise UsageError("--protocol needs --data-dir: the ingested data directory to split")
    if args.protocol is not None and not (args.data_dir / "curated" / "events").is_dir():
        raise UsageError(f"no curated events under {args.data_dir}: run `shoprec ingest` first")
    with _progress_to_stderr(args.json), progress_bars(wants_bars(args.json)) as bars:
        result = benchmark(args.dataset, args.data_dir, args.protocol, args.seed, progress=bars)
    print(json.dumps(result, default=float) if args.json else json.dumps(result, indent=2))
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    """Replace this process with ``bentoml serve`` (foreground; signals reach the server)."""
    import os

    from contracts.bento_store import server_home
    from contracts.settings import PROJECT_ROOT
    from pipelines.steps.package import SERVICE

    settings = _settings_for(args.data_dir)
    settings.require_pseudonym_key()
    host, port = args.host or settings.serve.host, args.port or settings.serve.port
    problem = settings.with_values(serve_insecure=False).open_access_problem(host)
    if problem and not (args.insecure or settings.serve.insecure):
        raise UsageError(problem)
    # A BentoML home of its own (the store linked in): starting a server empties its home's
    # metrics folder. Few malloc arenas: glibc otherwise grows one per request thread.
    home = server_home(settings.bentoml_store,
                       settings.bentoml_store.with_name("bentoml-servers") / str(port))
    env = {"MALLOC_ARENA_MAX": "2"} | os.environ | {
        "SHOPREC_DATA_DIR": str(settings.data_dir), "BENTOML_HOME": str(home)}
    if problem:  # --insecure: the operator chose an open endpoint; say what that means
        print(f"shoprec serve: WARNING: listening on {host} without an API token: every route, "
              "/admin/reload included, is open to anyone who can reach it", file=sys.stderr,
              flush=True)
        env["SHOPREC_SERVE_INSECURE"] = "true"
    if args.model_uri:
        env["SHOPREC_MODEL_URI"] = args.model_uri
    bentoml = Path(sys.executable).with_name("bentoml")
    command = [str(bentoml), "serve", SERVICE, "--host", host, "--port", str(port),
               "--working-dir", str(PROJECT_ROOT)]
    model = args.model_uri or settings.model_uri or f"models:/{settings.model_name}@champion"
    print(f"shoprec serve: listening on http://{host}:{port} (model {model}; "
          f"docs at /docs, probes /healthz /readyz)", flush=True)
    os.execve(command[0], command, env)
    return EXIT_OK  # not reached: execve replaced this process


def _package(args: argparse.Namespace) -> int:
    from pipelines.steps.package import package_champion

    result = package_champion(_settings_for(args.data_dir), args.model_uri)
    print(json.dumps(result.to_json()))
    return EXIT_OK


def _rollout(args: argparse.Namespace) -> int:
    """Exit 1 with one line when the stage did not pass (rolled back, too little traffic) or
    the endpoint or registry cannot say."""
    from pipelines.steps import rollout
    from pipelines.steps.package import EndpointUnavailable

    if args.wait is not None and not (args.wait >= 0 and math.isfinite(args.wait)):
        raise UsageError(f"--wait must be a number of seconds >= 0, not {args.wait}")
    settings = _settings_for(args.data_dir)
    try:
        if args.action == "status":
            result = rollout.status(settings)
        elif args.action == "rollback":
            result = rollout.roll_back(settings, args.reason).to_json()
        else:
            result = rollout.advance(settings, args.action, args.wait).to_json()
    except (rollout.RolledBack, rollout.NotEnoughTraffic, EndpointUnavailable,
            LookupError) as err:
        print(f"shoprec rollout: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, default=str) if args.json else json.dumps(result, indent=2,
                                                                         default=str))
    return EXIT_OK


def _score(args: argparse.Namespace) -> int:
    from pipelines.data.zones import private_dir
    from pipelines.steps.score import read_users, score

    settings = _settings_for(args.data_dir)
    settings.require_pseudonym_key()
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder: give the Parquet file to write")
    try:
        private_dir(args.out.parent)
    except OSError as err:
        raise UsageError(f"cannot write --out {args.out}: {err.strerror}") from None
    users = read_users(args.users, settings) if args.users is not None else None
    with _progress_to_stderr(args.json):
        result = score(settings, args.out, users, k=args.k, model_uri=args.model_uri,
                       locale=args.locale)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        where = f" and table {result.table}" if result.table else ""
        print(f"scored {result.shoppers} shoppers ({result.cold_start} cold start) with model "
              f"v{result.model_version}: {result.rows} rows to {result.path}{where}")
    return EXIT_OK


def _drift(args: argparse.Namespace) -> int:
    """Exit 0 with the report's folder; 4 when a threshold is breached (the warnings on
    stderr), so a cron job or CI step can act on it."""
    from pipelines.steps.drift import NothingToCompare, drift_report

    try:
        result = drift_report(_settings_for(args.data_dir))
    except NothingToCompare as err:
        raise UsageError(str(err)) from None
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(f"drift report: {result.folder} (MLflow run {result.run_id}); reference: "
              f"{result.reference}")
        for part in result.parts:
            print(f"  {part.name}: " + (part.note or f"{part.drift_share:.0%} of columns "
                                        f"drifted {part.drifted or ''}".rstrip()))
    for warning in result.warnings:
        print(f"shoprec: warning: {warning}", file=sys.stderr)
    return EXIT_DRIFT if result.warnings else EXIT_OK


def _simulate(args: argparse.Namespace) -> int:
    """Exit 0 when the visits ran (done, or stopped at the time limit or request cap); 1 with
    one line when the endpoint refused or could not be reached; 2 for a non-loopback URL."""
    from pipelines.simulation.driver import SimulationSpec
    from pipelines.steps.simulate import simulate_shoppers

    spec = SimulationSpec(endpoint=args.endpoint or "", shoppers=args.shoppers,
                          seconds=args.seconds, visits_per_shopper=args.visits_per_shopper,
                          seed=args.seed, k=args.k, explain=args.explain,
                          concurrency=args.concurrency, max_requests=args.max_requests)
    result = simulate_shoppers(_settings_for(args.data_dir), spec)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        t = result.totals
        print(f"{result.visits} visits of {result.shoppers} shoppers in "
              f"{result.elapsed_seconds:.1f}s ({result.stopped}): {t.impressions} items shown, "
              f"{t.views} clicked, {t.carts} carted, {t.purchases} bought ({t.revenue:.2f}); "
              f"feedback {result.feedback_posted} posted, {result.feedback_refused} refused")
        for version, counts in sorted(result.by_version.items()):
            print(f"  model v{version}: {counts.requests} lists, {counts.views} clicks, "
                  f"{counts.purchases} purchases")
    if result.failed:
        print(f"shoprec simulate: {result.stopped}", file=sys.stderr)
        return 1
    return EXIT_OK




COMMANDS = {"generate": _generate, "ingest": _ingest, "train": _train, "benchmark": _benchmark,
            "evaluate": _evaluate, "explain-check": _explain_check, "serve": _serve,
            "package": _package, "rollout": _rollout, "score": _score, "drift": _drift,
            "simulate": _simulate}
