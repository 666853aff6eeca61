"""Data tests: a hostile corpus, each file with its expected fate, every row conserved.

Beyond ``test_bad_batches`` (one fault per file, each quarantined), these are the files a real
delivery path produces by accident or by malice: byte order marks, CRLF and mixed line endings,
NUL bytes, a header repeated where two exports were joined, cuts mid-line and inside a quoted
field, a huge field, the same event twice, the same bytes or the same events again under another
name, symbolic links and an oversized file. A fault in one row of these 30-row files is over the
1 % share of malformed rows a file may have, so those files are quarantined too (the row-level
corpus is ``test_ingestor_row_faults``). For each: the status, the reason's words, rows
conserved (``rows_in == accepted + rejected`` for accepted batches, nothing curated for the
others), and never a traceback.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from contracts.pseudonyms import Pseudonymiser
from contracts.settings import Settings
from pipelines.data.batch_result import BatchResult
from pipelines.data.curated import read_table
from pipelines.data.ingestor import Ingestor
from pipelines.data.landing import land
from pipelines.data.sources.movielens import DEFAULT_GENRES, MovieLensSource
from pipelines.data.sources.online_retail import OnlineRetailSource
from pipelines.data.sources.synthetic import SyntheticSource
from pipelines.data.spreadsheet_safe import neutralise_formulas
from pipelines.steps.ingest import validate_step
from tests.support.shopfiles import EVENT_HEADER, event_rows, write_catalogue

Build = Callable[[Path], Path]


def _text(day: str, rows: list[str], *, newline: str = "\n", header: str = EVENT_HEADER,
          end: str | None = None, bom: bool = False) -> bytes:
    text = newline.join([header, *rows]) + (newline if end is None else end)
    return ("\ufeff" if bom else "").encode() + text.encode()


def _file(day: str, payload: bytes, name: str | None = None) -> Build:
    def build(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (name or f"{day}.csv")
        path.write_bytes(payload)
        return path

    return build


def _rows(day: str, n: int = 30) -> list[str]:
    return event_rows(day, n=n)


def _mixed(day: str) -> bytes:
    rows = _rows(day)
    return (EVENT_HEADER + "\r\n" + "\n".join(rows[:10]) + "\n" + "\r\n".join(rows[10:])
            + "\r\n").encode()


def _cut_mid_value(day: str) -> bytes:
    """A transfer cut inside the last line's timestamp: every field there, one of them short."""
    whole = _text(day, _rows(day))
    return whole[: whole.rindex(b"Z,") - 3]


def _cut_in_quotes(day: str) -> bytes:
    rows = _rows(day)
    rows[-1] = rows[-1].rsplit(",", 1)[0] + ',"O-quoted\nsecond line of the order'
    return _text(day, rows)


def _huge_field(day: str) -> bytes:
    rows = _rows(day)
    rows[5] = rows[5].rsplit(",", 1)[0] + "," + "x" * 200_000
    return _text(day, rows)


# (case, builder, status, words in the reason or None, rows accepted when accepted)
CASES: list[tuple[str, Build, str, str | None, int]] = [
    ("bom", _file("2026-04-01", _text("2026-04-01", _rows("2026-04-01"), bom=True)),
     "accepted", None, 30),
    ("crlf", _file("2026-04-02", _text("2026-04-02", _rows("2026-04-02"), newline="\r\n")),
     "accepted", None, 30),
    ("bom_crlf", _file("2026-04-03", _text("2026-04-03", _rows("2026-04-03"), newline="\r\n",
                                           bom=True)), "accepted", None, 30),
    ("mixed_line_endings", _file("2026-04-04", _mixed("2026-04-04")), "accepted", None, 30),
    ("cut_mid_value_all_fields", _file("2026-04-05", _cut_mid_value("2026-04-05")),
     "quarantined", "truncated file: last line 31 has no line ending", 0),
    ("cut_between_cr_and_lf", _file("2026-04-06", _text(
        "2026-04-06", _rows("2026-04-06"), newline="\r\n", end="\r")),
     "quarantined", "truncated file: it ends between the CR and LF", 0),
    ("cut_inside_quoted_field", _file("2026-04-07", _cut_in_quotes("2026-04-07")),
     "quarantined", "truncated file: ends inside a quoted field", 0),
    ("nul_bytes_late", _file("2026-04-08", _text("2026-04-08", _rows("2026-04-08", 2000))
                             .replace(b"purchase,1", b"purchase\x00,1")),
     "quarantined", "667 of 2000 rows malformed (33.35%)", 0),
    ("header_repeated_mid_file", _file("2026-04-09", _text(
        "2026-04-09", [*_rows("2026-04-09")[:10], EVENT_HEADER, *_rows("2026-04-09")[10:]])),
     "quarantined", "line 12: malformed_repeated_header", 0),
    ("huge_field", _file("2026-04-10", _huge_field("2026-04-10")),
     "quarantined", "field larger than field limit", 0),
    ("same_event_twice_in_one_file", _file("2026-04-11", _text(
        "2026-04-11", _rows("2026-04-11") + _rows("2026-04-11")[:1])),
     "quarantined", "event_id is unique", 0),
    ("utf16", _file("2026-04-12", _text("2026-04-12", _rows("2026-04-12"))
                    .decode().encode("utf-16")), "quarantined", "NUL byte", 0),
    ("formula_header", _file("2026-04-13", b"=cmd|' /C calc'!A0,b\n1,2\n"), "quarantined",
     "missing required columns", 0),
]


