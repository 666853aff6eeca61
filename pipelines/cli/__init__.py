"""The ``shoprec`` command line: the same step functions the DAGs and tests call.

``parser`` holds the arguments, ``commands`` one function per command.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from contracts.settings import MissingPseudonymKey
from pipelines.cli import commands
from pipelines.cli.parser import EXIT_USAGE, build_parser
from pipelines.cli.progress import quiet_libraries
from pipelines.data.sources.base import UsageError


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    quiet_libraries(args.verbose)  # before any command imports TensorFlow
    try:
        return commands.COMMANDS[args.command](args)
    except (UsageError, MissingPseudonymKey) as err:
        print(f"shoprec: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
