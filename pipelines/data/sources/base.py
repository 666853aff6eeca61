"""What every source adapter provides: how to find, read and map its batches to the contract."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from contracts.pseudonyms import Pseudonymiser


class UnreadableBatch(Exception):
    """The batch cannot be parsed at all; ``reason`` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UsageError(Exception):
    """The caller asked for something impossible (unknown source, missing path)."""


@dataclass(frozen=True)
class BatchInput:
    """One batch as received: its files, and the time window its events must fall in."""

    source: str
    name: str
    files: tuple[Path, ...]
    batch_date: dt.date | None = None
    window: tuple[pd.Timestamp, pd.Timestamp] | None = None  # [start, end), UTC
    refused: str | None = None  # why the batch is not read at all (a symbolic link, ...)

    @cached_property
    def content_hash(self) -> str:
        """Batch identity from content alone: the same bytes from the same source are the same
        batch whatever the files are called or where they lie.

        Each file's length goes in before its bytes, so a multi-file batch (MovieLens) cannot
        collide with another split of the same bytes. A refused batch is never read: its identity
        is its names and the refusal (which names an oversized batch's size), so a link left in
        the inbox is reported once, then as a duplicate.
        """
        digest = hashlib.sha256(self.source.encode() + b"\0")
        if self.refused is not None:
            names = "\0".join(p.name for p in self.files)
            digest.update(f"refused\0{names}\0{self.refused}".encode())
            return digest.hexdigest()
        for path in self.files:
            digest.update(str(path.stat().st_size).encode() + b"\0")
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()

    @property
    def size(self) -> int:
        """Bytes in the batch's files (0 for a refused batch, whose files are not looked at)."""
        return 0 if self.refused is not None else sum(p.stat().st_size for p in self.files)

    @property
    def batch_id(self) -> str:
        return f"{self.source}_{self.name}_{self.content_hash[:10]}"

    @property
    def partition(self) -> str:
        """Curated partition key: the batch date, or the ingestion date for undated batches."""
        return (self.batch_date or dt.datetime.now(dt.UTC).date()).isoformat()


@dataclass
class Conformed:
    """A batch mapped onto the contract.

    ``primary`` names the table whose rows correspond one to one with the raw rows, so that
    ``rows_in == len(tables[primary]) + len(rejected)`` accounts for every landed row; its rows
    keep the raw rows' order, and rejected rows keep the raw ``_line``, so each primary row's
    source line is known (``row_faults.accepted_lines``).
    """

    primary: str
    tables: dict[str, pd.DataFrame]
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"reason": []}))
    dropped_columns: list[str] = field(default_factory=list)  # source columns not kept, by name


class Source(ABC):
    """An adapter from one raw format to the shop data contract."""

    name: ClassVar[str]
    raw_suite: ClassVar[str | None] = None  # GX suite run on the raw frame before conforming
    # Exports of daily files may hold several days (a resend of yesterday with today): the
    # batch's window is then the days its events fall on (``rows_window``), not its name's day.
    window_from_rows: ClassVar[bool] = False

    @abstractmethod
    def discover(self, paths: Sequence[Path]) -> list[BatchInput]:
        """Expand files and folders into batches, in the order they must be ingested."""

    @abstractmethod
    def read_raw(self, batch: BatchInput) -> pd.DataFrame:
        """Parse the batch into a raw frame of strings; raise UnreadableBatch if unparseable."""

    def reference(self, paths: Sequence[Path], pseudonymiser: Pseudonymiser) -> dict[str, Any]:
        """Reference data that comes with the batches but is not itself a batch, by name.

        The synthetic shop's planted preferences are one: explanations are checked against them.
        Any customer id in them must already be pseudonymised.
        """
        return {}

    @abstractmethod
    def conform(
        self, raw: pd.DataFrame, batch: BatchInput, pseudonymiser: Pseudonymiser
    ) -> Conformed:
        """Map the raw frame onto the contract, setting aside the source's normal dirt."""