@pytest.fixture(scope="module")
def ingestor(tmp_path_factory: pytest.TempPathFactory) -> Ingestor:
    root = tmp_path_factory.mktemp("hostile")
    ingestor = Ingestor(Settings(data_dir=root / "data", pseudonym_key="test-key"))
    results = ingestor.ingest([write_catalogue(root / "catalogue")], SyntheticSource())
    assert [r.status for r in results] == ["accepted"] * 2
    return ingestor


def _curated(ingestor: Ingestor) -> dict[str, int]:
    return {str(p.relative_to(ingestor.data.curated)): p.stat().st_mtime_ns
            for p in ingestor.data.curated.rglob("*.parquet")}


def _check_conserved(ingestor: Ingestor, result: BatchResult, before: dict[str, int]) -> None:
    assert result.reason is None or "Traceback" not in result.reason
    if result.report:
        assert "Traceback" not in Path(result.report).read_text()
    if result.status == "accepted":
        assert result.rows_in == result.rows_accepted + result.rows_rejected
    else:
        assert result.rows_accepted == 0
        assert _curated(ingestor) == before, "nothing of it reaches curated/"


@pytest.mark.parametrize(("case", "build", "status", "words", "accepted"), CASES,
                         ids=[c[0] for c in CASES])
def test_hostile_file(ingestor: Ingestor, tmp_path: Path, case: str, build: Build, status: str,
                      words: str | None, accepted: int) -> None:
    path = build(tmp_path / case)
    before = _curated(ingestor)

    [result] = ingestor.ingest([path], SyntheticSource())

    assert result.status == status, result.reason
    if words:
        assert words in (result.reason or "")
    assert result.rows_accepted == accepted
    _check_conserved(ingestor, result, before)
    if status == "quarantined":
        kept = ingestor.data.quarantine / result.batch / path.name
        assert kept.read_bytes() == path.read_bytes(), "kept untouched"


def test_same_bytes_under_two_names_one_accepted_one_duplicate(
    ingestor: Ingestor, tmp_path: Path
) -> None:
    payload = _text("2026-05-01", _rows("2026-05-01"))
    first = _file("2026-05-01", payload)(tmp_path / "a")
    renamed = _file("2026-05-01", payload, name="orders-2026-05-01-resent.csv")(tmp_path / "b")

    [accepted] = ingestor.ingest([first], SyntheticSource())
    before = _curated(ingestor)
    [duplicate] = ingestor.ingest([renamed], SyntheticSource())

    assert accepted.status == "accepted" and accepted.rows_accepted == 30
    assert duplicate.status == "duplicate" and accepted.batch in duplicate.reason
    assert duplicate.content_hash == accepted.content_hash
    _check_conserved(ingestor, duplicate, before)
    assert len(pd.read_parquet(ingestor.data.curated_partition("events", "2026-05-01"))) == 30
    [again] = Ingestor(ingestor.settings).ingest([renamed], SyntheticSource())
    assert again.status == "duplicate", "also for a new process"


def test_re_export_with_other_bytes_adds_only_new_events(ingestor: Ingestor,
                                                         tmp_path: Path) -> None:
    day = "2026-05-02"
    [first] = ingestor.ingest([_file(day, _text(day, _rows(day)))(tmp_path / "a")],
                              SyntheticSource())
    # The same day exported again: rows in another order, five new events at the end.
    rows = list(reversed(_rows(day))) + event_rows(day, n=5, start=30)
    before = _curated(ingestor)
    [second] = Ingestor(ingestor.settings).ingest(
        [_file(day, _text(day, rows), name=f"{day}-reexport.csv")(tmp_path / "b")],
        SyntheticSource())

    assert first.status == second.status == "accepted"
    assert (second.rows_in, second.rows_accepted, second.rows_rejected) == (35, 5, 30)
    assert second.rejected_reasons == {"duplicate_event": 30}
    _check_conserved(ingestor, second, before)
    events = read_table(ingestor.data, "events")
    assert events["event_id"].is_unique
    assert events["event_id"].str.startswith(f"E{day.replace('-', '')}").sum() == 35
    rejected = pd.read_csv(ingestor.data.rejected / f"batch_date={day}" / f"{second.batch}.csv")
    assert set(rejected["reason"]) == {"duplicate_event"} and len(rejected) == 30
    assert "| duplicate_event | 30 |" in Path(second.report).read_text()


