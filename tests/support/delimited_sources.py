"""Well-formed files for each source that reads delimited text, for the row-fault corpus.

Each ``Shop`` writes a file of ``n`` valid rows on given days (and, where the source needs one,
a catalogue first), so the only fault in a file is the one a test puts there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipelines.data.sources.base import Source
from pipelines.data.sources.csv_mapped import MappedCsvSource
from pipelines.data.sources.csv_mapping import CsvMapping
from pipelines.data.sources.online_retail import OnlineRetailSource
from pipelines.data.sources.synthetic import SyntheticSource
from tests.support.shopfiles import EVENT_HEADER, write_catalogue

CSV_ITEMS = CsvMapping.from_dict({
    "table": "items",
    "columns": {"item_id": "sku", "title": "name", "category": "cat", "price": "price",
                "first_seen": "added"},
}, origin="test items mapping")
CSV_EVENTS = CsvMapping.from_dict({
    "table": "events",
    "columns": {"event_id": "txn_id", "user_id": "customer", "item_id": "sku",
                "event_type": "action", "quantity": "qty", "unit_price": "price",
                "timestamp": "ts", "order_id": "order_no"},
    "values": {"event_type": {"buy": "purchase"}},
    "timezone": "UTC",
}, origin="test events mapping")


@dataclass(frozen=True)
class Shop:
    """One source's file format: its header, the i-th valid row on a day, and what to ingest
    before its event files (the catalogue the events refer to)."""

    name: str
    source: Callable[[], Source]
    header: str
    row: Callable[[str, int], str]
    unparseable: Callable[[str], str]  # the row with one value that does not parse
    catalogue: Callable[[Path], tuple[Path, Source] | None]

    def rows(self, days: list[str], n: int, start: int = 0) -> list[str]:
        """``n`` rows per day over ``days``."""
        return [self.row(day, i) for day in days for i in range(start, start + n)]

    def write(self, folder: Path, name: str, rows: list[str] | bytes, header: str | None = None
              ) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        body = rows if isinstance(rows, bytes) else "\n".join(rows).encode() + b"\n"
        path.write_bytes(((header or self.header) + "\n").encode() + body)
        return path


def _synthetic_row(day: str, i: int) -> str:
    kind = "purchase" if i % 3 == 0 else "view"
    return (f"E{day.replace('-', '')}{i:05d},C{i % 3 + 1},A{i % 3 + 1},{kind},1,19.9,"
            f"{day}T{8 + i % 12:02d}:{i % 60:02d}:00Z,O{i}")


def _retail_row(day: str, i: int) -> str:
    invoice = f"{dt.date.fromisoformat(day).toordinal()}{i // 4:03d}"
    return (f"{invoice},{20000 + i},ITEM NUMBER {i},{1 + i % 5},{day} {8 + i % 10}:{i % 60:02d}:00,"
            f"{1.5 + i % 7},{12000 + i % 30}.0,United Kingdom")


def _csv_row(day: str, i: int) -> str:
    return (f"T{day}-{i},cust{i % 7}@example.com,SKU{i % 3},buy,{1 + i % 4},9.5,"
            f"{day} {8 + i % 12:02d}:{i % 60:02d}:00,ORD{i}")


def _csv_catalogue(folder: Path) -> tuple[Path, Source]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "catalogue.csv"
    path.write_text("sku,name,cat,price,added\n" + "".join(
        f"SKU{i},Thing {i},toys,9.5,2020-01-01 00:00:00\n" for i in range(3)))
    return path, MappedCsvSource(CSV_ITEMS)


def _field(row: str, index: int, value: str) -> str:
    fields = row.split(",")
    fields[index] = value
    return ",".join(fields)


SHOPS = [
    Shop("synthetic", SyntheticSource, EVENT_HEADER, _synthetic_row,
         lambda row: _field(row, 4, "two"),
         lambda folder: (write_catalogue(folder), SyntheticSource())),
    Shop("online-retail", OnlineRetailSource,
         "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
         _retail_row, lambda row: _field(row, 3, "two"), lambda folder: None),
    Shop("csv", lambda: MappedCsvSource(CSV_EVENTS),
         "txn_id,customer,sku,action,qty,price,ts,order_no", _csv_row,
         lambda row: _field(row, 6, "not a time"), _csv_catalogue),
]
