"""The online shopper store: each shopper's latest positive events, as the endpoint reads them.

The model bundle freezes the shoppers' histories and the catalogue at training time; this store
holds the shop's state now. Ingestion writes every accepted batch's curated positives and
catalogue rows into it, ``POST /feedback`` each purchase as it happens, and the endpoint reads a
shopper's state per request (and the catalogue when it changes), so new purchases, new shoppers,
new products and feedback count without retraining.

Applying is idempotent twice over: a batch applied again changes nothing (its id is recorded with
its events, in one transaction or one Redis script), and an event is keyed by shopper and
``event_id``, so feedback applied live and again from the inbox batch is counted once. Each
shopper keeps at most ``limit`` events, the latest by event time. Two back ends behind one
interface: SQLite under the data directory (embedded default, no server; WAL, so readers never
wait for a writer) and Redis (the production profile).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import pandas as pd

from contracts.tables import POSITIVE_EVENTS

SQLITE_FILE = "shoppers.sqlite"
LIVE = ""  # the batch id of events applied one by one as they happen
# What the endpoint needs of an item to recommend one it was not trained on.
CATALOGUE_COLUMNS = ("item_id", "title", "category", "brand", "price")


@dataclass(frozen=True)
class ShopperState:
    """One shopper's stored positives: item ids oldest first, and when they last acted."""

    items: tuple[str, ...]
    last_activity: dt.datetime


@dataclass(frozen=True)
class Freshness:
    """How current the store is, for ``/metadata``."""

    last_batch: str | None
    applied_at: str | None
    batches: int
    events: int

    def to_json(self) -> dict:
        return {"last_batch": self.last_batch, "applied_at": self.applied_at,
                "batches": self.batches, "events": self.events}


class ShopperStore(Protocol):
    limit: int

    def apply(self, batch_id: str, events: pd.DataFrame | None,
              items: pd.DataFrame | None = None) -> int:
        """Add a batch's positive events (events-table columns) and catalogue rows (items-table
        columns; an item's latest row wins); returns how many events were new, -1 when the
        batch was applied before (nothing changes). ``batch_id`` "" (``LIVE``): events applied
        as they happen (feedback), recorded under no batch."""

    def catalogue(self) -> pd.DataFrame:
        """The catalogue rows applied so far, one per item (``CATALOGUE_COLUMNS``)."""

    def applied(self) -> set[str]:
        """The ids of the batches applied so far."""

    def states(self, users: Sequence[str]) -> dict[str, ShopperState]:
        """The stored state of each of ``users`` that has one."""

    def freshness(self) -> Freshness: ...

    def close(self) -> None: ...