def expand(paths: Iterable[Path], pattern: str) -> list[Path]:
    """Files given directly, plus files matching ``pattern`` under given folders, sorted.

    Inside a folder nothing is followed: a symbolic link (to a file or a folder, whatever its
    name) is returned as it is, unresolved, for ``refusal`` to refuse. A folder the caller names
    is walked even when it is itself a link.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(_walk(path, pattern))
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"no such file or folder: {path}")
    return found


def _walk(folder: Path, pattern: str) -> list[Path]:
    found: list[Path] = []
    for parent, dirs, files in os.walk(folder, followlinks=False):
        here = Path(parent)
        found.extend(here / d for d in dirs if (here / d).is_symlink())
        for name in files:
            path = here / name
            if path.is_symlink() or (path.match(pattern) and path.is_file()):
                found.append(path)
    return sorted(found)


def refusal(files: Iterable[Path]) -> str | None:
    """Why a batch's files must not be read: a symbolic link is reported, never followed."""
    for path in files:
        if path.is_symlink():
            return f"{path.name}: symbolic link refused (not followed); deliver the file itself"
    return None


def day_window(day: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(day, tz="UTC")
    return start, start + pd.Timedelta(days=1)


def parse_day(text: str) -> dt.date | None:
    """The first ISO date found in a file name, e.g. ``2010-12-01.csv``, else None."""
    match = re.search(r"(\d{4})-(\d{2})-(\d{2})", text)
    if not match:
        return None
    try:
        return dt.date(*map(int, match.groups()))
    except ValueError:
        return None


def file_batch(source: str, path: Path, name: str | None = None) -> BatchInput:
    """A one-file batch, dated (with that day as its window) when its name holds a date."""
    day = parse_day(path.stem)
    return BatchInput(
        source=source,
        name=name or path.stem,
        files=(path,),
        batch_date=day,
        window=day_window(day) if day else None,
        refused=refusal([path]),
    )


def rows_window(batch: BatchInput, events: pd.DataFrame | None) -> BatchInput:
    """The batch with its window widened to the whole days its event timestamps fall on, and
    dated by the last of them when its file name holds no date.

    A file covering several days, or named ``export.csv``, is accepted like a daily one; which of
    its events are new is for event-level idempotency to decide. The not-in-the-future check
    still applies.
    """
    if events is None or "timestamp" not in events:
        return batch
    stamps = pd.to_datetime(events["timestamp"], utc=True, errors="coerce").dropna()
    if stamps.empty:
        return batch
    start, end = stamps.min().floor("D"), stamps.max().floor("D") + pd.Timedelta(days=1)
    if batch.window is not None:
        start, end = min(start, batch.window[0]), max(end, batch.window[1])
    day = batch.batch_date or (end - pd.Timedelta(days=1)).date()
    widened = dataclasses.replace(batch, batch_date=day, window=(start, end))
    widened.__dict__["content_hash"] = batch.content_hash  # the same bytes: not hashed again
    return widened


def unparseable(text: pd.DataFrame, typed: pd.DataFrame) -> dict[str, pd.Series]:
    """``unparseable_<column>`` checks: a value was given but does not parse as its type (typing
    turned it into a null), for each column ``text`` and ``typed`` share."""
    return {
        f"unparseable_{name}": (
            text[name].astype("string").str.strip().replace("", pd.NA).notna()
            & typed[name].isna()).fillna(False).astype(bool)
        for name in typed.columns if name in text.columns
    }


def set_aside(
    raw: pd.DataFrame,
    checks: dict[str, pd.Series],
    order: Sequence[str],
    id_column: str | None,
    pseudonyms: pd.Series | None,
) -> tuple[pd.DataFrame, pd.Series]:
    """Rows flagged by a check, with the first reason in ``order``, and the mask of the rest.

    Rejected rows keep the raw columns for triage, but ``id_column`` (the raw customer id) is
    replaced by its pseudonym (None: the table has no customer id): raw ids never leave the
    landing and quarantine zones.
    """
    reason = pd.Series(pd.NA, index=raw.index, dtype="string")
    for code in order:
        reason = reason.mask(reason.isna() & checks[code], code)
    bad = reason.notna()
    rejected = raw.loc[bad]
    if id_column is not None and pseudonyms is not None:
        rejected = rejected.assign(**{id_column: pseudonyms[bad]})
    rejected.insert(0, "reason", reason[bad])
    return rejected, ~bad
