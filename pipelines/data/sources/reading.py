"""Strict reading of delimited text: every way a file or a row can be broken becomes a one-line
reason, never a guess, a silent skip or a traceback.

**File-level faults** make the whole file unreadable (``UnreadableBatch``): zero bytes, binary
content, no header or a header that cannot be read, the wrong delimiter, missing required
columns or a column named twice, a header without rows, and truncation (below). Header names
are read without surrounding spaces.

**Row-level faults** are set aside, the rest of the file is read as usual: a row with a broken
encoding or a control byte (a NUL, a lone CR, a byte order mark inside the row, ...), the wrong
number of fields, every field empty, a field over the csv module's limit (128 KiB), broken
quoting, or the header row repeated (two exports joined). Each is listed in
``frame.attrs[MALFORMED]`` with its line number, a ``malformed_*`` reason and a detail that never
quotes the row (it may hold a raw customer id); ``take_notes`` hands them to ingestion, which
decides whether the share is small enough to load the rest. When a broken row swallowed the
lines after it (an opened quote), only its first line is set aside and reading resumes on the
next line.

**Truncation.** Every export this project reads ends its last line with a line ending (all 305
Online Retail days and every MovieLens file end with ``\\n``), and a transfer cut off part-way
almost never stops exactly at one. So a file is *truncated* when:

- its last line has no line ending, whatever its field count (a cut inside the last value leaves
  every field there, only shorter);
- it ends in a bare ``\\r`` although its lines end in ``\\n`` (CRLF or LF): the cut fell between
  the CR and the LF. A file whose lines mostly end in a bare ``\\r`` (old Mac style)
  may end in one;
- it ends inside a quoted field, even after a line ending (the quote swallowed it), unless the
  line after the quote's opening reads as a whole row: then the quote is a stray one in one row.

A cut that falls exactly after a line ending leaves a shorter but well-formed file; no reader can
tell that from a smaller day, which is what the volume-drop warning is for.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipelines.data.sources.base import UnreadableBatch

_OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe", ",": "comma"}
_LINE_COLUMN = "_line"
MALFORMED = "malformed_rows"  # frame.attrs key: the rows set aside while reading
DROPPED = "dropped_columns"  # frame.attrs key: columns in the file that are not kept
# Control characters other than tab, a byte order mark inside a row, undecodable bytes (kept as
# surrogates by the ``surrogateescape`` decoding).
_BAD_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff\udc80-\udcff]")


def read_delimited(
    path: Path,
    required: Sequence[str] = (),
    *,
    sep: str = ",",
    encoding: str = "utf-8",
    names: Sequence[str] | None = None,
    keep: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a delimited text file into a frame of strings (missing values as ``<NA>``).

    With ``names`` the file has no header row. A ``_line`` column holds each row's line number
    in the file, so rejected rows can be traced back to it. With ``keep``, header columns that
    are neither required nor kept are dropped and named in ``frame.attrs[DROPPED]`` (an export
    that gained a column loads as before; the new column may hold what must not be stored).
    """
    data = path.read_bytes()
    label = path.name
    if not data:
        raise UnreadableBatch(f"{label}: empty file (0 bytes)")
    text = data.decode(encoding, errors="surrogateescape")
    if _mostly_unprintable(text):
        nul = data.find(b"\x00")
        where = f" (NUL byte at offset {nul})" if nul >= 0 else ""
        raise UnreadableBatch(f"{label}: binary content{where}, not a delimited text file")
    _check_line_ending(label, text)
    lines = _physical_lines(text)
    if names is None:
        header = _header(label, lines, sep, required, encoding)
        if not any(line.strip() for line in lines[1:]):
            raise UnreadableBatch(f"{label}: header only, no data rows")
        first = 1
    else:
        header, first = list(names), 0
    rows, numbers, bad = _rows(label, lines, first, sep, len(header),
                               header if names is None else None, encoding)
    frame = pd.DataFrame(rows, columns=header, dtype="string")
    frame = frame.mask(frame == "")
    frame.insert(0, _LINE_COLUMN, numbers)
    dropped: list[str] = []
    if keep is not None and names is None:
        wanted = {*required, *keep}
        dropped = [c for c in header if c not in wanted]
        frame = frame.drop(columns=dropped)
    frame.attrs[MALFORMED] = pd.DataFrame(bad, columns=["reason", _LINE_COLUMN, "detail"])
    frame.attrs[DROPPED] = dropped
    return frame


