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
the file name (``orders-2024-05-01.csv``) sets the batch's day and time window. Rows are not
rejected here: values of the wrong type become nulls, which the batch checks report.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import yaml

from contracts.pseudonyms import Pseudonymiser
from contracts.tables import MULTI_VALUED, SCHEMAS, TABLES, columns, conform
from models.feature_spec import MULTI_SEPARATOR
from pipelines.data.sources.base import (
    BatchInput,
    Conformed,
    Source,
    UnreadableBatch,
    UsageError,
    expand,
    file_batch,
    parse_day,
)
from pipelines.data.sources.reading import read_delimited

FORMATS = {"csv": ".csv", "parquet": ".parquet"}
_KEYS = {
    "table", "format", "delimiter", "encoding", "columns", "values", "constants", "timezone",
    "keep", "split", "timestamp_unit", "attributes",
}
TIMESTAMP_UNITS = ("s", "ms")
# The canonical values a generated event id is computed from, in this order.
_ID_FIELDS = ("user_id", "item_id", "event_type", "quantity", "unit_price", "timestamp",
              "order_id", "rating")
# An explicit zone or offset at the end of a timestamp; anything else is read in the mapping's
# timezone. Requiring a ":" keeps a plain date's "-05" from passing for an offset.
_AWARE = re.compile(r":.*(?:Z|UTC|GMT|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


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
                col: {_yaml_text(k): _yaml_text(v) for k, v in vm.items()}
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


class MappedCsvSource(Source):
    name = "csv"
    raw_suite = None

    def __init__(self, mapping: CsvMapping) -> None:
        self.mapping = mapping

    @classmethod
    def from_file(cls, path: str | Path) -> MappedCsvSource:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise UsageError(f"cannot read mapping {path}: {err.strerror or err}") from None
        except yaml.YAMLError as err:
            detail = " ".join(str(err).split())
            raise UsageError(f"mapping {path} is not valid YAML: {detail}") from None
        return cls(CsvMapping.from_dict(data, origin=f"mapping {path.name}"))

    def discover(self, paths: Sequence[Path]) -> list[BatchInput]:
        suffixes = (
            [FORMATS[self.mapping.format]] if self.mapping.format else list(FORMATS.values())
        )
        files: list[Path] = []
        for path in paths:
            if path.is_dir():
                for suffix in suffixes:
                    files.extend(expand([path], f"*{suffix}"))
            else:
                files.extend(expand([path], "*"))
        return [file_batch(self.name, path) for path in sorted(dict.fromkeys(files), key=_sort_key)]

    def read_raw(self, batch: BatchInput) -> pd.DataFrame:
        path = batch.files[0]
        if self._format_of(path) == "csv":
            return read_delimited(
                path,
                self.mapping.source_columns,
                sep=self.mapping.delimiter,
                encoding=self.mapping.encoding,
            )
        return self._read_parquet(path)

    def conform(
        self, raw: pd.DataFrame, batch: BatchInput, pseudonymiser: Pseudonymiser
    ) -> Conformed:
        mapping = self.mapping
        table = mapping.table
        frame = pd.DataFrame(index=raw.index)
        for canonical, source in mapping.columns.items():
            frame[canonical] = raw[source].astype("string").str.strip()
        for canonical, separator in mapping.split.items():
            frame[canonical] = (_all_values(frame[canonical], separator)
                                if canonical in MULTI_VALUED
                                else _first_value(frame[canonical], separator))
        if mapping.attributes:
            frame["segments"] = _segments(raw, mapping.attributes,
                                          frame.get("segments"))
        for canonical, value in mapping.constants.items():
            frame[canonical] = pd.Series(_yaml_text(value), index=raw.index, dtype="string")
        for canonical, value_map in mapping.values.items():
            frame[canonical] = frame[canonical].replace(value_map)
        if "user_id" in frame:
            frame["user_id"] = pseudonymiser.series(frame["user_id"])
        for name in mapping.timestamp_columns:
            if name in mapping.columns and mapping.timestamp_unit:
                frame[name] = _from_epoch(frame[name], mapping.timestamp_unit)
            elif name in frame:
                frame[name] = _to_utc(frame[name], mapping.timezone)
        # Only what the mapping names: an unlisted column may hold an e-mail or a phone number.
        for name in mapping.keep:
            frame[name] = raw[name]
        used = {"_line", *mapping.columns.values(), *mapping.keep, *mapping.attributes}
        dropped = [str(name) for name in raw.columns if name not in used]
        conformed = conform(table, frame)
        if mapping.generates_event_id:
            conformed["event_id"] = generated_event_ids(conformed)
        return Conformed(
            primary=table,
            tables={table: conformed},
            rejected=pd.DataFrame({"reason": pd.Series(dtype="string"), "_line": []}),
            dropped_columns=dropped,
        )

    def _format_of(self, path: Path) -> str:
        if self.mapping.format:
            return self.mapping.format
        suffix = path.suffix.lower()
        for name, ext in FORMATS.items():
            if suffix == ext:
                return name
        raise UnreadableBatch(
            f"{path.name}: cannot tell the format from the extension; set format in the mapping"
        )

    def _read_parquet(self, path: Path) -> pd.DataFrame:
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises many types for a broken file
            message = " ".join(str(err).split()) or type(err).__name__
            raise UnreadableBatch(f"{path.name}: unreadable parquet: {message}") from None
        missing = [c for c in self.mapping.source_columns if c not in frame.columns]
        if missing:
            raise UnreadableBatch(
                f"{path.name}: missing required columns {', '.join(missing)} "
                f"(found: {', '.join(map(str, frame.columns))})"
            )
        if frame.empty:
            raise UnreadableBatch(f"{path.name}: no data rows")
        frame = frame.astype("string").reset_index(drop=True)
        frame.insert(0, "_line", pd.RangeIndex(1, len(frame) + 1))
        return frame


def _sort_key(path: Path) -> tuple[dt.date, str]:
    """Undated files (a full export) first, then dated ones in date order (the increments)."""
    return parse_day(path.stem) or dt.date.min, path.name


def _as_tuple(value: Any) -> Any:
    """A YAML list as a tuple; anything else as it is, for ``CsvMapping`` to refuse."""
    return tuple(value) if isinstance(value, list | tuple) else value


def _yaml_text(value: Any) -> str:
    """A YAML scalar as the text it stands for in a file (``true`` rather than ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def generated_event_ids(events: pd.DataFrame) -> pd.Series:
    """Stable ids for events exported without one (see the module docstring)."""
    text = pd.DataFrame({
        name: events[name].map(_canonical_text, na_action="ignore").astype("string").fillna("")
        for name in _ID_FIELDS
    })
    keys = text.agg("\x1f".join, axis=1) if len(text) else pd.Series([], dtype="string")
    digests = keys.map(lambda k: "h-" + hashlib.sha256(k.encode()).hexdigest()[:20])
    repeat = digests.groupby(digests).cumcount()
    suffix = repeat.map(lambda n: f"-{n + 1}" if n else "")
    return (digests + suffix).astype("string")


def _canonical_text(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _first_value(values: pd.Series, separator: str) -> pd.Series:
    """The first non-blank value of each multi-valued cell (``"Adventure|Comedy"`` -> Adventure)."""
    def first(text: str) -> Any:
        return next((part.strip() for part in text.split(separator) if part.strip()), pd.NA)

    return values.map(first, na_action="ignore").astype("string")


def _all_values(values: pd.Series, separator: str) -> pd.Series:
    """Every non-blank value of each multi-valued cell, joined by the contract's separator."""
    def joined(text: str) -> Any:
        parts = [p.strip().replace(MULTI_SEPARATOR, " ") for p in text.split(separator)]
        kept = list(dict.fromkeys(p for p in parts if p))
        return MULTI_SEPARATOR.join(kept) if kept else pd.NA

    return values.map(joined, na_action="ignore").astype("string")


def _segments(raw: pd.DataFrame, attributes: Sequence[str], mapped: pd.Series | None
              ) -> pd.Series:
    """``name:value`` per attribute column (blanks skipped) after any mapped ``segments``."""
    if not len(raw):
        return pd.Series(pd.NA, index=raw.index, dtype="string")
    parts = [mapped.fillna("")] if mapped is not None else []
    for name in attributes:
        text = raw[name].astype("string").str.strip().str.replace(MULTI_SEPARATOR, " ",
                                                                  regex=False)
        parts.append((name + ":" + text).where(text.notna() & (text != ""), ""))
    joined = pd.concat(parts, axis=1).apply(
        lambda row: MULTI_SEPARATOR.join(v for v in row if v), axis=1)
    return joined.astype("string").replace("", pd.NA)


def _from_epoch(values: pd.Series, unit: str) -> pd.Series:
    """Epoch numbers in ``unit`` as UTC timestamps; anything else (or out of range) null."""
    numbers = pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
    return pd.to_datetime(numbers.astype("Float64"), unit=unit, utc=True, errors="coerce")


def _to_utc(values: pd.Series, timezone: str) -> pd.Series:
    """Timestamps in UTC: naive ones read in ``timezone``, ones with a zone or offset converted.

    Unparseable values and wall-clock times that do not exist or repeat at a DST change become
    null, for the required-column checks to report.
    """
    text = values.astype("string").str.strip()
    aware = text.str.contains(_AWARE).fillna(False).astype(bool)
    result = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if aware.any():
        parsed = pd.to_datetime(text[aware], utc=True, errors="coerce", format="mixed")
        result[aware] = parsed.astype("datetime64[ns, UTC]")
    naive = ~aware & text.notna()
    if naive.any():
        parsed = pd.to_datetime(text[naive], errors="coerce", format="mixed")
        local = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        result[naive] = local.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    return result
