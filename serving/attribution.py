"""Which served answer a shopper's action followed, so each outcome is counted once, for one model.

Every ``/recommend`` answer gets a request id and is remembered here (shopper, time, items, the
version credited with each item, and the canary read-out it counts in, if any). A ``/feedback``
event names its answer by request id, or is joined to the latest answer served to the same
shopper within ``rollout_attribution_minutes`` before the event that showed the item. The same
(request id, item, event type) is counted once however often it is posted: a retried POST with
the request id gets the first post's feedback id back and is not written again.

The ledger is in memory, on the event loop like ``serving.rollout`` (no lock), and bounded: at
most ``MAX_ANSWERS`` answers, none kept longer than ``KEEP_WINDOWS`` attribution windows (a
late-posted event still finds its answer). After a restart ``rebuild`` reads it back from the
traffic and outcome logs, and seeds the running canary's read-out from them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa

from contracts.outcomes import COLUMNS, outcomes_folder
from contracts.readout import Readout
from contracts.settings import Settings
from serving.traffic_log import PartLog

log = logging.getLogger(__name__)

REQUEST_ID_PATTERN = r"^r-[0-9a-f]{32}$"
MAX_ANSWERS = 100_000  # about 1 kB each with 10 items (measured): 100 MB at most
PER_SHOPPER = 32  # latest answers per shopper searched when the request id is absent
KEEP_WINDOWS = 2


@dataclass(eq=False, slots=True)
class Answer:
    """One served answer, as outcomes join it."""

    request_id: str
    pseudonym: str
    time: datetime
    version: str | None
    items: tuple[str, ...]
    prices: tuple[float | None, ...] = ()
    credited: tuple[str, ...] | None = None  # interleaving: the version that placed each item
    readout: Readout | None = None  # the canary read-out it counts in
    counted: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def credit(self, item: str) -> str | None:
        """The version credited with ``item`` (shown in this answer)."""
        return self.credited[self.items.index(item)] if self.credited else self.version

    def price(self, item: str) -> float | None:
        index = self.items.index(item)
        return self.prices[index] if index < len(self.prices) else None


class Refused(ValueError):
    """The event names an answer it cannot join: ``status`` (404, 422), a message, and the
    body field at fault (a 422 names it as every validation error does)."""

    def __init__(self, status: int, message: str, field: str = "request_id") -> None:
        super().__init__(message)
        self.status, self.field = status, field


@dataclass
class Joined:
    """The answer an event joined; ``first`` is the (feedback id, batch) of the post that
    counted it when this one does not count (a replay)."""

    answer: Answer
    item: str
    event_type: str
    first: tuple[str, str] | None = None

    @property
    def counted(self) -> bool:
        return self.first is None


class Ledger:
    """Served answers by request id and by shopper, bounded in number and age."""

    def __init__(self, window: timedelta, max_answers: int = MAX_ANSWERS) -> None:
        self.window, self.max_answers = window, max_answers
        self._answers: OrderedDict[str, Answer] = OrderedDict()
        self._by_shopper: dict[str, deque[Answer]] = {}

    def __len__(self) -> int:
        return len(self._answers)

    def served(self, answer: Answer) -> None:
        """Remember an answer (the latest); forget the oldest beyond the bounds."""
        self._answers[answer.request_id] = answer
        self._by_shopper.setdefault(answer.pseudonym, deque(maxlen=PER_SHOPPER)).append(answer)
        horizon = answer.time - KEEP_WINDOWS * self.window
        while self._answers:
            oldest = next(iter(self._answers.values()))
            if len(self._answers) <= self.max_answers and oldest.time >= horizon:
                break
            self._forget(oldest)

    def join(self, pseudonym: str, item: str, event_type: str, moment: datetime,
             request_id: str | None) -> Joined | None:
        """The answer this event follows, or None when it follows none (ordinary feedback);
        ``Refused`` when it names an answer it cannot belong to."""
        if request_id is not None:
            answer = self._named(pseudonym, item, moment, request_id)
        else:
            answer = self._inferred(pseudonym, item, moment)
            if answer is None:
                return None
        return Joined(answer, item, event_type, answer.counted.get((item, event_type)))

    def count(self, joined: Joined, feedback_id: str, batch: str) -> None:
        """Mark the join counted (before any await: a concurrent replay then sees it)."""
        joined.answer.counted[(joined.item, joined.event_type)] = (feedback_id, batch)

    def uncount(self, joined: Joined) -> None:
        """Undo ``count`` when the event could not be stored after all."""
        joined.answer.counted.pop((joined.item, joined.event_type), None)

    def get(self, request_id: str) -> Answer | None:
        return self._answers.get(request_id)

    # ---- parts ------------------------------------------------------------------------------
    def _named(self, pseudonym: str, item: str, moment: datetime, request_id: str) -> Answer:
        answer = self._answers.get(request_id)
        minutes = self.window.total_seconds() / 60
        if answer is None:
            raise Refused(404, f"request_id {request_id} was never served by this endpoint, or "
                          f"has expired (answers are kept {KEEP_WINDOWS * minutes:g} minutes)")
        if answer.pseudonym != pseudonym:
            raise Refused(422, f"request_id {request_id} was not served to this user_id")
        if moment < answer.time:
            raise Refused(422, f"timestamp {moment.isoformat()} is earlier than the answer "
                          f"{request_id} it follows ({answer.time.isoformat()})", "timestamp")
        if moment > answer.time + self.window:
            raise Refused(422, f"timestamp is {(moment - answer.time).total_seconds() / 60:.1f} "
                          f"minutes after the answer {request_id}, past the attribution window "
                          f"of {minutes:g} minutes (SHOPREC_ROLLOUT_ATTRIBUTION_MINUTES)",
                          "timestamp")
        if item not in answer.items:
            raise Refused(422, f"item_id {item} was not shown in the answer {request_id}",
                          "item_id")
        return answer

    def _inferred(self, pseudonym: str, item: str, moment: datetime) -> Answer | None:
        for answer in reversed(self._by_shopper.get(pseudonym, ())):
            if answer.time > moment:
                continue
            if answer.time < moment - self.window:
                return None
            if item in answer.items:
                return answer
        return None

    def _forget(self, answer: Answer) -> None:
        del self._answers[answer.request_id]
        mine = self._by_shopper.get(answer.pseudonym)
        if mine and mine[0] is answer:
            mine.popleft()
            if not mine:
                del self._by_shopper[answer.pseudonym]


def _parts(folder: Path, glob: str, since: datetime) -> pd.DataFrame:
    """The rows of a log's parts from ``since`` on (days before it are not read)."""
    files = [f for f in sorted(folder.glob(glob)) if f.parent.name >= f"date={since:%Y-%m-%d}"]
    frames = [pd.read_parquet(f) for f in files]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if frame.empty:
        return frame
    return frame[pd.to_datetime(frame["time"], utc=True) >= pd.Timestamp(since)]


