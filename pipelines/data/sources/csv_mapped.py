"""Bring-your-own data: CSV or Parquet files mapped onto one contract table by a YAML mapping
(``csv_mapping`` describes the file and validates it): discovered, read and conformed here.

A row whose number or timestamp does not parse is set aside as ``unparseable_<column>`` (a
malformed row, ``row_faults``); other problems (a missing required value, an unknown event
type) are left to the batch checks. Events exported without an id get a stable one
(``generated_event_ids``). Exports may cover several days: the rows give the batch's window.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from contracts.pseudonyms import Pseudonymiser
from contracts.tables import MULTI_VALUED, conform
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
    set_aside,
    unparseable,
)
from pipelines.data.sources.csv_mapping import FORMATS, CsvMapping, yaml_text
from pipelines.data.sources.reading import read_delimited

# The canonical values a generated event id is computed from, in this order.
_ID_FIELDS = ("user_id", "item_id", "event_type", "quantity", "unit_price", "timestamp",
              "order_id", "rating")
# An explicit zone or offset at the end of a timestamp; anything else is read in the mapping's
# timezone. Requiring a ":" keeps a plain date's "-05" from passing for an offset.
_AWARE = re.compile(r":.*(?:Z|UTC|GMT|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


class MappedCsvSource(Source):
    name = "csv"
    raw_suite = None
    window_from_rows = True

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
            frame[canonical] = pd.Series(yaml_text(value), index=raw.index, dtype="string")
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
        rejected, ok = _unparseable_rows(raw, conformed, mapping, used)
        conformed = conformed.loc[ok].reset_index(drop=True)
        if mapping.generates_event_id:
            conformed["event_id"] = generated_event_ids(conformed)
        return Conformed(primary=table, tables={table: conformed}, rejected=rejected,
                         dropped_columns=dropped)

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


def _unparseable_rows(raw: pd.DataFrame, typed: pd.DataFrame, mapping: CsvMapping,
                      used: set[str]) -> tuple[pd.DataFrame, pd.Series]:
    """Rows with a mapped number or timestamp that does not parse, set aside with only the
    columns the mapping uses (the user id as its pseudonym), and the mask of the rest."""
    raw = raw.reset_index(drop=True)
    numeric = [c for c in typed.columns if c in mapping.columns
               and not pd.api.types.is_string_dtype(typed[c])]
    text = pd.DataFrame({c: raw[mapping.columns[c]] for c in numeric}, index=raw.index)
    checks = unparseable(text, typed[numeric])
    kept = raw[[c for c in raw.columns if c in used]]
    user = mapping.columns.get("user_id")
    rejected, ok = set_aside(kept, checks, list(checks), user,
                             typed["user_id"] if user else None)
    return rejected.reset_index(drop=True), ok


def _sort_key(path: Path) -> tuple[dt.date, str]:
    """Undated files (a full export) first, then dated ones in date order (the increments)."""
    return parse_day(path.stem) or dt.date.min, path.name


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
