"""infra/data/make_online_retail_days.py rebuilds ../shared's Online Retail day files byte for
byte: from a workbook typed as UCI's is (numbers as numbers, datetimes, gaps), and from a CSV
export with US-style dates. The workbook is made here from two shared days (one with
cancellations, missing customers and quoted descriptions)."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from infra.data.make_online_retail_days import COLUMNS, main
from tests.conftest import shared_dataset

DAYS = ("2010-12-22.csv", "2011-02-06.csv")


@pytest.fixture
def shared_rows() -> tuple[Path, list[list[str]]]:
    folder = shared_dataset("online-retail/by-day")
    rows: list[list[str]] = []
    for name in DAYS:
        with (folder / name).open(newline="", encoding="utf-8") as handle:
            header, *body = csv.reader(handle)
        assert header == COLUMNS
        rows += body
    return folder, rows


def _typed(row: list[str]) -> list[object]:
    """A row as the workbook's cells: numeric codes as numbers, a datetime, empty as None."""
    invoice, stock, description, quantity, date, price, customer, country = row
    return [int(invoice) if invoice.isdigit() else invoice,
            int(stock) if stock.isdigit() else stock, description or None, int(quantity),
            dt.datetime.fromisoformat(date), float(price),
            float(customer) if customer else None, country]


def _same_files(out: Path, folder: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted(DAYS)
    for name in DAYS:
        assert (out / name).read_bytes() == (folder / name).read_bytes(), name


def test_the_workbook_becomes_the_shared_day_files(shared_rows, tmp_path: Path) -> None:
    from openpyxl import Workbook

    folder, rows = shared_rows
    book = Workbook()
    sheet = book.active
    sheet.append(COLUMNS)
    for row in rows:
        sheet.append(_typed(row))
    book.save(tmp_path / "Online Retail.xlsx")

    code = main([str(tmp_path / "Online Retail.xlsx"), str(tmp_path / "days"),
                 "--expect-days", "2", "--expect-rows", str(len(rows))])

    assert code == 0
    _same_files(tmp_path / "days", folder)


def test_a_csv_export_with_us_dates_too_and_counts_are_checked(
        shared_rows, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, rows = shared_rows
    export = tmp_path / "online_retail.csv"
    with export.open("w", newline="", encoding="iso-8859-1") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in rows:
            when = dt.datetime.fromisoformat(row[4])
            us = f"{when.month}/{when.day}/{when.year} {when.hour}:{when.minute:02d}"
            writer.writerow([*row[:4], us, *row[5:]])

    assert main([str(export), str(tmp_path / "days"), "--encoding", "iso-8859-1",
                 "--expect-days", "2", "--expect-rows", str(len(rows))]) == 0
    _same_files(tmp_path / "days", folder)

    assert main([str(export), str(tmp_path / "again")]) == 1, "not the published counts"
    assert "expected 305 days and 541909 rows" in capsys.readouterr().err