def open_store(url: str, limit: int) -> ShopperStore:
    """``sqlite:///path/to/file.sqlite`` or ``redis://[user:password@]host:port/db[?prefix=p]``."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        return SQLiteShopperStore(Path(url[len("sqlite:///"):] if url.startswith("sqlite:///")
                                       else url[len("sqlite://"):]), limit)
    if scheme in ("redis", "rediss", "unix"):
        return RedisShopperStore(url, limit)
    raise ValueError(f"unknown shopper store {url!r}: sqlite:///FILE or redis://HOST:PORT/DB")


def positives(events: pd.DataFrame) -> list[tuple[str, str, str, float]]:
    """(user_id, event_id, item_id, epoch seconds) of the positive events, in event-time order."""
    if events is None or events.empty:
        return []
    keep = events[events["event_type"].isin(POSITIVE_EVENTS)].dropna(
        subset=["user_id", "event_id", "item_id", "timestamp"])
    moments = pd.to_datetime(keep["timestamp"], utc=True)
    seconds = (moments - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    rows = zip(keep["user_id"].astype(str), keep["event_id"].astype(str),
               keep["item_id"].astype(str), seconds.astype(float), strict=True)
    return sorted(rows, key=lambda r: (r[3], r[1]))


def catalogue_rows(items: pd.DataFrame | None) -> list[tuple]:
    """(item_id, title, category, brand, price) per item, the last row of an item winning;
    missing values None."""
    if items is None or items.empty:
        return []
    frame = items.drop_duplicates("item_id", keep="last").reindex(columns=CATALOGUE_COLUMNS)
    frame = frame.astype(object).where(frame.notna(), None)
    return [(str(r[0]), *(None if v is None else (float(v) if i == 3 else str(v))
                         for i, v in enumerate(r[1:]))) for r in frame.itertuples(index=False)]


def _catalogue_frame(rows: Iterable[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(CATALOGUE_COLUMNS))
    frame["price"] = pd.to_numeric(frame["price"], errors="coerce")
    return frame


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _moment(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class SQLiteShopperStore:
    """One SQLite file; each apply is one ``BEGIN IMMEDIATE`` transaction (a killed writer leaves
    the batch wholly applied or not at all; two writers take turns)."""

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS events (user_id TEXT NOT NULL, event_id TEXT NOT NULL, "
        "item_id TEXT NOT NULL, ts REAL NOT NULL, PRIMARY KEY (user_id, event_id)) WITHOUT ROWID",
        "CREATE INDEX IF NOT EXISTS events_by_time ON events (user_id, ts, event_id)",
        "CREATE TABLE IF NOT EXISTS batches (batch_id TEXT PRIMARY KEY, applied_at TEXT NOT NULL, "
        "events INTEGER NOT NULL)",
        "CREATE TABLE IF NOT EXISTS items (item_id TEXT PRIMARY KEY, title TEXT, category TEXT, "
        "brand TEXT, price REAL)",
    )

    def __init__(self, path: Path, limit: int) -> None:
        self.path, self.limit = Path(path), limit
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._local = threading.local()  # one connection per thread: sqlite3's rule
        with self._connection() as db:
            for statement in self._SCHEMA:
                db.execute(statement)

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def apply(self, batch_id: str, events: pd.DataFrame | None,
              items: pd.DataFrame | None = None) -> int:
        rows, catalogue = positives(events), catalogue_rows(items)
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            if batch_id != LIVE and db.execute("SELECT 1 FROM batches WHERE batch_id = ?",
                                               (batch_id,)).fetchone():
                db.execute("ROLLBACK")
                return -1
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)", rows)
            added = db.total_changes - before
            self._prune(db, {r[0] for r in rows})
            db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?)", catalogue)
            if batch_id != LIVE:
                db.execute("INSERT INTO batches VALUES (?, ?, ?)", (batch_id, _now(), added))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return added

    def _prune(self, db: sqlite3.Connection, users: Iterable[str]) -> None:
        """Keep each shopper's latest ``limit`` events."""
        for user in users:
            cut = db.execute(
                "SELECT ts, event_id FROM events WHERE user_id = ? ORDER BY ts DESC, event_id DESC "
                "LIMIT 1 OFFSET ?", (user, self.limit)).fetchone()
            if cut is not None:
                db.execute("DELETE FROM events WHERE user_id = ? AND (ts, event_id) <= (?, ?)",
                           (user, *cut))

    def applied(self) -> set[str]:
        return {b for (b,) in self._connection().execute("SELECT batch_id FROM batches")}

    def states(self, users: Sequence[str]) -> dict[str, ShopperState]:
        db, out = self._connection(), {}
        for user in dict.fromkeys(users):
            rows = db.execute("SELECT item_id, ts FROM events WHERE user_id = ? "
                              "ORDER BY ts, event_id", (user,)).fetchall()
            if rows:
                out[user] = ShopperState(tuple(i for i, _ in rows), _moment(rows[-1][1]))
        return out

    def catalogue(self) -> pd.DataFrame:
        return _catalogue_frame(self._connection().execute(
            "SELECT item_id, title, category, brand, price FROM items"))

    def freshness(self) -> Freshness:
        db = self._connection()
        last = db.execute("SELECT batch_id, applied_at FROM batches ORDER BY applied_at DESC, "
                          "batch_id DESC LIMIT 1").fetchone()
        (batches,) = db.execute("SELECT COUNT(*) FROM batches").fetchone()
        (events,) = db.execute("SELECT COUNT(*) FROM events").fetchone()
        return Freshness(last[0] if last else None, last[1] if last else None, batches, events)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


