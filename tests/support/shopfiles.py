"""Small hand-written batches in the synthetic source's landing format."""

from __future__ import annotations

from pathlib import Path

EVENT_HEADER = "event_id,customer_id,item_id,event_type,quantity,unit_price,timestamp,order_id"
ITEMS = (
    "item_id,title,category,brand,price,first_seen\n"
    "A1,Nordvik Lamp,home-decor,Nordvik,19.90,2025-12-01T00:00:00Z\n"
    "A2,Kettle,kitchenware,Brava,35.00,2025-12-01T00:00:00Z\n"
    "A3,Puzzle,toys,,8.50,2025-12-01T00:00:00Z\n"
)
USERS = "customer_id,country\nC1,United Kingdom\nC2,France\nC3,Germany\n"


def event_rows(day: str, n: int = 30, start: int = 0, price: float = 19.9) -> list[str]:
    """``n`` well-formed events on ``day``: views and purchases across the catalogue."""
    rows = []
    for i in range(start, start + n):
        kind = "purchase" if i % 3 == 0 else "view"
        order = f"O{i}" if kind == "purchase" else ""
        rows.append(
            f"E{day.replace('-', '')}{i:05d},C{i % 3 + 1},A{i % 3 + 1},{kind},1,{price},"
            f"{day}T{8 + i % 12:02d}:{i % 60:02d}:00Z,{order}"
        )
    return rows


def write_events(folder: Path, day: str, rows: list[str], header: str = EVENT_HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{day}.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_catalogue(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.csv").write_text(ITEMS, encoding="utf-8")
    (folder / "users.csv").write_text(USERS, encoding="utf-8")
    return folder
