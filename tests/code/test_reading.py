"""Code tests of the strict reader and the pseudonymiser."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from contracts.pseudonyms import Pseudonymiser
from contracts.tables import conform
from pipelines.sources.base import UnreadableBatch
from pipelines.sources.reading import read_delimited


def _file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "batch.csv"
    path.write_bytes(data)
    return path


def test_reads_strings_with_line_numbers_and_quoted_commas(tmp_path: Path) -> None:
    path = _file(tmp_path, b'a,b\n1,"x, y"\n2,\n')
    frame = read_delimited(path, ["a", "b"])
    assert list(frame["_line"]) == [2, 3]
    assert frame.loc[0, "b"] == "x, y"
    assert pd.isna(frame.loc[1, "b"])
    assert str(frame["a"].dtype) == "string"


def test_headerless_files_use_given_names(tmp_path: Path) -> None:
    frame = read_delimited(_file(tmp_path, b"1\t2\n3\t4\n"), sep="\t", names=["x", "y"])
    assert list(frame["y"]) == ["2", "4"] and list(frame["_line"]) == [1, 2]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty file"),
        (b"a,b\n", "header only"),
        (b"a;b\n1;2\n", "wrong delimiter"),
        (b"a,b\n1,\xff\n", "broken encoding: byte 0xff at offset 6"),
        (b"a,b\n1,2\n3", "truncated file: last line 3 has 1 of 2 fields"),
        (b'a,b\n1,"unterminated', "truncated file"),
        (b"\x00\x01\x02" * 100, "binary content"),
        (b"a,b\n1,2,3,4\n", "malformed delimited text"),
        (b"a,c\n1,2\n", "missing required columns b"),
    ],
)
def test_broken_files_raise_one_line_reasons(tmp_path: Path, data: bytes, words: str) -> None:
    with pytest.raises(UnreadableBatch) as caught:
        read_delimited(_file(tmp_path, data), ["a", "b"])
    assert words in caught.value.reason
    assert "\n" not in caught.value.reason


def test_pseudonyms_are_keyed_stable_and_not_raw() -> None:
    one, other = Pseudonymiser("k1"), Pseudonymiser("k2")
    assert one.one("17850") == one.one(" 17850 ")
    assert one.one("17850") != other.one("17850")
    assert "17850" not in one.one("17850")
    series = one.series(pd.Series(["a", None, "a"], dtype="string"))
    assert series[0] == series[2] and pd.isna(series[1])


def test_conform_types_columns_and_keeps_extras() -> None:
    raw = pd.DataFrame({"user_id": ["u_1"], "country": [" UK "], "age": ["31"]})
    users = conform("users", raw)
    assert list(users.columns) == ["user_id", "country", "age"]
    assert users.loc[0, "country"] == "UK"

    events = conform("events", pd.DataFrame({"quantity": ["2", "x", "1.5"],
                                             "timestamp": ["2026-01-01T10:00:00Z", "no", None]}))
    assert list(events["quantity"].isna()) == [False, True, True], "non-integers become null"
    assert events.loc[0, "timestamp"] == pd.Timestamp("2026-01-01T10:00:00Z")
    assert events["event_id"].isna().all(), "missing columns are added as null"
