"""The ``shoprec`` command line: the same step functions the DAGs and tests call."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from contracts.settings import MissingPseudonymKey, get_settings
from contracts.storage import DataPath, location
from pipelines.data.sources import SOURCE_NAMES
from pipelines.data.sources.base import UsageError

EXIT_OK, EXIT_USAGE, EXIT_QUARANTINED, EXIT_DRIFT = 0, 2, 3, 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like a usage error should
        self.exit(EXIT_USAGE, f"shoprec: error: {message}\n")


DATA_DIR_HELP = "data directory: a folder or an object-store URI such as s3://bucket/prefix " \
    "(default from settings)"


def data_dir_arg(value: str) -> DataPath:
    """``--data-dir`` as ``SHOPREC_DATA_DIR`` reads it: a folder, or a URI (``s3://...``)."""
    try:
        return location(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shoprec")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="shoprec", description="Explainable shop recommendations, end to end.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("--version", action="version", version=f"shoprec {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = commands.add_parser("generate", help="write a deterministic synthetic shop")
    gen.add_argument("--out", type=Path, required=True, help="output folder")
    gen.add_argument("--days", type=int, default=30,
                     help="days of events, one file each (default %(default)s)")
    gen.add_argument("--seed", type=int, default=7,
                     help="same seed, same shop, byte for byte (default %(default)s)")
    gen.add_argument("--users", type=int, default=500, help="shoppers (default %(default)s)")
    gen.add_argument("--items", type=int, default=400,
                     help="catalogue items (default %(default)s)")
    gen.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 1),
                     help="first day, YYYY-MM-DD (default %(default)s)")
    gen.add_argument("--faults", action="store_true", help="add a few bad batches for demos")

    ing = commands.add_parser("ingest", help="land, validate and curate batches")
    ing.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    ing.add_argument("--source", required=True, choices=SOURCE_NAMES)
    ing.add_argument("--mapping", help="YAML column mapping (csv source)")
    ing.add_argument("--data-dir", type=data_dir_arg, help=DATA_DIR_HELP)
    ing.add_argument("--json", action="store_true", help="one JSON object per batch per line")

    trn = commands.add_parser("train", help="train the candidate grid, log, evaluate and gate "
                              "the best, as the pipeline DAG does")
    trn.add_argument("--data-dir", type=data_dir_arg, help=DATA_DIR_HELP)
    trn.add_argument("--dataset", help="names the MLflow experiment (default from settings: "
                     "synthetic)")
    trn.add_argument("--retrieval-epochs", type=int, help="over settings.train_config, for every "
                     "candidate")
    trn.add_argument("--ranking-epochs", type=int, help="over settings.train_config, for every "
                     "candidate")
    trn.add_argument("--no-register", action="store_true", help="log the runs, skip the gate")
    trn.add_argument("--json", action="store_true", help="print the result as JSON")

    evl = commands.add_parser("evaluate", help="score models and the baselines on the current "
                              "evaluation window, with 95 %% bootstrap intervals, as the gate does")
    evl.add_argument("--data-dir", type=data_dir_arg, help=DATA_DIR_HELP)
    evl.add_argument("--model-uri", action="extend", nargs="+", default=[], metavar="URI",
                     help="MLflow model URI(s) to score (default: the champion and the latest "
                     "challenger)")
    evl.add_argument("--json", action="store_true", help="print one JSON object")

    exp = commands.add_parser("explain-check", help="faithfulness suite for explanations")
    exp.add_argument("--data-dir", type=data_dir_arg, help=DATA_DIR_HELP)
    exp.add_argument("--model-uri", help="MLflow model URI (default: the registry's champion)")
    exp.add_argument("--users", type=int, default=40, help="how many users to sample")
    exp.add_argument("--k", type=int, default=10)
    exp.add_argument("--json", action="store_true", help="print one JSON object")

    bench = commands.add_parser("benchmark", help="fixed-protocol comparison with baselines")
    bench.add_argument("--dataset", choices=("ml-100k", "online-retail"),
                       help="a built-in protocol on its shared data set")
    bench.add_argument("--data-dir", type=Path, help="with --dataset: folder of the raw data "
                       "set; with --protocol: an ingested data directory")
    bench.add_argument("--protocol", choices=("random", "temporal"),
                       help="split an ingested --data-dir: random 80/20 interactions, or the "
                       "last 20 %% of time")
    bench.add_argument("--seed", type=int, default=42, help="seed of the random protocol")
    bench.add_argument("--json", action="store_true", help="print one JSON object")

    srv = commands.add_parser("serve", help="run the HTTP endpoint in the foreground")
    srv.add_argument("--host", help="address to bind (default from settings: 127.0.0.1)")
    srv.add_argument("--port", type=int, help="port (default from settings: 3000)")
    srv.add_argument("--model-uri", help="serve this model (default: the registry's champion)")
    srv.add_argument("--data-dir", type=data_dir_arg, help=DATA_DIR_HELP)
    srv.add_argument("--insecure", action="store_true", help="listen on a non-loopback address "
                     "without SHOPREC_API_TOKEN: every route open to the network (warns)")

    pkg = commands.add_parser("package", help="champion into the BentoML store, and its Bento")
    pkg.add_argument("--model-uri", help="MLflow model URI (default: the registry's champion)")
    pkg.add_argument("--data-dir", type=data_dir_arg, help=DATA_DIR_HELP)

    rol = commands.add_parser("rollout", help="move the new champion through shadow, canary and "
                              "full on the running endpoint, or roll it back")
    rol.add_argument("action", choices=("status", "shadow", "canary", "full", "rollback"))
    rol.add_argument("--wait", type=float, metavar="SECONDS", help="how long shadow or canary "
                     "is watched (default from settings: rollout_stage_seconds)")
    rol.add_argument("--reason", default="rolled back by an operator",
                     help="rollback: the reason tagged on the version")
    rol.add_argument("--data-dir", type=data_dir_arg, help=DATA_DIR_HELP)
    rol.add_argument("--json", action="store_true", help="print one JSON object")

    sco = commands.add_parser("score", help="batch recommendations with reasons, as the "
                              "endpoint answers, to Parquet (and a database table if configured)")
    sco.add_argument("--data-dir", type=data_dir_arg, help=DATA_DIR_HELP)
    sco.add_argument("--users", type=Path, metavar="FILE", help="raw customer ids, one per line "
                     "or a .csv with a user_id column (default: every shopper the model knows)")
    sco.add_argument("--out", type=Path, required=True, metavar="PATH", help="Parquet file")
    sco.add_argument("--k", type=int, choices=range(1, 101), metavar="1..100",
                     help="items per shopper (default from settings: 10)")
    sco.add_argument("--model-uri", help="MLflow model URI (default: the registry's champion)")
    sco.add_argument("--json", action="store_true", help="print one JSON object")

    dri = commands.add_parser("drift", help="drift and skew report (Evidently): new data and "
                              "served traffic against the champion's training data")
    dri.add_argument("--data-dir", type=data_dir_arg, help=DATA_DIR_HELP)
    dri.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "generate":
            return _generate(args)
        if args.command == "ingest":
            return _ingest(args)
        if args.command == "train":
            return _train(args)
        if args.command == "benchmark":
            return _benchmark(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "explain-check":
            return _explain_check(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "package":
            return _package(args)
        if args.command == "rollout":
            return _rollout(args)
        if args.command == "score":
            return _score(args)
        if args.command == "drift":
            return _drift(args)
    except (UsageError, MissingPseudonymKey) as err:
        print(f"shoprec: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    raise AssertionError(f"unhandled command {args.command}")


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
    from pipelines.data.ingestor import ingest

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    settings = get_settings()
    settings.require_pseudonym_key()  # fail closed: no silent development key
    results = ingest(args.paths, args.source, settings, mapping=args.mapping,
                     data_dir=args.data_dir)
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
    settings = settings.model_copy(update={"train_config": train_config})
    data_dir = settings.data_dir
    if not (data_dir / "curated" / "events").is_dir():
        raise UsageError(f"no curated events under {data_dir}: run `shoprec ingest` first")
    from pipelines.steps.train import train  # TensorFlow: only once there is something to train

    with _progress_to_stderr(args.json):
        result = train(settings, dataset=args.dataset, register=not args.no_register)
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
        settings = settings.model_copy(update={"data_dir": data_dir})
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
    with _progress_to_stderr(args.json):
        result = benchmark(args.dataset, args.data_dir, args.protocol, args.seed)
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
    host, port = args.host or settings.serve_host, args.port or settings.serve_port
    problem = settings.model_copy(update={"serve_insecure": False}).open_access_problem(host)
    if problem and not (args.insecure or settings.serve_insecure):
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
        result = score(settings, args.out, users, k=args.k, model_uri=args.model_uri)
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


if __name__ == "__main__":
    sys.exit(main())