def test_re_export_of_only_known_events_is_a_duplicate(ingestor: Ingestor,
                                                       tmp_path: Path) -> None:
    day = "2026-05-03"
    [first] = ingestor.ingest([_file(day, _text(day, _rows(day)))(tmp_path / "a")],
                              SyntheticSource())
    reexport = _file(day, _text(day, _rows(day)[::-1], newline="\r\n"),
                     name=f"{day}-again.csv")(tmp_path / "b")
    before = _curated(ingestor)

    [second] = ingestor.ingest([reexport], SyntheticSource())
    [third] = ingestor.ingest([reexport], SyntheticSource())

    assert second.status == "duplicate" and second.content_hash != first.content_hash
    assert (second.rows_in, second.rows_accepted, second.rows_rejected) == (30, 0, 30)
    assert "all 30 events already curated" in second.reason and first.batch in second.reason
    _check_conserved(ingestor, second, before)
    assert not (ingestor.data.rejected / f"batch_date={day}" / f"{second.batch}.csv").exists()
    assert third.status == "duplicate" and second.batch in third.reason


def test_symlinks_are_refused_not_followed(ingestor: Ingestor, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "2026-05-04.csv"
    _file("2026-05-04", _text("2026-05-04", _rows("2026-05-04")))(secret.parent)
    inbox = tmp_path / "inbox"
    (inbox / "events").mkdir(parents=True)
    (inbox / "events" / "2026-05-05.csv").symlink_to(secret)
    (inbox / "linked-folder").symlink_to(secret.parent, target_is_directory=True)
    before = _curated(ingestor)

    results = ingestor.ingest([inbox], SyntheticSource())

    assert [r.status for r in results] == ["quarantined", "quarantined"]
    for result in results:
        assert "symbolic link refused (not followed)" in result.reason
        assert result.failed_expectations == ["refused"]
        _check_conserved(ingestor, result, before)
        assert sorted(p.name for p in (ingestor.data.quarantine / result.batch).iterdir()) == [
            "summary.md", "validation.json"], "the link's target is not copied"
    copies = [p for p in ingestor.data.root.rglob("*.csv") if p.read_bytes() == secret.read_bytes()]
    assert not copies
    [again] = ingestor.ingest([inbox / "events"], SyntheticSource())
    assert again.status == "duplicate", "reported once, then a duplicate"


def test_oversized_batch_is_quarantined_unread(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", pseudonym_key="test-key",
                        max_batch_bytes=2000)
    ingestor = Ingestor(settings)
    small = write_catalogue(tmp_path / "catalogue")
    big = _file("2026-05-06", _text("2026-05-06", _rows("2026-05-06", 200)))(tmp_path / "in")

    results = ingestor.ingest([small, big], SyntheticSource())

    assert [r.status for r in results] == ["accepted", "accepted", "quarantined"]
    assert f"too large: {big.stat().st_size} bytes, over max_batch_bytes (2000)" in \
        results[2].reason
    assert not (settings.data_dir / "landing" / "synthetic" / results[2].batch).exists()
    assert not (settings.data_dir / "quarantine" / results[2].batch / big.name).exists()


def test_refused_inbox_entries_are_reported_by_the_pipeline_steps(tmp_path: Path) -> None:
    """The DAG's land and validate steps: a link in the inbox is landed as a marker only,
    validated as quarantined with its reason, and not pending any more afterwards."""
    inbox = write_catalogue(tmp_path / "inbox")
    outside = _file("2026-05-07", _text("2026-05-07", _rows("2026-05-07")))(tmp_path / "else")
    (inbox / "events").mkdir()
    (inbox / "events" / "2026-05-07.csv").symlink_to(outside)
    settings = Settings(data_dir=tmp_path / "data", pseudonym_key="test-key", inbox_dir=inbox)

    pending = land(settings)
    results = validate_step(settings, [str(p) for p in pending])

    assert sorted(r["status"] for r in results) == ["accepted", "accepted", "quarantined"]
    [refused] = [r for r in results if r["status"] == "quarantined"]
    assert "symbolic link refused" in refused["reason"]
    landed = [p for p in (settings.data_dir / "landing").rglob("*") if p.is_file()]
    assert all(p.read_bytes() != outside.read_bytes() for p in landed)
    assert land(settings) == [], "everything recorded: nothing pending"


def test_same_bytes_renamed_in_the_inbox_is_recorded_once_as_duplicate(tmp_path: Path) -> None:
    inbox = write_catalogue(tmp_path / "inbox")
    settings = Settings(data_dir=tmp_path / "data", pseudonym_key="test-key", inbox_dir=inbox)
    validate_step(settings, [str(p) for p in land(settings)])
    (inbox / "items-copy.csv").write_bytes((inbox / "items.csv").read_bytes())

    results = validate_step(settings, [str(p) for p in land(settings)])

    assert [r["status"] for r in results] == ["duplicate"]
    assert land(settings) == [], "the duplicate is recorded, not validated again every run"


def test_data_folders_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        ingestor = Ingestor(Settings(data_dir=tmp_path / "data", pseudonym_key="test-key"))
        ingestor.ingest([write_catalogue(tmp_path / "catalogue")], SyntheticSource())
        ingestor.ingest([_file("2026-05-08", b"")(tmp_path / "bad")], SyntheticSource())
    finally:
        os.umask(old)
    folders = [ingestor.data.root, *(p for p in ingestor.data.root.rglob("*") if p.is_dir())]
    assert {"landing", "quarantine", "curated", "rejected", "reports", "batches"} <= {
        p.name for p in folders}
    loose = [str(p) for p in folders if stat.S_IMODE(p.stat().st_mode) != 0o700]
    assert not loose


def test_rejected_rows_neutralise_formulas(tmp_path: Path) -> None:
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    rows = [
        "536365,85123A,WHITE HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
        "536366,22423,=HYPERLINK(\"http://x\"),1,2010-12-01 09:00:00,12.75,,United Kingdom",
        "536367,22423,@SUM(1+1),1,2010-12-01 09:00:00,12.75,,+44 1",
        "536368,22086,PAPER CHAIN,-2,2010-12-01 11:00:00,2.55,12583.0,-France",
    ]
    path = tmp_path / "by-day" / "2010-12-01.csv"
    path.parent.mkdir()
    path.write_text("\n".join([header, *rows]) + "\n")
    settings = Settings(data_dir=tmp_path / "data", pseudonym_key="test-key")

    [result] = Ingestor(settings).ingest([path], OnlineRetailSource())

    assert result.status == "accepted" and result.rows_rejected == 3
    csv = (settings.data_dir / "rejected" / "batch_date=2010-12-01" / f"{result.batch}.csv")
    rejected = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert set(rejected["Description"]) >= {"'=HYPERLINK(\"http://x\")", "'@SUM(1+1)"}
    assert set(rejected["Country"]) >= {"'+44 1", "'-France"}
    assert "-2" in set(rejected["Quantity"]), "a plain number is no formula"


def test_neutralise_formulas_covers_every_leading_character() -> None:
    frame = pd.DataFrame({"a": ["=1", "+1+1", "-1-1", "@A1", "\tx", "\rx", "ok", None, "-1.5e3"],
                          "n": range(9)})
    out = neutralise_formulas(frame)
    assert out["a"].tolist()[:7] == ["'=1", "'+1+1", "'-1-1", "'@A1", "'\tx", "'\rx", "ok"]
    assert pd.isna(out["a"].iloc[7]) and out["a"].iloc[8] == "-1.5e3"
    assert out["n"].tolist() == list(range(9)) and frame["a"].iloc[0] == "=1"


def test_movielens_reasons_and_reports_carry_no_raw_user_ids(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    # User 196 rated movie 242 twice: a repeated event id, which quarantines the batch.
    (folder / "u.data").write_text("196\t242\t3\t881250949\n196\t242\t4\t881250950\n")
    flags = "|".join("1" if g == "Comedy" else "0" for g in DEFAULT_GENRES)
    (folder / "u.item").write_text(f"242|Kolya (1996)|24-Jan-1997||http://x/242|{flags}\n")
    (folder / "u.user").write_text("196|49|M|writer|55105\n")
    settings = Settings(data_dir=tmp_path / "data", pseudonym_key="test-key")

    [result] = Ingestor(settings).ingest([folder], MovieLensSource())

    assert result.status == "quarantined" and "event_id is unique" in result.reason
    pseudonym = Pseudonymiser("test-key").one("196")
    assert f"ml-{pseudonym}-242" in result.reason
    written = [result.reason, Path(result.report).read_text(),
               *(p.read_text() for p in (settings.data_dir / "batches").glob("*.json")),
               *(p.read_text() for p in (settings.data_dir / "quarantine").rglob("*.json"))]
    assert not [text for text in written if "ml-196" in text]
