"""Bring-your-own data: CSV or Parquet files mapped onto one contract table by a YAML mapping.

A shop whose export is not one of the built-in sources describes its columns once, in a YAML
file passed as ``--source csv --mapping FILE``, instead of writing an adapter::

    table: events            # events | items | users (the canonical table the files hold)
    format: csv              # csv | parquet (default: by file extension)
    delimiter: ","           # csv only
    encoding: utf-8          # csv only
    columns:                 # canonical column -> your column
      event_id: txn_id       # events: optional, generated when absent (see below)
      user_id: customer      # raw customer id; pseudonymised at ingestion
      item_id: sku
      event_type: action
      quantity: qty
      unit_price: price
      timestamp: ts
    values:                  # optional: map your values to canonical ones, per canonical column
      event_type: {buy: purchase, cart: add_to_cart, refund: return}
    constants:               # optional: canonical column -> constant for columns you lack
      quantity: 1
    split: {}                # optional: canonical column -> separator of a multi-valued column
    timestamp_unit: s        # optional: s | ms when your timestamp columns hold epoch numbers
    timezone: UTC            # how to read naive timestamps (an IANA name, e.g. Europe/Berlin)
    keep: []                 # optional: your extra columns to carry into the table as they are
    attributes: []           # users only: your shopper attribute columns, read into segments

Every required column of the table (see ``contracts.tables.SCHEMAS``) must be mapped or given
a constant, except an events table's ``event_id``: without one, each event gets a generated id,
``h-`` and 20 hex digits of a SHA-256 over its canonical values (pseudonymised user, item, event
type, quantity, price, UTC timestamp, order, rating), plus ``-2``, ``-3``... for the second and
later identical events in a file. It depends on the values only, not on column order, file name
or row position, so a re-export of the same events gets the same ids and event-level
idempotency skips them; it names the shopper by pseudonym, never by raw id.

``split: {category: "|"}`` reads ``"Adventure|Comedy"`` as its *first* value, ``Adventure``
(blank values skipped; the whole text when there is no separator); value maps apply after the
split. To keep every value too, list the column under ``keep``. The multi-valued columns
(items' ``tags``, users' ``segments``) keep every value instead: ``split: {tags: ","}`` reads
``"linen, summer"`` as the tags ``linen|summer``.

``attributes: [age_band, tier]`` (users only) turns each of your shopper attribute columns into
``name:value`` segments (``age_band:25-34|tier:gold``), which the model reads as shopper
features; never name a column that identifies a person (an e-mail, a full postcode).

``timestamp_unit`` applies to the timestamp columns mapped in ``columns`` (seconds or
milliseconds since 1970-01-01 UTC); constants stay dates written out.

Only the columns mapped, plus those listed under ``keep``, reach the curated table: anything else
in your files (an e-mail, a phone number) is dropped, and the batch report names it. ``keep``
may not name a canonical column, nor the column mapped to ``user_id`` (the raw customer id).

Quote value-map keys such as ``"yes"``/``"no"``/``"on"``, which YAML otherwise reads as booleans.
Files are found as ``*.csv``/``*.parquet`` under the given folders, one batch per file; a date in
the file name (``orders-2024-05-01.csv``) sets the batch's day (undated: its events' last day);
its window is the days its events fall on. A row whose number or timestamp does not parse is
set aside as malformed (``unparseable_<column>``); other problems are left to the batch checks.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from contracts.tables import SCHEMAS, TABLES, columns
from pipelines.data.sources.base import UsageError

FORMATS = {"csv": ".csv", "parquet": ".parquet"}
_KEYS = {
    "table", "format", "delimiter", "encoding", "columns", "values", "constants", "timezone",
    "keep", "split", "timestamp_unit", "attributes",
}
TIMESTAMP_UNITS = ("s", "ms")


@dataclass(frozen=True)
class CsvMapping:
    """A validated mapping; constructing one with impossible settings raises UsageError."""

    table: str
    columns: dict[str, str]
    format: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    keep: tuple[str, ...] = ()
    split: dict[str, str] = field(default_factory=dict)
    timestamp_unit: str | None = None
    attributes: tuple[str, ...] = ()
    origin: str = "mapping"  # where it came from, to prefix error messages

    def __post_init__(self) -> None:
        fail = self._fail
        if self.table not in TABLES:
            fail(f"unknown table {self.table!r}; choose one of {', '.join(TABLES)}")
        if self.format is not None and self.format not in FORMATS:
            fail(f"unknown format {self.format!r}; choose one of {', '.join(FORMATS)}")
        canonical = columns(self.table)
        for section in ("columns", "values", "constants"):
            entries = getattr(self, section)
            if not isinstance(entries, Mapping):
                fail(f"{section} must be a mapping of canonical column names")
            unknown = [str(name) for name in entries if name not in canonical]
            if unknown:
                fail(
                    f"{section}: unknown {self.table} column(s) {', '.join(unknown)}; "
                    f"the {self.table} columns are {', '.join(canonical)}"
                )
        bad_sources = [c for c, src in self.columns.items() if not isinstance(src, str) or not src]
        if bad_sources:
            fail(f"columns: give a source column name for {', '.join(bad_sources)}")
        both = sorted(set(self.columns) & set(self.constants))
        if both:
            fail(f"{', '.join(both)} both mapped in columns and set in constants; choose one")
        missing = [
            c.name
            for c in SCHEMAS[self.table]
            if c.required and c.name not in self.columns and c.name not in self.constants
            and not (self.table == "events" and c.name == "event_id")  # generated
        ]
        if missing:
            fail(
                f"required {self.table} column(s) {', '.join(missing)} neither mapped in "
                "columns nor set in constants"
            )
        for name, value_map in self.values.items():
            if not isinstance(value_map, Mapping):
                fail(f"values: {name} must map your values to canonical ones")
            if name not in self.columns and name not in self.constants:
                fail(f"values: {name} is neither mapped in columns nor set in constants")
        self._check_extras(canonical)
        if not isinstance(self.delimiter, str) or len(self.delimiter) != 1:
            fail(f"delimiter must be a single character, not {self.delimiter!r}")
        try:
            codecs.lookup(str(self.encoding))
        except LookupError:
            fail(f"unknown encoding {self.encoding!r}")
        try:
            ZoneInfo(str(self.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            fail(f"unknown timezone {self.timezone!r}; use an IANA name such as Europe/London")

    def _check_extras(self, canonical: list[str]) -> None:
        """``keep``, ``split`` and ``timestamp_unit``."""
        fail = self._fail
        if isinstance(self.keep, str) or not all(isinstance(k, str) and k for k in self.keep):
            fail("keep must be a list of your column names")
        shadowing = [k for k in self.keep if k in canonical]
        if shadowing:
            fail(f"keep: {', '.join(shadowing)} would shadow the canonical {self.table} column; "
                 "map it under columns instead")
        if "user_id" in self.columns and self.columns["user_id"] in self.keep:
            fail(f"keep: {self.columns['user_id']} holds the raw customer id (mapped to user_id) "
                 "and is never kept")
        if isinstance(self.attributes, str) or not all(
                isinstance(a, str) and a for a in self.attributes):
            fail("attributes must be a list of your column names")
        if self.attributes and self.table != "users":
            fail("attributes are shopper attributes: only a users table has them")
        if "user_id" in self.columns and self.columns["user_id"] in self.attributes:
            fail(f"attributes: {self.columns['user_id']} holds the raw customer id (mapped to "
                 "user_id) and is never an attribute")
        if not isinstance(self.split, Mapping):
            fail("split must map canonical columns to a separator")
        for name, separator in self.split.items():
            if name not in self.columns:
                fail(f"split: {name} is not mapped in columns")
            if not isinstance(separator, str) or not separator:
                fail(f"split: give {name} a separator such as '|'")
        if self.timestamp_unit is not None:
            if self.timestamp_unit not in TIMESTAMP_UNITS:
                fail(f"unknown timestamp_unit {self.timestamp_unit!r}; choose one of "
                     f"{', '.join(TIMESTAMP_UNITS)}")
            if not [c for c in self.timestamp_columns if c in self.columns]:
                fail("timestamp_unit is set but no timestamp column is mapped in columns")

    def _fail(self, message: str) -> None:
        raise UsageError(f"{self.origin}: {message}")

    @property
    def timestamp_columns(self) -> list[str]:
        return [c.name for c in SCHEMAS[self.table] if c.dtype == "timestamp"]

    @property
    def generates_event_id(self) -> bool:
        return self.table == "events" and "event_id" not in self.columns \
            and "event_id" not in self.constants

    @classmethod
    def from_dict(cls, data: Any, origin: str = "mapping") -> CsvMapping:
        if not isinstance(data, Mapping):
            raise UsageError(f"{origin}: expected a YAML mapping with table and columns")
        unknown = sorted(str(k) for k in data if k not in _KEYS)
        if unknown:
            raise UsageError(
                f"{origin}: unknown setting(s) {', '.join(unknown)}; "
                f"expected {', '.join(sorted(_KEYS))}"
            )
        if "table" not in data or "columns" not in data:
            raise UsageError(f"{origin}: table and columns are required")
        values = data.get("values") or {}
        if isinstance(values, Mapping):
            # YAML reads keys like 1 or 2.5 as numbers; the data's values are compared as text.
            values = {
                col: {yaml_text(k): yaml_text(v) for k, v in vm.items()}
                if isinstance(vm, Mapping)
                else vm
                for col, vm in values.items()
            }
        return cls(
            table=data["table"],
            columns=data["columns"] or {},
            format=data.get("format"),
            delimiter=data.get("delimiter", ","),
            encoding=data.get("encoding", "utf-8"),
            values=values,
            constants=data.get("constants") or {},
            timezone=data.get("timezone", "UTC"),
            keep=_as_tuple(data.get("keep") or ()),
            split=data.get("split") or {},
            timestamp_unit=data.get("timestamp_unit"),
            attributes=_as_tuple(data.get("attributes") or ()),
            origin=origin,
        )

    @property
    def source_columns(self) -> list[str]:
        """The columns your files must have, each once: those mapped and those kept."""
        return list(dict.fromkeys([*self.columns.values(), *self.keep, *self.attributes]))


def _as_tuple(value: Any) -> Any:
    """A YAML list as a tuple; anything else as it is, for ``CsvMapping`` to refuse."""
    return tuple(value) if isinstance(value, list | tuple) else value


def yaml_text(value: Any) -> str:
    """A YAML scalar as the text it stands for in a file (``true`` rather than ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
