"""What every source adapter provides: how to find, read and map its batches to the contract."""

from __future__ import annotations

import datetime as dt
import hashlib
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

    @cached_property
    def content_hash(self) -> str:
        """Batch identity: the same bytes landed twice are the same batch, whatever the name."""
        digest = hashlib.sha256(self.source.encode())
        for path in self.files:
            digest.update(b"\0" + path.name.encode() + b"\0")
            digest.update(path.read_bytes())
        return digest.hexdigest()

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
    ``rows_in == len(tables[primary]) + len(rejected)`` accounts for every landed row.
    """

    primary: str
    tables: dict[str, pd.DataFrame]
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"reason": []}))


class Source(ABC):
    """An adapter from one raw format to the shop data contract."""

    name: ClassVar[str]
    raw_suite: ClassVar[str | None] = None  # GX suite run on the raw frame before conforming

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
    """Files given directly, plus files matching ``pattern`` under given folders, sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob(pattern) if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"no such file or folder: {path}")
    return found


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
    )


def set_aside(
    raw: pd.DataFrame,
    checks: dict[str, pd.Series],
    order: Sequence[str],
    id_column: str,
    pseudonyms: pd.Series,
) -> tuple[pd.DataFrame, pd.Series]:
    """Rows flagged by a check, with the first reason in ``order``, and the mask of the rest.

    Rejected rows keep the raw columns for triage, but ``id_column`` (the raw customer id) is
    replaced by its pseudonym: raw ids never leave the landing and quarantine zones.
    """
    reason = pd.Series(pd.NA, index=raw.index, dtype="string")
    for code in order:
        reason = reason.mask(reason.isna() & checks[code], code)
    bad = reason.notna()
    rejected = raw.loc[bad].assign(**{id_column: pseudonyms[bad]})
    rejected.insert(0, "reason", reason[bad])
    return rejected, ~bad
