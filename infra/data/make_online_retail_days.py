"""UCI's public "Online Retail" workbook -> one CSV per trading day, as ../shared/datasets has.

Download ``Online Retail.xlsx`` from https://archive.ics.uci.edu/dataset/352/online+retail
(CC BY 4.0), then::

    .venv/bin/python infra/data/make_online_retail_days.py "Online Retail.xlsx" \\
        ../shared/datasets/online-retail/by-day

Each day's file holds that day's rows in the workbook's order, with the workbook's columns:
``InvoiceDate`` as ``YYYY-MM-DD HH:MM:SS``, ``UnitPrice`` and ``CustomerID`` as floats
(``17850.0``; empty where the workbook has none), UTF-8, ``\\n`` line ends, quoted only where
needed. The row counts are checked against the published data set's (305 days, 541,909 rows)
unless ``--expect-days``/``--expect-rows`` say otherwise, so a truncated download fails loudly.
A CSV export of the workbook (``--encoding`` for its code page) works as well as the workbook.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
           "CustomerID", "Country"]
DAYS, ROWS = 305, 541_909  # the published data set: 2010-12-01 .. 2011-12-09
TEXT = {"InvoiceNo": str, "StockCode": str, "Description": str, "Country": str}


def read_workbook(path: Path, encoding: str = "utf-8") -> pd.DataFrame:
    """The rows of the workbook (``.xlsx``, needs openpyxl) or of a CSV export of it."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        frame = pd.read_excel(path, dtype=TEXT, engine="openpyxl")
    else:
        # Only empty cells are missing: a description such as "NA" stays text.
        frame = pd.read_csv(path, dtype=TEXT, encoding=encoding, keep_default_na=False,
                            na_values=[""])
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)}; expected {COLUMNS}")
    frame = frame[COLUMNS]
    # Exports write dates as 12/1/2010 8:26 or 2010-12-01 08:26:00; the workbook has datetimes.
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"], format="mixed")
    frame["Quantity"] = frame["Quantity"].astype("int64")
    # Floats as the published files have them (a column with gaps is float: 17850.0).
    frame["UnitPrice"] = frame["UnitPrice"].astype("float64")
    frame["CustomerID"] = pd.to_numeric(frame["CustomerID"]).astype("float64")
    return frame


def write_days(frame: pd.DataFrame, out: Path) -> dict[str, int]:
    """One ``YYYY-MM-DD.csv`` per day with rows, in the workbook's order; rows per file."""
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for day, rows in frame.groupby(frame["InvoiceDate"].dt.date, sort=True):
        name = f"{day:%Y-%m-%d}.csv"
        rows.to_csv(out / name, index=False, date_format="%Y-%m-%d %H:%M:%S",
                    encoding="utf-8", lineterminator="\n")
        counts[name] = len(rows)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("workbook", type=Path, help="Online Retail.xlsx, or a CSV export of it")
    parser.add_argument("out", type=Path, help="folder for the day files (created)")
    parser.add_argument("--encoding", default="utf-8", help="a CSV export's encoding "
                        "(exports found online are often ISO-8859-1)")
    parser.add_argument("--expect-days", type=int, default=DAYS, help="day files to expect")
    parser.add_argument("--expect-rows", type=int, default=ROWS, help="rows to expect in all")
    args = parser.parse_args(argv)
    frame = read_workbook(args.workbook, args.encoding)
    counts = write_days(frame, args.out)
    days, rows = len(counts), sum(counts.values())
    print(f"wrote {days} day files, {rows} rows, to {args.out}")
    if rows != len(frame):  # a row without a date would be lost silently
        print(f"error: {len(frame) - rows} rows have no InvoiceDate", file=sys.stderr)
        return 1
    if (days, rows) != (args.expect_days, args.expect_rows):
        print(f"error: expected {args.expect_days} days and {args.expect_rows} rows: is the "
              "download complete?", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