# KEYS: batches hash, meta hash. ARGV: batch id, applied-at, limit, shopper key prefix, then
# (user, score, member) triples. One script: Redis runs it whole or not at all.
_APPLY = """
local live = ARGV[1] == ''
if not live and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return -1 end
local limit = tonumber(ARGV[3])
local added, removed, touched = 0, 0, {}
for i = 5, #ARGV, 3 do
  local key = ARGV[4] .. ARGV[i]
  added = added + redis.call('ZADD', key, 'NX', ARGV[i + 1], ARGV[i + 2])
  touched[key] = true
end
for key, _ in pairs(touched) do
  removed = removed + redis.call('ZREMRANGEBYRANK', key, 0, -(limit + 1))
end
if not live then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[2], 'last_batch', ARGV[1], 'applied_at', ARGV[2])
end
redis.call('HINCRBY', KEYS[2], 'events', added - removed)
return added
"""
_SEPARATOR = "\x1f"  # between event id and item id in a sorted-set member


class RedisShopperStore:
    """One sorted set per shopper (member ``event_id<US>item_id``, score the event time), a hash
    of applied batches and one of counters, all under ``prefix`` (default ``shoprec``)."""

    def __init__(self, url: str, limit: int) -> None:
        import redis

        query = dict(p.split("=", 1) for p in urlparse(url).query.split("&") if "=" in p)
        self.prefix = query.pop("prefix", "shoprec")
        self.limit = limit
        self._client = redis.Redis.from_url(url.split("?", 1)[0], decode_responses=True)
        self._apply = self._client.register_script(_APPLY)
        self._batches, self._meta = f"{self.prefix}:batches", f"{self.prefix}:meta"
        self._shopper = f"{self.prefix}:shopper:"
        self._items = f"{self.prefix}:items"

    def apply(self, batch_id: str, events: pd.DataFrame | None,
              items: pd.DataFrame | None = None) -> int:
        if batch_id != LIVE and self._client.hexists(self._batches, batch_id):
            return -1
        catalogue = catalogue_rows(items)
        if catalogue:  # before the batch is marked: a crash in between re-applies it whole
            self._client.hset(self._items, mapping={r[0]: json.dumps(r[1:]) for r in catalogue})
        args: list[str | float] = [batch_id, _now(), self.limit, self._shopper]
        for user, event, item, seconds in positives(events):
            args += [user, repr(seconds), f"{event}{_SEPARATOR}{item}"]
        return int(self._apply(keys=[self._batches, self._meta], args=args))

    def applied(self) -> set[str]:
        return set(self._client.hkeys(self._batches))

    def states(self, users: Sequence[str]) -> dict[str, ShopperState]:
        users = list(dict.fromkeys(users))
        pipe = self._client.pipeline(transaction=False)
        for user in users:
            pipe.zrange(self._shopper + user, 0, -1, withscores=True)
        out = {}
        for user, members in zip(users, pipe.execute(), strict=True):
            if members:
                items = tuple(m.split(_SEPARATOR, 1)[1] for m, _ in members)
                out[user] = ShopperState(items, _moment(members[-1][1]))
        return out

    def catalogue(self) -> pd.DataFrame:
        return _catalogue_frame((key, *json.loads(value))
                                for key, value in self._client.hgetall(self._items).items())

    def freshness(self) -> Freshness:
        meta = self._client.hgetall(self._meta)
        return Freshness(meta.get("last_batch"), meta.get("applied_at"),
                         int(self._client.hlen(self._batches)), int(meta.get("events", 0)))

    def close(self) -> None:
        self._client.close()
