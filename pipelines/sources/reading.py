"""Strict reading of delimited text, turning every way a file can be broken into a one-line reason.

Pandas alone would guess, skip or raise a traceback; here a zero-byte file, a header without rows,
the wrong delimiter, a broken encoding, a truncated last line or binary garbage each become an
``UnreadableBatch`` whose reason a person can act on.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipelines.sources.base import UnreadableBatch

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
    if b"\x00" in data[:65536]:
        raise UnreadableBatch(f"{label}: binary content (NUL bytes), not a delimited text file")
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
    _check_truncated(label, text, lines, width, sep)
    reader = csv.reader(io.StringIO(text), delimiter=sep, strict=True)
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    try:
        if names is None:
            next(reader)
        for row in reader:
            if not row:
                continue
            if len(row) != width:
                raise UnreadableBatch(
                    f"{label}: malformed delimited text: line {reader.line_num} has {len(row)} "
                    f"fields, expected {width}"
                )
            rows.append(row)
            line_numbers.append(reader.line_num)
    except csv.Error as err:
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


def _check_truncated(label: str, text: str, lines: list[str], width: int, sep: str) -> None:
    if text.endswith(("\n", "\r")) or not lines:
        return
    last = next(csv.reader([lines[-1]], delimiter=sep), [])
    quotes_open = lines[-1].count('"') % 2 == 1
    if len(last) < width or quotes_open:
        raise UnreadableBatch(
            f"{label}: truncated file: last line {len(lines)} has {len(last)} of {width} fields "
            "and no line ending"
        )
