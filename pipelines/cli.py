"""The ``shoprec`` command line: the same step functions the DAGs and tests call."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pipelines.settings import get_settings
from pipelines.sources import SOURCE_NAMES
from pipelines.sources.base import UsageError

EXIT_OK, EXIT_USAGE, EXIT_QUARANTINED = 0, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like a usage error should
        self.exit(EXIT_USAGE, f"shoprec: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="shoprec", description="Explainable shop recommendations, end to end.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = commands.add_parser("generate", help="write a deterministic synthetic shop")
    gen.add_argument("--out", type=Path, required=True, help="output folder")
    gen.add_argument("--days", type=int, default=30)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--users", type=int, default=500)
    gen.add_argument("--items", type=int, default=400)
    gen.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2026, 1, 1),
                     help="first day (YYYY-MM-DD)")
    gen.add_argument("--faults", action="store_true", help="add a few bad batches for demos")

    ing = commands.add_parser("ingest", help="land, validate and curate batches")
    ing.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    ing.add_argument("--source", required=True, choices=SOURCE_NAMES)
    ing.add_argument("--mapping", help="YAML column mapping (csv source)")
    ing.add_argument("--data-dir", type=Path, help="data directory (default from settings)")
    ing.add_argument("--json", action="store_true", help="one JSON object per batch per line")
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
    except UsageError as err:
        print(f"shoprec: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    raise AssertionError(f"unhandled command {args.command}")


def _generate(args: argparse.Namespace) -> int:
    from pipelines.synthetic_shop import ShopSpec, generate_shop

    shop = generate_shop(
        args.out,
        ShopSpec(days=args.days, seed=args.seed, users=args.users, items=args.items,
                 start=args.start, faults=args.faults),
    )
    print(f"wrote {len(shop.event_files)} event files, catalogue and customers to {shop.out_dir}")
    return EXIT_OK


def _ingest(args: argparse.Namespace) -> int:
    from pipelines.ingest import ingest

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    settings = get_settings()
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


if __name__ == "__main__":
    sys.exit(main())
