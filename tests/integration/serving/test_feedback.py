"""Feedback under load: concurrent requests each land exactly once, as whole lines, in the hour
file of their arrival; the writer refuses a planted symlink and starts a new file each hour."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
from pathlib import Path

import pytest

from contracts.feedback import COLUMNS
from serving import feedback as feedback_module
from serving.feedback import FeedbackInbox
from tests.support.champion import RAW_USERS
from tests.support.endpoint import Server


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
