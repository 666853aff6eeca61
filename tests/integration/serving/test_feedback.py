"""Feedback under load: concurrent requests each land exactly once, as whole lines, in the hour
file of their arrival; the writer refuses a planted symlink and starts a new file each hour.
Outcomes join the answer they followed (named by request id, or inferred), once, into the
outcome log; one that cannot follow the answer it names is refused with a 4xx and a reason."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from contracts.feedback import COLUMNS
from contracts.outcomes import PART_GLOB
from contracts.pseudonyms import Pseudonymiser
from serving import feedback as feedback_module
from serving.feedback import FeedbackInbox
from tests.support.champion import RAW_USERS
from tests.support.endpoint import KEY, Server, serve


def _rows(path: Path) -> list[dict[str, str]]:
    """The file's rows, checking it is whole: one header, every line complete."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), "no half line at the end"
    lines = text.splitlines()
    assert lines[0] == ",".join(COLUMNS) and lines.count(lines[0]) == 1
    rows = list(csv.reader(io.StringIO(text)))[1:]
    assert all(len(row) == len(COLUMNS) for row in rows)
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


def test_concurrent_feedback_requests_each_land_exactly_once(server: Server) -> None:
    n, answers, barrier = 48, [], threading.Barrier(12)
    lock = threading.Lock()

    def send(worker: int) -> None:
        barrier.wait()
        for i in range(n // 12):
            body = {"user_id": RAW_USERS[(worker + i) % 10], "item_id": f"I{(worker + i) % 12}",
                    "event_type": "view", "quantity": 1 + i}
            status, answer = server.call("/feedback", body)
            with lock:
                answers.append((status, answer))

    workers = [threading.Thread(target=send, args=(w,)) for w in range(12)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert len(answers) == n and all(status == 200 for status, _ in answers), answers[:3]
    sent = [answer["feedback_id"] for _, answer in answers]
    assert len(set(sent)) == n
    files = {answer["batch"] for _, answer in answers}
    assert len(files) <= 2, "one file per hour (two if the hour turned meanwhile)"
    landed = [row["event_id"] for name in files
              for row in _rows(server.data_dir / "inbox" / name)]
    assert sorted(e for e in landed if e in set(sent)) == sorted(sent), "each exactly once"
    assert len(landed) == len(set(landed)), "no line written twice"


def test_the_writer_is_safe_across_threads(tmp_path: Path) -> None:
    inbox = FeedbackInbox(tmp_path / "inbox")

    def append(worker: int) -> None:
        for i in range(50):
            inbox.append(f"u_{worker:016x}", f"I{i}", "view", quantity=i + 1,
                         unit_price=0.1 * i)

    workers = [threading.Thread(target=append, args=(w,)) for w in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    [path] = (tmp_path / "inbox" / "feedback").iterdir()
    rows = _rows(path)
    assert len(rows) == 400 and len({r["event_id"] for r in rows}) == 400
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_new_hour_starts_a_new_file_and_the_answer_is_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moments = iter([dt.datetime(2026, 3, 1, 14, 59, 59, 999999, tzinfo=dt.UTC),
                    dt.datetime(2026, 3, 1, 15, 0, 0, tzinfo=dt.UTC)])

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return next(moments)

    monkeypatch.setattr(feedback_module, "datetime", Clock)
    inbox = FeedbackInbox(tmp_path / "inbox")
    first = inbox.append("u_0000000000000001", "I1", "view")
    second = inbox.append("u_0000000000000001", "I1", "purchase", unit_price=2.5)
    assert first[1] == "feedback/2026-03-01T14.csv"
    assert second[1] == "feedback/2026-03-01T15.csv"
    [row] = _rows(tmp_path / "inbox" / second[1])
    assert row["timestamp"] == "2026-03-01T15:00:00.000000Z" and row["unit_price"] == "2.5"


def test_a_symlink_planted_as_the_hour_file_is_refused(tmp_path: Path) -> None:
    inbox = FeedbackInbox(tmp_path / "inbox")
    _, name = inbox.append("u_0000000000000001", "I1", "view")
    path = tmp_path / "inbox" / name
    path.unlink()
    target = tmp_path / "elsewhere.txt"
    target.write_text("")
    path.symlink_to(target)
    with pytest.raises(OSError):
        inbox.append("u_0000000000000001", "I1", "view")
    assert target.read_text() == "", "nothing written through the link"


# ---- outcomes joined to the answers they followed ---------------------------------------------
def _answer(server: Server, raw: str, k: int = 3) -> dict:
    status, answer = server.call("/recommend", {"user_id": raw, "k": k, "explain": False})
    assert status == 200 and re.fullmatch(r"r-[0-9a-f]{32}", answer["request_id"]), answer
    return answer


def _outcomes(server: Server, request_id: str) -> pd.DataFrame:
    """The outcome log's rows for one answer, once the endpoint has flushed them (0.5 s)."""
    folder = server.data_dir / "outcomes"
    for _ in range(50):
        files = sorted(folder.glob(PART_GLOB))
        frame = pd.concat([pd.read_parquet(f) for f in files]) if files else pd.DataFrame()
        if not frame.empty and (frame["request_id"] == request_id).any():
            return frame[frame["request_id"] == request_id]
        time.sleep(0.1)
    return pd.DataFrame()


def test_an_outcome_joins_its_answer_once_however_often_it_is_posted(server: Server) -> None:
    answer = _answer(server, RAW_USERS[2])
    item = answer["items"][1]["item_id"]
    event = {"user_id": RAW_USERS[2], "item_id": item, "event_type": "add_to_cart",
             "request_id": answer["request_id"]}
    status, first = server.call("/feedback", event)
    assert status == 200 and first["counted"] and first["request_id"] == answer["request_id"]
    status, again = server.call("/feedback", event)  # a retried POST
    assert status == 200 and not again["counted"]
    assert (again["feedback_id"], again["batch"]) == (first["feedback_id"], first["batch"])
    lines = (server.data_dir / "inbox" / first["batch"]).read_text().count(first["feedback_id"])
    assert lines == 1, "a retry is not written to the inbox twice"
    status, purchase = server.call("/feedback", event | {"event_type": "purchase",
                                                         "quantity": 2, "unit_price": 4.5})
    assert status == 200 and purchase["counted"], "another event on the item counts on its own"
    rows = _outcomes(server, answer["request_id"])
    assert sorted(rows["event_type"]) == ["add_to_cart", "purchase"], rows
    bought = rows[rows["event_type"] == "purchase"].iloc[0]
    assert bought["revenue"] == 9.0 and bought["model_version"] == answer["model"]["version"]
    assert bought["pseudonym"] == Pseudonymiser(KEY).one(RAW_USERS[2]) and bought["item_id"] == item
    scraped = server.metrics()
    assert any(labels == {"model_version": "1", "event_type": "purchase"} and value >= 1
               for labels, value in scraped["shoprec_outcomes_total"])


def test_without_a_request_id_the_latest_answer_that_showed_the_item_joins(
        server: Server) -> None:
    answer = _answer(server, RAW_USERS[4])
    item = answer["items"][0]["item_id"]
    status, joined = server.call("/feedback", {"user_id": RAW_USERS[4], "item_id": item,
                                               "event_type": "view"})
    assert status == 200 and joined["request_id"] == answer["request_id"] and joined["counted"]
    status, again = server.call("/feedback", {"user_id": RAW_USERS[4], "item_id": item,
                                              "event_type": "view"})
    assert status == 200 and again["request_id"] == answer["request_id"]
    assert not again["counted"] and again["feedback_id"] != joined["feedback_id"], \
        "a second view is stored as feedback, not counted again"
    shown = {i["item_id"] for i in answer["items"]}
    unshown = next(f"I{i}" for i in range(12) if f"I{i}" not in shown)
    status, plain = server.call("/feedback", {"user_id": RAW_USERS[4], "item_id": unshown,
                                              "event_type": "view"})
    assert status == 200 and plain["request_id"] is None and not plain["counted"]


def test_an_outcome_that_cannot_follow_the_answer_it_names_is_refused(server: Server) -> None:
    answer = _answer(server, RAW_USERS[6])
    rid, item = answer["request_id"], answer["items"][0]["item_id"]
    shown = {i["item_id"] for i in answer["items"]}
    unshown = next(f"I{i}" for i in range(12) if f"I{i}" not in shown)
    now = datetime.now(UTC)
    base = {"user_id": RAW_USERS[6], "item_id": item, "event_type": "view", "request_id": rid}
    cases = [
        (base | {"request_id": "r-" + "0" * 32}, 404, "was never served by this endpoint"),
        (base | {"user_id": RAW_USERS[7]}, 422, "was not served to this user_id"),
        (base | {"item_id": unshown}, 422, f"item_id {unshown} was not shown in the answer"),
        (base | {"timestamp": (now - timedelta(hours=1)).isoformat()}, 422,
         "is earlier than the answer"),
        (base | {"timestamp": (now + timedelta(hours=1)).astimezone(
            timezone(timedelta(hours=5))).isoformat()}, 422, "in the future"),
        (base | {"request_id": "r-NOT-AN-ID"}, 422, "string_pattern_mismatch"),
        (base | {"request_id": 12}, 422, "string_type"),
        (base | {"request_id": "r-" + "a" * 10_000}, 422, "string_pattern_mismatch"),
    ]
    for body, status, message in cases:
        got, answer_ = server.call("/feedback", body)
        assert got == status and message in json.dumps(answer_), (body, got, answer_)
    # The same moment in another time zone is not earlier than the answer.
    later = datetime.now(UTC).astimezone(timezone(timedelta(hours=-7))).isoformat()
    status, ok = server.call("/feedback", base | {"timestamp": later})
    assert status == 200 and ok["counted"], ok
    assert _outcomes(server, rid)["event_type"].tolist() == ["view"], "the refused never count"


def test_a_restarted_endpoint_still_knows_what_it_served_and_counted(
        server: Server, champion_dir: Path) -> None:
    """A second endpoint on the same data directory (as after a restart) rebuilds the answers and
    the counted outcomes from the traffic and outcome logs."""
    answer = _answer(server, RAW_USERS[8])
    rid, (first_item, second_item) = answer["request_id"], [
        i["item_id"] for i in answer["items"][:2]]
    event = {"user_id": RAW_USERS[8], "item_id": first_item, "event_type": "view",
             "request_id": rid}
    status, first = server.call("/feedback", event)
    assert status == 200 and first["counted"]
    assert not _outcomes(server, rid).empty, "flushed to the outcome log"
    restarted = serve(champion_dir)
    fresh = next(restarted)
    try:
        status, again = fresh.call("/feedback", event)
        assert status == 200 and not again["counted"], again
        assert again["feedback_id"] == first["feedback_id"] and again["batch"] == first["batch"]
        status, other = fresh.call("/feedback", event | {"item_id": second_item})
        assert status == 200 and other["counted"] and other["request_id"] == rid
    finally:
        restarted.close()