def take_notes(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows set aside while reading and the columns dropped, removed from ``raw.attrs`` (a
    frame from elsewhere, Parquet say, has none)."""
    malformed, dropped = raw.attrs.pop(MALFORMED, None), raw.attrs.pop(DROPPED, None)
    if not isinstance(malformed, pd.DataFrame):  # not ours: Parquet metadata may carry attrs
        malformed = pd.DataFrame(columns=["reason", _LINE_COLUMN, "detail"])
    return malformed, [str(c) for c in dropped] if isinstance(dropped, list) else []


def strict(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """``frame`` unless rows were set aside reading it: for side files (a catalogue read beside
    the batch) whose rows are not counted one by one, any broken row makes the batch unreadable."""
    malformed, _ = take_notes(frame)
    if len(malformed):
        first = malformed.iloc[0]
        raise UnreadableBatch(f"{label}: line {first[_LINE_COLUMN]}: {first['detail']}")
    return frame


def _physical_lines(text: str) -> list[str]:
    """Lines without their endings: LF or CRLF (a CR elsewhere is a stray control byte), or CR
    (and CRLF) where most lines end in a bare CR; a leading byte order mark on a line is
    dropped."""
    if _bare_cr(text):
        lines = text.replace("\r\n", "\r").split("\r")
    else:
        lines = [p[:-1] if p.endswith("\r") else p for p in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removeprefix("\ufeff") for line in lines]


def _header(label: str, lines: list[str], sep: str, required: Sequence[str],
            encoding: str) -> list[str]:
    if not lines or not lines[0].strip():
        raise UnreadableBatch(f"{label}: no header row")
    fault = _char_fault(lines[0], encoding)
    if fault:
        raise UnreadableBatch(f"{label}: unreadable header row: {fault[1]}")
    try:
        header = next(csv.reader([lines[0]], delimiter=sep, strict=True))
    except csv.Error as err:
        raise UnreadableBatch(f"{label}: unreadable header row: {err}") from None
    header = [name.strip() for name in header]
    _check_delimiter(label, lines[0], header, sep)
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        raise UnreadableBatch(f"{label}: header names a column twice: {', '.join(repeated)}")
    missing = [c for c in required if c not in header]
    if missing:
        raise UnreadableBatch(
            f"{label}: missing required columns {', '.join(missing)} "
            f"(found: {', '.join(header)})"
        )
    return header


class _Lines:
    """The file's lines for ``csv.reader``, from a position that can be moved back, so reading
    resumes on the line after a broken row's first line."""

    def __init__(self, lines: list[str], pos: int) -> None:
        self.lines, self.pos = lines, pos

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1] + "\n"


def _rows(label: str, lines: list[str], first: int, sep: str, width: int,
          header: list[str] | None, encoding: str
          ) -> tuple[list[list[str]], list[int], list[tuple[str, int, str]]]:
    """Good rows, their line numbers, and the set-aside ones as (reason, line, detail)."""
    source = _Lines(lines, first)
    reader = csv.reader(source, delimiter=sep, strict=True)
    same_as_header = [h.strip() for h in header] if header is not None else None
    rows: list[list[str]] = []
    numbers: list[int] = []
    bad: list[tuple[str, int, str]] = []
    suspect = _BAD_CHARS.search("\n".join(lines)) is not None  # most files: nothing to find
    while source.pos < len(lines):
        start = source.pos
        if not lines[start].strip():  # a blank line is no row
            source.pos += 1
            continue
        fault = _char_fault(lines[start], encoding) if suspect else None
        if fault is None:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                fault = _csv_fault(label, str(err), lines, start, sep, width)
            else:
                fault = (suspect and source.pos > start + 1 and next(
                    (f for f in (_char_fault(ln, encoding) for ln in lines[start + 1:source.pos])
                     if f), None)) or _shape_fault(row, width, same_as_header)
        if fault is not None:
            bad.append((fault[0], start + 1, fault[1]))
            source.pos = start + 1
            continue
        rows.append(row)
        numbers.append(start + 1)
    return rows, numbers, bad


