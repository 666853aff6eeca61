"""Benchmark: ingest and validate every Online Retail day into a fresh data directory.

Prints one JSON object: total seconds, rows per second, per-batch median and p95 seconds, the
batch counts by status, and the floor it is measured against in the same run: pandas parsing the
same files (``pd.read_csv``), each right after its batch is ingested so that both see the same
load on a shared machine, and the ingest's multiple of it (goal: at most 30x).
Needs ../shared/datasets/online-retail; exits 0 with a message without it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DAYS = REPO.parent / "shared" / "datasets" / "online-retail" / "by-day"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days-dir", type=Path, default=DEFAULT_DAYS)
    parser.add_argument("--limit", type=int, help="only the first N days")
    args = parser.parse_args()
    if not args.days_dir.is_dir():
        print(json.dumps({"skipped": f"{args.days_dir} is absent"}))
        return 0

    import pandas as pd

    from contracts.settings import Settings
    from pipelines.data.ingestor import Ingestor
    from pipelines.data.sources import get_source

    files = sorted(args.days_dir.glob("*.csv"))[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ingestor = Ingestor(Settings(data_dir=Path(tmp) / "data", pseudonym_key="bench-key"))
        setup = time.perf_counter() - started
        source = get_source("online-retail")
        batches = source.discover(files)
        per_batch: list[float] = []
        parse = 0.0
        mark = time.perf_counter()

        def progress(task: str, done: int, total: int) -> None:
            """After each group: its batches' share of the time, then pandas on their files."""
            nonlocal parse, mark
            new = batches[len(per_batch):done]
            per_batch.extend([(time.perf_counter() - mark) / len(new)] * len(new))
            parse += _timed(lambda: [pd.read_csv(f) for b in new for f in b.files])
            mark = time.perf_counter()

        results = ingestor.ingest_batches(source, batches, progress)
        total = time.perf_counter() - started - parse
    rows = sum(r.rows_in for r in results)
    statuses: dict[str, int] = {}
    for result in results:
        statuses[result.status] = statuses.get(result.status, 0) + 1
    print(json.dumps({
        "benchmark": "ingest_online_retail",
        "batches": len(results),
        "rows": rows,
        "rows_accepted": sum(r.rows_accepted for r in results),
        "rows_rejected": sum(r.rows_rejected for r in results),
        "statuses": statuses,
        "batches_with_warnings": sum(1 for r in results if r.warnings),
        "setup_seconds": round(setup, 3),
        "total_seconds": round(total, 3),
        "rows_per_second": round(rows / total, 1),
        "per_batch_median_seconds": round(statistics.median(per_batch), 4),
        "per_batch_p95_seconds": round(statistics.quantiles(per_batch, n=20)[-1], 4),
        "pandas_parse_seconds": round(parse, 3),
        "ratio_to_parse": round(total / parse, 1),
        "goal_ratio_to_parse": 30,
    }))
    return 0


def _timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
