"""The ``shoprec`` command line's arguments: every option with its help and default."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from contracts.storage import DataPath, location
from pipelines.data.sources import SOURCE_NAMES

EXIT_OK, EXIT_USAGE, EXIT_QUARANTINED, EXIT_DRIFT = 0, 2, 3, 4


class _Help(argparse.HelpFormatter):
    """Every option's help ends with its default, where it has one (not None, off or empty:
    those say "default from settings" in words where it matters)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        if "%(default)" in text or any(default is v for v in (None, False, argparse.SUPPRESS)) \
                or default == []:  # (0 is a default to show: identity, not ==)
            return text
        return f"{text} (default %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Help)  # the subcommands' parsers too
        super().__init__(*args, **kwargs)

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
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr, "
                        "and keep TensorFlow's and MLflow's notes and warnings (hidden otherwise)")
    parser.add_argument("--version", action="version", version=f"shoprec {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = commands.add_parser("generate", help="write a deterministic synthetic shop")
    gen.add_argument("--out", type=Path, required=True, help="output folder")
    gen.add_argument("--days", type=int, default=30,
                     help="days of events, one file each")
    gen.add_argument("--seed", type=int, default=7,
                     help="same seed, same shop, byte for byte")
    gen.add_argument("--users", type=int, default=500, help="shoppers")
    gen.add_argument("--items", type=int, default=400,
                     help="catalogue items")
    gen.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 1),
                     help="first day, YYYY-MM-DD")
    gen.add_argument("--faults", action="store_true", help="add a few bad batches for demos")

    ing = commands.add_parser("ingest", help="land, validate and curate batches")
    ing.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    ing.add_argument("--source", required=True, choices=SOURCE_NAMES,
                     help="which adapter reads the files (docs/data.md)")
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
    exp.add_argument("--k", type=int, default=10, help="items per list checked")
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
    rol.add_argument("action", choices=("status", "shadow", "canary", "full", "rollback"),
                     help="show the stages, move to one, or roll the new champion back")
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
    sco.add_argument("--locale", help="language of the reasons, e.g. zh-CN (default: the shop's, "
                     "SHOPREC_SHOP_LOCALE; one without a catalog in contracts/locales is refused)")
    sco.add_argument("--json", action="store_true", help="print one JSON object")

    dri = commands.add_parser("drift", help="drift and skew report (Evidently): new data and "
                              "served traffic against the champion's training data")
    dri.add_argument("--data-dir", type=data_dir_arg, help=DATA_DIR_HELP)
    dri.add_argument("--json", action="store_true", help="print one JSON object")

    sim = commands.add_parser("simulate", help="the synthetic shop's shoppers on a loopback "
                              "endpoint: each visit asks /recommend, then posts the clicks, carts "
                              "and purchases their planted tastes lead to to /feedback")
    sim.add_argument("--data-dir", type=data_dir_arg, help="the synthetic shop: an ingested data "
                     "directory or a folder `shoprec generate` wrote (default from settings)")
    sim.add_argument("--endpoint", metavar="URL", help="base URL, loopback only (default from "
                     "settings: http://127.0.0.1:3000)")
    sim.add_argument("--shoppers", type=int, default=50, help="distinct shoppers sampled")
    sim.add_argument("--visits-per-shopper", type=int, default=1, help="visits of each")
    sim.add_argument("--seconds", type=float, default=60.0, help="stop after this long, visits "
                     "left or not")
    sim.add_argument("--max-requests", type=int, default=10_000, help="stop after this many "
                     "HTTP requests, both routes, at most 100000")
    sim.add_argument("--seed", type=int, default=0, help="same seed, same shoppers and, against "
                     "the same answers, the same events")
    sim.add_argument("--k", type=int, default=10, choices=range(1, 101), metavar="1..100",
                     help="items per list")
    sim.add_argument("--explain", action="store_true", help="ask for explanations too (slower)")
    sim.add_argument("--concurrency", type=int, default=4, help="visits in flight")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    return parser