def _char_fault(line: str, encoding: str) -> tuple[str, str] | None:
    found = _BAD_CHARS.search(line)
    if found is None:
        return None
    char, column = found.group(), found.start() + 1
    if "\udc80" <= char <= "\udcff":
        return ("malformed_encoding", f"broken encoding: byte 0x{ord(char) - 0xDC00:02x} at "
                f"column {column} is not valid {encoding}")
    name = {"\x00": "NUL byte", "\r": "lone CR", "\ufeff": "byte order mark"}.get(char,
                                                                             "control byte")
    return ("malformed_control_bytes", f"{name} (0x{ord(char):02x}) at column {column}")


def _shape_fault(row: list[str], width: int, header: list[str] | None) -> tuple[str, str] | None:
    if len(row) != width:
        return "malformed_field_count", f"{len(row)} fields, expected {width}"
    if not any(field.strip() for field in row):
        return "malformed_empty_row", "every field empty"
    if header is not None and row[0].strip() == header[0] and [c.strip() for c in row] == header:
        return ("malformed_repeated_header",
                "header row repeated (two exports joined into one file?)")
    return None


def _csv_fault(label: str, message: str, lines: list[str], start: int, sep: str,
               width: int) -> tuple[str, str]:
    if "unexpected end of data" in message:
        if not _stray_quote(lines, start, sep, width):
            raise UnreadableBatch(
                f"{label}: truncated file: ends inside a quoted field opened in the row starting "
                f"on line {start + 1}"
            )
        return "malformed_quoting", "a quoted field opened here is never closed"
    if "field larger than field limit" in message:
        return "malformed_oversized_field", message
    return "malformed_quoting", f"broken quoting: {message}"


def _stray_quote(lines: list[str], start: int, sep: str, width: int) -> bool:
    """Whether the quote left open at the end of the file is a stray one in the row on line
    ``start``: the next line reads as a whole row, which a cut-off field's text does not."""
    following = next((line for line in lines[start + 1:] if line.strip()), None)
    if following is None:
        return False
    try:
        return len(next(csv.reader([following], delimiter=sep, strict=True))) == width
    except csv.Error:
        return False


def _mostly_unprintable(text: str) -> bool:
    """Mostly control bytes: binary. Undecodable bytes do not count: a file in another encoding
    is text whose rows say so (``malformed_encoding``)."""
    sample = text[:4096]
    odd = sum(1 for ch in sample
              if not (ch.isprintable() or ch in "\r\n\t" or "\udc80" <= ch <= "\udcff"))
    return odd > max(8, len(sample) // 20)


def _check_delimiter(label: str, first_line: str, header: list[str], sep: str) -> None:
    if len(header) > 1:
        return
    for other, name in _OTHER_DELIMITERS.items():
        if other != sep and other in first_line:
            raise UnreadableBatch(
                f"{label}: wrong delimiter: expected {_OTHER_DELIMITERS.get(sep, repr(sep))}-"
                f"separated columns but the header looks {name}-separated"
            )


def _bare_cr(text: str) -> bool:
    """Whether the file's lines end in a bare CR (old Mac style): more of those than LFs."""
    return text.count("\r") - text.count("\r\n") > text.count("\n")


def _check_line_ending(label: str, text: str) -> None:
    """Refuse a file cut off mid-transfer (see the module docstring for the rule)."""
    if text.endswith("\n") or (text.endswith("\r") and _bare_cr(text)):
        return
    last = text.count("\n") + 1 if "\n" in text else text.count("\r") + 1
    where = (
        "it ends between the CR and LF of a line ending" if text.endswith("\r")
        else f"last line {last} has no line ending"
    )
    raise UnreadableBatch(f"{label}: truncated file: {where} (cut off in transfer?)")