def rebuild(ledger: Ledger, traffic: Path, outcomes: Path, glob: str,
            readout: Readout | None = None, since: datetime | None = None,
            now: datetime | None = None) -> int:
    """Refill an empty ledger from the logs: answers of the last ``KEEP_WINDOWS`` windows with
    their counted outcomes; and ``readout`` (the running canary's) with every logged answer and
    outcome that counted in a read-out since ``since``. The number of answers restored."""
    now = now or datetime.now(UTC)
    horizon = now - KEEP_WINDOWS * ledger.window
    start = min(horizon, since) if readout is not None and since is not None else horizon
    answers = _parts(traffic, glob, start)
    if answers.empty or "request_id" not in answers:
        return 0
    answers = answers[answers["request_id"].notna()].sort_values("time", kind="stable")
    done = _parts(outcomes, glob, start)
    versions = {a.version for a in readout.arms} if readout is not None else set()
    restored, index = 0, {}
    for row in answers.itertuples(index=False):
        moment = pd.Timestamp(row.time).to_pydatetime()
        credited = tuple(row.credited) if row.credited is not None else None
        counts = (readout is not None and since is not None and moment >= since
                  and bool(row.in_readout) and row.model_version in versions)
        answer = Answer(row.request_id, row.pseudonym, moment, row.model_version,
                        tuple(row.items), credited=credited, readout=readout if counts else None)
        index[answer.request_id] = answer
        if counts:
            readout.impression(answer.pseudonym, credited or (answer.version,))
        if moment >= horizon:
            ledger.served(answer)
            restored += 1
    for row in (done.itertuples(index=False) if not done.empty else ()):
        answer = index.get(row.request_id)
        key = (row.item_id, row.event_type)
        if answer is None or key in answer.counted:
            continue
        answer.counted[key] = (row.feedback_id, row.batch)
        if answer.readout is not None:
            revenue = None if pd.isna(row.revenue) else float(row.revenue)
            answer.readout.outcome(answer.pseudonym, row.model_version, row.event_type, revenue)
    if restored:
        log.info("attribution: %d answers restored from the traffic log", restored)
    return restored


class OutcomeLog(PartLog):
    """The counted outcomes, one row each (``contracts.outcomes``), written like the traffic
    log: buffered, off the request path, in Parquet parts."""

    what = "outcome log"
    schema = pa.schema(list(zip(COLUMNS, (
        pa.timestamp("us", tz="UTC"), pa.string(), pa.string(), pa.string(), pa.string(),
        pa.string(), pa.int64(), pa.float64(), pa.string(), pa.string(), pa.bool_()),
        strict=True)))

    def record(self, joined: Joined, moment: datetime, quantity: int, revenue: float | None,
               feedback_id: str, batch: str) -> bool:
        answer = joined.answer
        return self.append((moment.astimezone(UTC), answer.request_id, answer.pseudonym,
                            answer.credit(joined.item), joined.item, joined.event_type,
                            quantity, revenue, feedback_id, batch, answer.readout is not None))


def open_outcome_log(settings: Settings) -> OutcomeLog | None:
    """Beside the traffic log, and on when it is (the read-out needs both)."""
    if not settings.traffic.log:
        return None
    return OutcomeLog(outcomes_folder(settings), settings.traffic.flush_rows,
                      settings.traffic.flush_seconds, settings.traffic.buffer_rows)
