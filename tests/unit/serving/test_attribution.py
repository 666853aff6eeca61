"""The attribution ledger: which answer an outcome joins, once, and its rebuild from the logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts.readout import SPLIT, Readout
from contracts.traffic import PART_GLOB
from serving.attribution import KEEP_WINDOWS, Answer, Ledger, OutcomeLog, Refused, rebuild
from serving.traffic_log import TrafficLog

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=30)
SHOPPER, OTHER = "u_00000000000000aa", "u_00000000000000bb"


def _rid(n: int) -> str:
    return f"r-{n:032x}"


def _ledger(*answers: Answer) -> Ledger:
    ledger = Ledger(WINDOW)
    for answer in answers:
        ledger.served(answer)
    return ledger


def _answer(n: int, minutes: float, items=("I1", "I2"), shopper: str = SHOPPER, **kw) -> Answer:
    return Answer(_rid(n), shopper, T0 + timedelta(minutes=minutes), "1", tuple(items), **kw)


def test_a_named_answer_joins_once_and_a_replay_gets_the_first_post_back() -> None:
    ledger = _ledger(_answer(1, 0))
    joined = ledger.join(SHOPPER, "I2", "view", T0 + timedelta(minutes=5), _rid(1))
    assert joined.counted and joined.answer.request_id == _rid(1)
    ledger.count(joined, "fb-1", "feedback/2026-12-07T10.csv")
    again = ledger.join(SHOPPER, "I2", "view", T0 + timedelta(minutes=6), _rid(1))
    assert not again.counted and again.first == ("fb-1", "feedback/2026-12-07T10.csv")
    other_event = ledger.join(SHOPPER, "I2", "purchase", T0 + timedelta(minutes=6), _rid(1))
    assert other_event.counted, "another event type on the same item counts on its own"
    ledger.uncount(joined)
    assert ledger.join(SHOPPER, "I2", "view", T0 + timedelta(minutes=7), _rid(1)).counted


@pytest.mark.parametrize(("shopper", "item", "minutes", "rid", "status", "field", "message"), [
    (SHOPPER, "I1", 1, _rid(9), 404, "request_id", "was never served by this endpoint, or has "
     "expired"),
    (OTHER, "I1", 1, _rid(1), 422, "request_id", "was not served to this user_id"),
    (SHOPPER, "I1", -1, _rid(1), 422, "timestamp", "is earlier than the answer"),
    (SHOPPER, "I1", 31, _rid(1), 422, "timestamp", "past the attribution window of 30 minutes"),
    (SHOPPER, "I7", 1, _rid(1), 422, "item_id", "item_id I7 was not shown in the answer"),
])
def test_a_named_answer_the_event_cannot_follow_is_refused(shopper, item, minutes, rid, status,
                                                           field, message) -> None:
    ledger = _ledger(_answer(1, 0))
    with pytest.raises(Refused, match=message) as refused:
        ledger.join(shopper, item, "view", T0 + timedelta(minutes=minutes), rid)
    assert (refused.value.status, refused.value.field) == (status, field)


def test_without_a_request_id_the_latest_answer_that_showed_the_item_in_the_window_joins() -> None:
    ledger = _ledger(_answer(1, 0, ("I1", "I2")), _answer(2, 10, ("I3",)),
                     _answer(3, 20, ("I1",)), _answer(4, 5, ("I1",), shopper=OTHER))
    at = T0 + timedelta(minutes=15)
    assert ledger.join(SHOPPER, "I1", "view", at, None).answer.request_id == _rid(1), \
        "the answer at 20 min came after the event"
    assert ledger.join(SHOPPER, "I1", "view", T0 + timedelta(minutes=25),
                       None).answer.request_id == _rid(3)
    assert ledger.join(SHOPPER, "I2", "view", T0 + timedelta(minutes=31), None) is None, \
        "past the window"
    assert ledger.join(SHOPPER, "I9", "view", at, None) is None, "never shown"
    assert ledger.join("u_00000000000000cc", "I1", "view", at, None) is None


def test_the_ledger_is_bounded_in_number_and_age() -> None:
    ledger = Ledger(WINDOW, max_answers=3)
    for n in range(5):
        ledger.served(_answer(n, n))
    assert len(ledger) == 3 and ledger.get(_rid(1)) is None and ledger.get(_rid(4))
    ledger.served(_answer(9, KEEP_WINDOWS * 30 + 3.5))
    assert [ledger.get(_rid(n)) is not None for n in (3, 4, 9)] == [False, True, True]
    assert ledger.join(SHOPPER, "I1", "view", T0 + timedelta(minutes=3), None) is None


def test_a_restarted_endpoint_rebuilds_answers_counts_and_the_canary_read_out(
        tmp_path: Path) -> None:
    now = datetime.now(UTC)
    since = now - timedelta(minutes=90)  # the canary began before the ledger's horizon
    traffic, outcomes = TrafficLog(tmp_path / "traffic"), OutcomeLog(tmp_path / "outcomes")
    live, readout = Ledger(WINDOW), Readout("1", "2", SPLIT)
    rows = [(_rid(1), SHOPPER, "2", now - timedelta(minutes=80)),  # in the read-out only
            (_rid(2), OTHER, "1", now - timedelta(minutes=5)),
            (_rid(3), OTHER, "1", now - timedelta(minutes=4))]
    events = {_rid(1): ("I2", "purchase", 7.0), _rid(2): ("I1", "view", None)}
    for rid, shopper, version, moment in rows:
        traffic.append((moment, shopper, version, ["I1", "I2"], [0.9, 0.8], None, rid, True,
                        None))
        live.served(Answer(rid, shopper, moment, version, ("I1", "I2"), readout=readout))
        readout.impression(shopper, [version])
        if rid in events:  # an outcome a minute later, counted and logged
            item, event, revenue = events[rid]
            joined = live.join(shopper, item, event, moment + timedelta(minutes=1), rid)
            live.count(joined, f"fb-{rid}", "feedback/x.csv")
            outcomes.record(joined, moment + timedelta(minutes=1), 1, revenue, f"fb-{rid}",
                            "feedback/x.csv")
            readout.outcome(shopper, version, event, revenue)
    traffic.append((now, OTHER, "1", ["I1"], [0.9], None, None, False, None))  # no request id
    traffic.close()
    outcomes.close()

    ledger, restored = Ledger(WINDOW), Readout("1", "2", SPLIT)
    assert rebuild(ledger, tmp_path / "traffic", tmp_path / "outcomes", PART_GLOB, restored,
                   since, now) == 2, "the answers of the last two windows"
    assert ledger.get(_rid(1)) is None and ledger.get(_rid(3)) is not None
    replay = ledger.join(OTHER, "I1", "view", now, _rid(2))
    assert not replay.counted and replay.first == (f"fb-{_rid(2)}", "feedback/x.csv")
    assert restored.summary("view", 1, 0.0) == readout.summary("view", 1, 0.0)
    assert restored.arms[1].to_json()["revenue_per_impression"]["estimate"] == 7.0
