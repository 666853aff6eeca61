"""Code tests of the strict reader and the pseudonymiser."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from contracts.pseudonyms import Pseudonymiser
from contracts.tables import conform
from pipelines.data.sources.base import UnreadableBatch
from pipelines.data.sources.reading import read_delimited, strict, take_notes


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
        (b"a,b\n1,2\n3", "truncated file: last line 3 has no line ending"),
        (b"a,b\n1,2\n3,4", "truncated file: last line 3 has no line ending"),  # every field
        (b"a,b\r\n1,2\r\n3,4\r", "truncated file: it ends between the CR and LF"),
        (b'a,b\n1,"unterminated', "truncated file"),
        (b'a,b\n1,"x\nrest of the cut field\n', "truncated file: ends inside a quoted field "
                                                 "opened in the row starting on line 2"),
        (b"\x00\x01\x02" * 100, "binary content"),
        (b"a,b\n" + b"1,\x00\x00\n" * 100, "binary content (NUL byte at offset 6)"),
        (b"a\xff,b\n1,2\n", "unreadable header row: broken encoding: byte 0xff"),
        (b"a,c\n1,2\n", "missing required columns b"),
        (b"a,b,a\n1,2,3\n", "header names a column twice: a"),
    ],
)
def test_broken_files_raise_one_line_reasons(tmp_path: Path, data: bytes, words: str) -> None:
    with pytest.raises(UnreadableBatch) as caught:
        read_delimited(_file(tmp_path, data), ["a", "b"])
    assert words in caught.value.reason
    assert "\n" not in caught.value.reason


# Row-level faults: (file, the set-aside row's line, reason, words in its detail).
ROW_FAULTS = [
    (b"a,b\n1,\xff\n5,6\n", 2, "malformed_encoding", "byte 0xff at column 3"),
    (b"a,b\n" + b"1,2\n" * 40000 + b"3,\x00\n", 40002, "malformed_control_bytes", "NUL byte"),
    (b"a,b\n1,x\ry\n5,6\n", 2, "malformed_control_bytes", "lone CR"),
    (b"a,b\n1,x\xef\xbb\xbfy\n5,6\n", 2, "malformed_control_bytes", "byte order mark"),
    (b"a,b\n1,2\na,b\n3,4\n", 3, "malformed_repeated_header", "header row repeated"),
    (b"a,b\n1,2\n\xef\xbb\xbfa,b\n3,4\n", 3, "malformed_repeated_header", "header row"),
    (b"a,b\n1," + b"x" * 1_000_000 + b"\n3,4\n", 2, "malformed_oversized_field",
     "field larger than field limit"),
    (b"a,b\n1,2,3,4\n3,4\n", 2, "malformed_field_count", "4 fields, expected 2"),
    (b"a,b\n, \n3,4\n", 2, "malformed_empty_row", "every field empty"),
    (b'a,b\n1,"x"y\n3,4\n', 2, "malformed_quoting", "',' expected after '\"'"),
    (b'a,b\n1,"x\n2,y\n', 2, "malformed_quoting", "never closed"),  # the next line is whole
    (b"a,b\r1,x\ny\r5,6\r", 2, "malformed_quoting", "new-line character"),  # CR file, a LF
]


@pytest.mark.parametrize(("data", "line", "reason", "words"), ROW_FAULTS)
def test_broken_rows_are_set_aside_and_the_rest_read(tmp_path: Path, data: bytes, line: int,
                                                     reason: str, words: str) -> None:
    frame = read_delimited(_file(tmp_path, data), ["a", "b"])
    malformed, dropped = take_notes(frame)
    assert malformed[["reason", "_line"]].values.tolist() == [[reason, line]]
    assert words in malformed.loc[0, "detail"] and "\n" not in malformed.loc[0, "detail"]
    assert line not in set(frame["_line"]) and dropped == []
    ends = max(data.count(b"\n"), data.count(b"\r") - data.count(b"\r\n"))
    lines = ends - 1  # every data line read or set aside
    assert len(frame) + len(malformed) == lines


def test_a_stray_quote_swallowing_lines_sets_aside_only_its_own_line(tmp_path: Path) -> None:
    frame = read_delimited(_file(tmp_path, b'a,b\n1,"x\n3,4\n5,"y"\n7,8\n'), ["a", "b"])
    malformed, _ = take_notes(frame)
    assert malformed["_line"].tolist() == [2]
    assert frame["_line"].tolist() == [3, 4, 5] and frame.loc[1, "b"] == "y"


def test_extra_columns_are_dropped_and_named_with_keep(tmp_path: Path) -> None:
    path = _file(tmp_path, b"a,email,b,c\n1,x@y.z,2,3\n")
    frame = read_delimited(path, ["a", "b"], keep=["c"])
    assert list(frame.columns) == ["_line", "a", "b", "c"]
    assert take_notes(frame)[1] == ["email"]
    assert take_notes(frame)[1] == [], "notes are taken once"
    assert list(read_delimited(path, ["a", "b"]).columns) == ["_line", "a", "email", "b", "c"]


def test_header_names_are_read_without_surrounding_spaces(tmp_path: Path) -> None:
    frame = read_delimited(_file(tmp_path, b" a , b\n1,2\n\n   \n3,4\n"), ["a", "b"])
    assert list(frame.columns) == ["_line", "a", "b"]
    assert frame["_line"].tolist() == [2, 5], "blank lines are no rows"
    assert take_notes(frame)[0].empty


def test_a_quoted_field_over_several_lines_is_one_row_on_its_first_line(tmp_path: Path) -> None:
    frame = read_delimited(_file(tmp_path, b'a,b\n1,"two\nlines"\n3,4\n'), ["a", "b"])
    assert frame["_line"].tolist() == [2, 4] and frame.loc[0, "b"] == "two\nlines"
    assert take_notes(frame)[0].empty


def test_trailing_delimiters_make_unnamed_columns_that_are_dropped(tmp_path: Path) -> None:
    frame = read_delimited(_file(tmp_path, b"a,b,,\n1,2,,\n"), ["a", "b"], keep=[])
    assert list(frame.columns) == ["_line", "a", "b"]
    assert take_notes(frame)[1] == ["", ""]


def test_a_file_in_another_encoding_is_text_with_broken_rows_not_binary(tmp_path: Path) -> None:
    data = ("a,b\n" + "".join(f"{i},Crème brûlée à la café\n" for i in range(50))).encode("cp1252")
    frame = read_delimited(_file(tmp_path, data), ["a", "b"])
    malformed, _ = take_notes(frame)
    assert len(frame) == 0 and set(malformed["reason"]) == {"malformed_encoding"}
    assert len(malformed) == 50


def test_notes_not_set_by_the_reader_are_ignored() -> None:
    frame = pd.DataFrame({"a": [1]})
    frame.attrs.update({"malformed_rows": {"x": 1}, "dropped_columns": "email"})
    malformed, dropped = take_notes(frame)
    assert malformed.empty and dropped == []


def test_strict_side_files_refuse_a_broken_row(tmp_path: Path) -> None:
    frame = read_delimited(_file(tmp_path, b"1\t2\n3\t4\t5\n"), sep="\t", names=["x", "y"])
    with pytest.raises(UnreadableBatch, match="batch.csv: line 2: 3 fields, expected 2"):
        strict(frame, "batch.csv")


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbfa,b\n1,2\n3,4\n",  # UTF-8 byte order mark
        b"a,b\r\n1,2\r\n3,4\r\n",  # CRLF
        b"a,b\n1,2\r\n3,4\n",  # mixed line endings (files joined)
        b"a,b\r1,2\r3,4\r",  # classic Mac: bare CR throughout, ending in one
        b'a,b\n1,2\n"3","4"\n',
    ],
    ids=["bom", "crlf", "mixed", "cr", "quoted"],
)
def test_line_ending_styles_and_bom_read_alike(tmp_path: Path, data: bytes) -> None:
    frame = read_delimited(_file(tmp_path, data), ["a", "b"])
    assert list(frame.columns) == ["_line", "a", "b"]
    assert frame[["a", "b"]].values.tolist() == [["1", "2"], ["3", "4"]]


def test_real_day_files_all_end_with_a_line_ending() -> None:
    """The truncation rule's premise, checked on the real data it must not misjudge."""
    from tests.conftest import shared_dataset

    files = [*sorted(shared_dataset("online-retail/by-day").glob("*.csv")),
             *sorted(shared_dataset("ml-100k").glob("u.*"))]
    assert len(files) > 300
    for path in files:
        with path.open("rb") as handle:
            handle.seek(-1, 2)
            assert handle.read(1) == b"\n", path.name


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
    assert list(users.columns) == ["user_id", "country", "segments", "age"]
    assert users.loc[0, "country"] == "UK"

    events = conform("events", pd.DataFrame({"quantity": ["2", "x", "1.5"],
                                             "timestamp": ["2026-01-01T10:00:00Z", "no", None]}))
    assert list(events["quantity"].isna()) == [False, True, True], "non-integers become null"
    assert events.loc[0, "timestamp"] == pd.Timestamp("2026-01-01T10:00:00Z")
    assert events["event_id"].isna().all(), "missing columns are added as null"
