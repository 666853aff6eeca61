"""The synthetic shop's deliberately bad batches (so the demo shows quarantine), and the fixed
text formatting every file of the shop is written with (byte-identical for one seed)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import pandas as pd


def money_text(values: np.ndarray) -> np.ndarray:
    return np.char.mod("%.2f", values)


def csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def write_text(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


def write_faults(out_dir: Path, seed: int, day_frames: list[pd.DataFrame],
                 dates: list[datetime.date]) -> list[Path]:
    """The demo's two bad batches: one invalid day replacing a normal one, one truncated upload
    of the day after the last (``day_frames`` and ``dates`` hold that extra day last)."""
    rng = np.random.default_rng([seed, 0xFA17])
    days = len(day_frames) - 1
    bad_index = days // 2
    frame = day_frames[bad_index].reset_index(drop=True).copy()
    n = len(frame)
    clicks = rng.choice(n, size=max(1, round(0.03 * n)), replace=False)
    frame.loc[clicks, "event_type"] = "click"
    # Replayed rows: exact copies right after their originals, as an at-least-once export does.
    dupes = rng.choice(n, size=min(n, 5), replace=False)
    rows = np.sort(np.concatenate([np.arange(n), dupes]), kind="stable")
    bad_day = out_dir / "events" / f"{dates[bad_index].isoformat()}.csv"
    write_text(bad_day, csv_text(frame.iloc[rows]))

    # The day after the last, cut off mid-row part-way through the file, with no final newline.
    text = csv_text(day_frames[days])
    cut = text.rfind("\n", 0, max(text.index("\n") + 1, int(len(text) * 0.6))) + 1
    line = text[cut : text.index("\n", cut)]
    cut += line.index(",", line.index(",", line.index(",") + 1) + 1) + 3  # inside event_type
    truncated = out_dir / "events" / f"{dates[days].isoformat()}.csv"
    write_text(truncated, text[:cut])

    listing = [
        {"file": "events/" + bad_day.name, "fault": "invalid_event_type_duplicate_ids",
         "expect": "quarantined"},
        {"file": "events/" + truncated.name, "fault": "truncated_file", "expect": "quarantined"},
    ]
    write_text(out_dir / "faults.json", json.dumps(listing, indent=2) + "\n")
    return [bad_day, truncated]


def remove_stale_faults(out_dir: Path) -> None:
    """Drop fault files a previous run listed, so a clean run never leaves bad batches behind."""
    listing = out_dir / "faults.json"
    if not listing.is_file():
        return
    try:
        entries = json.loads(listing.read_text(encoding="utf-8"))
        files = [out_dir / entry["file"] for entry in entries]
    except (ValueError, TypeError, KeyError):
        files = []
    events_dir = (out_dir / "events").resolve()
    for path in files:
        if path.resolve().parent == events_dir and path.is_file():
            path.unlink()
    listing.unlink()
