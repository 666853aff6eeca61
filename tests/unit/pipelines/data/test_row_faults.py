"""Data tests: row-level faults are row-level, for every source that reads delimited files.

Each file holds 200 good rows and one fault of a kind a delivery path produces: a stray NUL or
other control byte, a lone CR, a byte order mark inside a row, a byte in another encoding, an
embedded quote that breaks the CSV, a quote never closed, a field of 1 MB, too many or too few
fields, the header repeated mid-file, a value that does not parse. Each must hold the invariant:
every landed row is accepted or set aside in ``rejected/`` with its line and reason, nothing is
counted twice, and no traceback; the file is quarantined only over ``max_bad_row_share``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from contracts.settings import Settings
from pipelines.data.batch_result import BatchResult
from pipelines.data.ingestor import Ingestor
from pipelines.data.row_faults import FAILED, is_malformed, too_many_malformed
from pipelines.data.sources.movielens import MovieLensSource
from tests.support.delimited_sources import SHOPS, Shop

N = 200
BAD = 7  # the index of the faulty row: it lies on line BAD + 2 (the header is line 1)

# (case, how the row is broken, the reason it is set aside with)
ROW_FAULTS: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("stray_nul", lambda r: r[:-2] + b"\x00" + r[-2:], "malformed_control_bytes"),
    ("bell_control_byte", lambda r: r[:-2] + b"\x07" + r[-2:], "malformed_control_bytes"),
    ("lone_cr_in_field", lambda r: r[:-2] + b"\r" + r[-2:], "malformed_control_bytes"),
    ("bom_mid_row", lambda r: r[:-2] + "\ufeff".encode() + r[-2:], "malformed_control_bytes"),
    ("latin1_byte_in_utf8", lambda r: r + "é".encode("latin-1"), "malformed_encoding"),
    ("embedded_quote_breaks_csv", lambda r: r.rsplit(b",", 1)[0] + b',"a"b', "malformed_quoting"),
    ("quote_never_closed", lambda r: r.rsplit(b",", 1)[0] + b',"abc', "malformed_quoting"),
    ("field_of_1_mb", lambda r: r.rsplit(b",", 1)[0] + b"," + b"x" * 1_000_000,
     "malformed_oversized_field"),
    ("too_many_fields", lambda r: r + b",extra", "malformed_field_count"),
    ("too_few_fields", lambda r: r.rsplit(b",", 1)[0], "malformed_field_count"),
    ("only_delimiters", lambda r: b"," * r.count(b","), "malformed_empty_row"),
]


def _payload(shop: Shop, day: str, breaks: Callable[[bytes], bytes] | None = None,
             at: tuple[int, ...] = (BAD,)) -> bytes:
    rows = [r.encode() for r in shop.rows([day], N)]
    for i in at:
        rows[i] = breaks(rows[i]) if breaks else rows[i]
    return b"\n".join(rows) + b"\n"


@pytest.fixture(scope="module", params=SHOPS, ids=[s.name for s in SHOPS])
def shop(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[Shop, Ingestor]:
    shop: Shop = request.param
    root = tmp_path_factory.mktemp(shop.name)
    ingestor = Ingestor(Settings(data_dir=root / "data", pseudonym_key="test-key"))
    first = shop.catalogue(root / "catalogue")
    if first is not None:
        assert {r.status for r in ingestor.ingest([first[0]], first[1])} == {"accepted"}
    return shop, ingestor


def check_invariant(ingestor: Ingestor, result: BatchResult) -> pd.DataFrame:
    """Every row accepted or set aside with its line and reason, once; the rejected rows."""
    assert result.reason is None or "Traceback" not in result.reason
    assert "Traceback" not in Path(result.report).read_text()
    if result.status != "accepted":
        assert result.rows_accepted == result.rows_rejected == 0
        return pd.DataFrame()
    assert result.rows_in == result.rows_accepted + result.rows_rejected
    path = next(ingestor.data.rejected.glob(f"batch_date=*/{result.batch}.csv"), None)
    rejected = pd.read_csv(path, dtype=str) if path else pd.DataFrame(
        {"reason": [], "_line": []})
    assert len(rejected) == result.rows_rejected
    assert rejected["_line"].notna().all() and rejected["reason"].notna().all()
    assert rejected["_line"].is_unique, "no row set aside twice"
    assert int(is_malformed(rejected["reason"]).sum()) == result.rows_malformed
    return rejected


def _ingest(shop: Shop, ingestor: Ingestor, path: Path) -> BatchResult:
    [result] = ingestor.ingest([path], shop.source())
    return result


@pytest.mark.parametrize(("case", "breaks", "reason"), ROW_FAULTS, ids=[c[0] for c in ROW_FAULTS])
def test_one_broken_row_is_set_aside_and_the_rest_loaded(
    shop: tuple[Shop, Ingestor], tmp_path: Path, case: str, breaks: Callable[[bytes], bytes],
    reason: str
) -> None:
    shop_, ingestor = shop
    day = f"2026-03-{ROW_FAULTS.index((case, breaks, reason)) + 1:02d}"
    path = shop_.write(tmp_path, f"{day}.csv", _payload(shop_, day, breaks))

    result = _ingest(shop_, ingestor, path)

    assert result.status == "accepted", result.reason
    assert (result.rows_in, result.rows_accepted, result.rows_malformed) == (N, N - 1, 1)
    rejected = check_invariant(ingestor, result)
    assert rejected[["reason", "_line"]].values.tolist() == [[reason, str(BAD + 2)]]
    assert "malformed rows (unreadable or unparseable, set aside): 1" in Path(
        result.report).read_text()


def test_a_value_that_does_not_parse_is_set_aside(shop: tuple[Shop, Ingestor],
                                                  tmp_path: Path) -> None:
    shop_, ingestor = shop
    day = "2026-03-20"
    rows = shop_.rows([day], N)
    rows[BAD] = shop_.unparseable(rows[BAD])
    result = _ingest(shop_, ingestor, shop_.write(tmp_path, f"{day}.csv", rows))

    assert result.status == "accepted", result.reason
    rejected = check_invariant(ingestor, result)
    assert rejected["_line"].tolist() == [str(BAD + 2)]
    assert rejected["reason"].iloc[0].startswith("unparseable_")


def test_header_repeated_mid_file_is_one_set_aside_row(shop: tuple[Shop, Ingestor],
                                                       tmp_path: Path) -> None:
    shop_, ingestor = shop
    day = "2026-03-21"
    rows = shop_.rows([day], N)
    rows.insert(100, shop_.header)
    result = _ingest(shop_, ingestor, shop_.write(tmp_path, f"{day}.csv", rows))

    assert result.status == "accepted", result.reason
    assert (result.rows_in, result.rows_accepted) == (N + 1, N)
    rejected = check_invariant(ingestor, result)
    assert rejected[["reason", "_line"]].values.tolist() == [["malformed_repeated_header", "102"]]


def test_over_the_share_the_file_is_quarantined_and_the_limit_is_a_setting(
        shop: tuple[Shop, Ingestor], tmp_path: Path) -> None:
    shop_, ingestor = shop
    day = "2026-03-22"
    payload = _payload(shop_, day, lambda r: r + b",extra", at=(3, 50, 90))  # 1.5 %
    path = shop_.write(tmp_path / "a", f"{day}.csv", payload)

    result = _ingest(shop_, ingestor, path)

    assert result.status == "quarantined" and result.failed_expectations == [FAILED]
    assert result.reason.startswith("3 of 200 rows malformed (1.50%), over the 1% limit")
    assert "first: line 5: malformed_field_count" in result.reason
    assert "rows in: 200" in Path(result.report).read_text()
    assert "malformed rows (unreadable or unparseable, set aside): 3" in Path(
        result.report).read_text()
    check_invariant(ingestor, result)
    lenient = Ingestor(ingestor.settings.with_values(max_bad_row_share=0.02))
    again = shop_.write(tmp_path / "b", f"{day}-again.csv", payload + b"\n")
    [loaded] = lenient.ingest([again], shop_.source())
    assert loaded.status == "accepted" and loaded.rows_malformed == 3
    check_invariant(lenient, loaded)


def test_an_extra_column_is_dropped_and_reported(shop: tuple[Shop, Ingestor],
                                                 tmp_path: Path) -> None:
    shop_, ingestor = shop
    day = "2026-03-23"
    header = shop_.header.replace(",", ",email,", 1)
    rows = [r.replace(",", f",someone{i}@example.com,", 1)
            for i, r in enumerate(shop_.rows([day], N))]
    rows[BAD] = rows[BAD] + ",extra"  # and one broken row, whose e-mail must not be kept either
    result = _ingest(shop_, ingestor, shop_.write(tmp_path, f"{day}.csv", rows, header=header))

    assert result.status == "accepted", result.reason
    assert result.dropped_columns == ["email"] and result.rows_accepted == N - 1
    assert "`email`" in Path(result.report).read_text()
    check_invariant(ingestor, result)
    written = [p.read_bytes() for p in ingestor.data.root.rglob("*")
               if p.is_file() and "landing" not in p.parts and p.suffix in (".csv", ".parquet",
                                                                           ".json", ".md")]
    assert not [w for w in written if b"someone" in w and b"example.com" in w]


def test_a_renamed_required_column_quarantines_the_file(shop: tuple[Shop, Ingestor],
                                                        tmp_path: Path) -> None:
    shop_, ingestor = shop
    day = "2026-03-24"
    first = shop_.header.split(",")[0]
    header = shop_.header.replace(first, first + "_renamed", 1)
    result = _ingest(shop_, ingestor, shop_.write(tmp_path, f"{day}.csv", shop_.rows([day], N),
                                                 header=header))

    assert result.status == "quarantined" and result.failed_expectations == ["readable"]
    assert f"missing required columns {first}" in result.reason
    check_invariant(ingestor, result)


def test_a_file_of_only_broken_rows_is_quarantined(shop: tuple[Shop, Ingestor],
                                                   tmp_path: Path) -> None:
    shop_, ingestor = shop
    day = "2026-03-25"
    rows = [r + ",x" for r in shop_.rows([day], 20)]
    result = _ingest(shop_, ingestor, shop_.write(tmp_path, f"{day}.csv", rows))
    assert result.status == "quarantined" and result.rows_malformed == result.rows_in == 20
    assert result.reason.startswith("20 of 20 rows malformed (100.00%)")
    check_invariant(ingestor, result)


def test_movielens_ratings_with_a_broken_line(tmp_path: Path) -> None:
    """The headerless tab-separated u.data: a broken line is set aside like in any other file."""
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    lines = [f"{1 + i % 5}\t{1 + i // 5}\t{1 + i % 5}\t{881250949 + i}" for i in range(N)]
    lines[BAD] += "\t\x00"
    (folder / "u.data").write_bytes(("\n".join(lines) + "\n").encode())
    flags = "|".join(["0"] * 5 + ["1"] + ["0"] * 13)
    (folder / "u.item").write_text("".join(
        f"{i}|Film {i} (1996)|24-Jan-1997||http://x/{i}|{flags}\n" for i in range(1, N // 5 + 1)))
    (folder / "u.user").write_text("".join(f"{i}|30|F|writer|55105\n" for i in range(1, 6)))
    ingestor = Ingestor(Settings(data_dir=tmp_path / "data", pseudonym_key="test-key"))

    [result] = ingestor.ingest([folder], MovieLensSource())

    assert result.status == "accepted", result.reason
    assert (result.rows_in, result.rows_accepted, result.rows_malformed) == (N, N - 1, 1)
    rejected = check_invariant(ingestor, result)
    assert rejected[["reason", "_line"]].values.tolist() == [["malformed_control_bytes",
                                                              str(BAD + 1)]]


def test_business_rejections_do_not_count_towards_the_share() -> None:
    rejected = pd.DataFrame({"reason": ["missing_customer_id"] * 60 + ["duplicate_event"] * 30
                             + ["malformed_field_count"], "_line": range(2, 93),
                             "detail": [None] * 90 + ["3 fields, expected 2"]})
    assert too_many_malformed(rejected, 200, 0.01) is None
    assert too_many_malformed(pd.concat([rejected, rejected.tail(1)]), 200, 0.01) is None, \
        "exactly at the limit is not over it"
    assert "3 of 200 rows malformed (1.50%)" in too_many_malformed(
        pd.concat([rejected, rejected.tail(1), rejected.tail(1)]), 200, 0.01)
    assert too_many_malformed(rejected.tail(1), 1, 1.0).startswith("1 of 1 rows"), \
        "a file with no readable row is never loaded"


_JUNK = [b"\x00", b"\r", b"\n", b'"', b",", b"\xff", "\ufeff".encode(), b"\x1a", b"\t", b"\r\n",
         b'""', b"x" * 200_000, b"\xe9", b";"]


def _mutated(data: bytes, rng: random.Random) -> bytes:
    """``data`` with a few random insertions of hostile bytes, cuts and repeated lines."""
    for _ in range(rng.randint(1, 4)):
        op, at = rng.random(), rng.randrange(len(data))
        if op < 0.5:
            data = data[:at] + rng.choice(_JUNK) + data[at:]
        elif op < 0.7:
            data = data[:at] + data[at + rng.randint(1, 50):]
        elif op < 0.85:
            lines = data.split(b"\n")
            lines.insert(rng.randrange(len(lines)), rng.choice(lines))
            data = b"\n".join(lines)
        else:
            data = data[:at]
    return data


def test_mutated_files_never_raise_and_keep_the_invariant(shop: tuple[Shop, Ingestor],
                                                          tmp_path: Path) -> None:
    """Whatever the damage: a result, never a traceback; every row of a loaded file counted."""
    shop_, ingestor = shop
    rng = random.Random(27)
    statuses = set()
    for n in range(12):
        day = f"2025-06-{n + 1:02d}"
        payload = _mutated(_payload(shop_, day), rng)
        result = _ingest(shop_, ingestor, shop_.write(tmp_path / str(n), f"{day}.csv", payload))
        check_invariant(ingestor, result)
        assert result.reason is None or "\n" not in result.reason
        statuses.add(result.status)
    assert statuses == {"accepted", "quarantined"}
