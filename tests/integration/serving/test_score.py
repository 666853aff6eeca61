"""`shoprec score` answers as the endpoint does, and the endpoint logs what it served.

One shared server (``tests/support/endpoint.py``) and the same champion: the batch rows of a
shopper must hold the items, scores and reasons of that shopper's ``/recommend`` answer.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy
from pydantic import SecretStr

from contracts.pseudonyms import Pseudonymiser
from contracts.traffic import PART_GLOB, traffic_folder
from pipelines.cli import main
from pipelines.data.sources.base import UsageError
from pipelines.steps.score import read_users, score
from tests.support.endpoint import KEY, Server, settings_for

RAW = ["C0", "C3", "C7", "someone-new"]


@pytest.fixture(scope="module")
def answers(server: Server) -> dict[str, dict]:
    """The endpoint's answers, k = 4, explained, taken just before scoring."""
    found = {}
    for raw in RAW:
        status, answer = server.call("/recommend", {"user_id": raw, "k": 4})
        assert status == 200, answer
        found[raw] = answer
    return found


def test_batch_rows_match_the_http_answers(answers: dict[str, dict], champion_dir: Path,
                                           tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("\n".join(RAW) + "\n\n")
    url = f"sqlite:///{tmp_path / 'shop.db'}"  # any SQLAlchemy database; PostgreSQL in production
    settings = settings_for(champion_dir).with_values(score_database_url=SecretStr(url))
    out = tmp_path / "out" / "recommendations.parquet"
    result = score(settings, out, read_users(users, settings), k=4)
    rows = pd.read_parquet(out)
    assert (result.shoppers, result.cold_start, result.rows) == (4, 1, len(rows))
    pseudonym = Pseudonymiser(KEY).one
    assert not set(rows["user_id"]) & set(RAW), "no raw id in the output"
    for raw, answer in answers.items():
        mine = rows[rows["user_id"] == pseudonym(raw)].sort_values("rank")
        assert mine["item_id"].tolist() == [i["item_id"] for i in answer["items"]], raw
        assert mine["score"].tolist() == pytest.approx([i["score"] for i in answer["items"]],
                                                       rel=1e-5), raw
        assert mine["reason"].tolist() == [i["explanation"]["reason"] for i in answer["items"]]
        assert set(mine["fallback"].fillna("none")) == {answer["fallback"] or "none"}
        assert set(mine["model_version"]) == {answer["model"]["version"]}
    table = pd.read_sql_table(settings.score.table, sqlalchemy.create_engine(url))
    assert len(table) == len(rows) and set(table["item_id"]) == set(rows["item_id"])


def test_score_locale_writes_the_reasons_the_endpoint_gives_in_that_language(
        server: Server, champion_dir: Path, tmp_path: Path) -> None:
    """`shoprec score --locale zh-CN`: the rows' reasons are the zh-CN answer's; an unknown
    locale is refused (a batch job names what it wants, it gets no silent fallback)."""
    out = tmp_path / "zh.parquet"
    settings = settings_for(champion_dir)
    pseudonym = Pseudonymiser(KEY).one
    score(settings, out, [pseudonym(r) for r in RAW], k=4, locale="zh-CN")
    rows = pd.read_parquet(out)
    assert set(rows["locale"]) == {"zh-CN"}
    for raw in RAW:
        status, answer = server.call("/recommend", {"user_id": raw, "k": 4, "locale": "zh-CN"})
        assert status == 200, answer
        mine = rows[rows["user_id"] == pseudonym(raw)].sort_values("rank")
        assert mine["reason"].tolist() == [i["explanation"]["reason"] for i in answer["items"]]
    with pytest.raises(UsageError, match="--locale fr: no catalog for it; there are: en, zh-CN"):
        score(settings, tmp_path / "fr.parquet", [pseudonym("C0")], locale="fr")


def test_the_endpoint_logs_pseudonyms_and_what_it_served(answers: dict[str, dict],
                                                          champion_dir: Path) -> None:
    """The traffic log flushes every 0.5 s on the test server (``server_env``)."""
    wanted = {Pseudonymiser(KEY).one(raw): answer for raw, answer in answers.items()}
    deadline, logged = time.monotonic() + 20, pd.DataFrame()
    while time.monotonic() < deadline:
        files = sorted(traffic_folder(settings_for(champion_dir)).glob(PART_GLOB))
        logged = pd.concat([pd.read_parquet(f) for f in files]) if files else logged
        if len(logged) and set(wanted) <= set(logged["pseudonym"]):
            break
        time.sleep(0.25)
    assert set(wanted) <= set(logged["pseudonym"])
    assert not set(logged["pseudonym"]) & set(RAW)
    for pseudonym, answer in wanted.items():
        row = logged[logged["pseudonym"] == pseudonym].iloc[-1]
        assert list(row["items"]) == [i["item_id"] for i in answer["items"]]
        assert list(row["scores"]) == pytest.approx([i["score"] for i in answer["items"]])
        assert row["model_version"] == answer["model"]["version"]
        assert (None if pd.isna(row["fallback"]) else row["fallback"]) == answer["fallback"]


@pytest.mark.parametrize("content, problem", [
    (None, "cannot read"),
    (b"", "holds no customer id"),
    (b"\xff\xfe\x00garbage", "cannot read"),
    (b"C1\n" + b"x" * 200 + b"\n", "longer than 128"),
])
def test_bad_users_files_are_one_line_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    content: bytes | None, problem: str,
) -> None:
    from contracts.settings import get_settings

    monkeypatch.setenv("SHOPREC_PSEUDONYM_KEY", KEY)
    get_settings.cache_clear()
    users = tmp_path / "users.txt"
    if content is not None:
        users.write_bytes(content)
    try:
        code = main(["score", "--data-dir", str(tmp_path), "--users", str(users),
                     "--out", str(tmp_path / "r.parquet")])
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert code == 2 and problem in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r.parquet").exists()


def test_an_unwritable_out_is_a_one_line_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from contracts.settings import get_settings

    monkeypatch.setenv("SHOPREC_PSEUDONYM_KEY", KEY)
    get_settings.cache_clear()
    (tmp_path / "a-file").write_text("x")
    try:
        code = main(["score", "--data-dir", str(tmp_path),
                     "--out", str(tmp_path / "a-file" / "r.parquet")])
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert code == 2 and "cannot write --out" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("url, problem", [
    ("postgresql+psycopg2://postgres@127.0.0.1:1/shop", "could not replace table t: connection"),
    ("not a url", "is not a database URL"),
])
def test_a_database_that_cannot_be_written_is_one_line(url: str, problem: str) -> None:
    from pipelines.data.sources.base import UsageError
    from pipelines.steps.score import write_table

    with pytest.raises(UsageError, match=problem) as caught:
        write_table(pd.DataFrame({"user_id": ["u_00000000000000aa"]}), url, "t")
    assert "\n" not in str(caught.value)
