"""Strict reading of delimited text, turning every way a file can be broken into a one-line reason.

Pandas alone would guess, skip or raise a traceback; here a zero-byte file, a header without rows,
the wrong delimiter, a broken encoding, a truncated file, a repeated header or binary garbage each
become an ``UnreadableBatch`` whose reason a person can act on.

**Truncation.** Every export this project reads ends its last line with a line ending (all 305
Online Retail days and every MovieLens file end with ``\n``), and a transfer cut off part-way
almost never stops exactly at one. So a file is *truncated* when:

- its last line has no line ending, whatever its field count (a cut inside the last value leaves
  every field there, only shorter);
- it ends in a bare ``\r`` although its lines end in ``\n`` (CRLF or LF): the cut fell between
  the CR and the LF. A file whose line endings are all bare ``\r`` (old Mac style) may end in one;
- it ends inside a quoted field, even after a line ending (the quote swallowed it).

A cut that falls exactly after a line ending leaves a shorter but well-formed file; no reader can
tell that from a smaller day, which is what the volume-drop warning is for.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipelines.data.sources.base import UnreadableBatch

_OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe", ",": "comma"}
_LINE_COLUMN = "_line"


def read_delimited(
    path: Path,
    required: Sequence[str] = (),
    *,
    sep: str = ",",
    encoding: str = "utf-8",
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a delimited text file into a frame of strings (missing values as ``<NA>``).

    With ``names`` the file has no header row. A ``_line`` column holds each row's line number
    in the file, so rejected rows can be traced back to it.
    """
    data = path.read_bytes()
    label = path.name
    if not data:
        raise UnreadableBatch(f"{label}: empty file (0 bytes)")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise UnreadableBatch(
            f"{label}: binary content (NUL byte at offset {nul}), not a delimited text file"
        )
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        bad = data[err.start : err.start + 1].hex()
        raise UnreadableBatch(
            f"{label}: broken encoding: byte 0x{bad} at offset {err.start} is not valid {encoding}"
        ) from None
    text = text.removeprefix("\ufeff")
    if _mostly_unprintable(text):
        raise UnreadableBatch(f"{label}: binary content, not a delimited text file")
    lines = text.splitlines()
    if names is None:
        if not lines or not lines[0].strip():
            raise UnreadableBatch(f"{label}: no header row")
        header = next(csv.reader([lines[0]], delimiter=sep))
        _check_delimiter(label, lines[0], header, sep)
        missing = [c for c in required if c not in header]
        if missing:
            raise UnreadableBatch(
                f"{label}: missing required columns {', '.join(missing)} "
                f"(found: {', '.join(header)})"
            )
        width = len(header)
        if not any(line.strip() for line in lines[1:]):
            raise UnreadableBatch(f"{label}: header only, no data rows")
    else:
        width = len(names)
    _check_line_ending(label, text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    started = 1  # the line the row being read starts on
    same_as_header = [h.strip() for h in header] if names is None else None
    first = same_as_header[0] if same_as_header else None
    try:
        if names is None:
            next(reader)
            started = reader.line_num + 1
        for row in reader:
            if not row:
                started = reader.line_num + 1
                continue
            if len(row) != width:
                raise UnreadableBatch(
                    f"{label}: malformed delimited text: line {reader.line_num} has {len(row)} "
                    f"fields, expected {width}"
                )
            if row[0].strip().lstrip("\ufeff") == first and same_as_header == [
                c.strip().lstrip("\ufeff") for c in row
            ]:
                raise UnreadableBatch(
                    f"{label}: header row repeated at line {reader.line_num} "
                    "(two exports joined into one file?)"
                )
            rows.append(row)
            line_numbers.append(reader.line_num)
            started = reader.line_num + 1
    except csv.Error as err:
        if "unexpected end of data" in str(err):
            raise UnreadableBatch(
                f"{label}: truncated file: ends inside a quoted field opened in the row starting "
                f"on line {started}"
            ) from None
        raise UnreadableBatch(
            f"{label}: malformed delimited text at line {reader.line_num}: {err}"
        ) from None
    frame = pd.DataFrame(rows, columns=list(names) if names is not None else header,
                         dtype="string")
    frame = frame.mask(frame == "")
    frame.insert(0, _LINE_COLUMN, line_numbers)
    return frame


def _mostly_unprintable(text: str) -> bool:
    sample = text[:4096]
    odd = sum(1 for ch in sample if not (ch.isprintable() or ch in "\r\n\t"))
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


def _check_line_ending(label: str, text: str) -> None:
    """Refuse a file cut off mid-transfer (see the module docstring for the rule)."""
    if text.endswith("\n") or (text.endswith("\r") and "\n" not in text):
        return
    last = text.count("\n") + 1 if "\n" in text else text.count("\r") + 1
    where = (
        "it ends between the CR and LF of a line ending" if text.endswith("\r")
        else f"last line {last} has no line ending"
    )
    raise UnreadableBatch(f"{label}: truncated file: {where} (cut off in transfer?)")
