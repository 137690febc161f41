"""Where calls are kept: the store interface, event ids, and the SQLite store.

**Event ids** are decimal integers, increasing per branch and never going back, even when
the store itself goes back (a Redis restarted without persistence, or restored from an
older snapshot; a SQLite file lost with its machine's power): an id is ``epoch *``
:data:`EPOCH_SPAN` ``+ n``, where ``n`` counts the branch's calls (1, 2, ...) and the
*epoch* is a time in seconds taken whenever the store may have lost anything (a new
SQLite store, every relay start on SQLite, every Redis restart or loss of its data),
always above the epoch before. So a screen's ``Last-Event-ID``, a replica's read cursor
and a stream's last id from before a reset are all below every call after it: nobody
waits for an id that will never come. Each branch counts its own calls (ids say nothing
of other branches' volume).

**What is one call.** A repeated delivery of a call (the same ``callId``) is one call,
remembered :data:`DEDUP_CALL_S` (31 days: an HMAC-signed delivery has no time in it, so
this is its replay protection). A new ``callId`` is a new call, even for a ticket called
before: when the same ticket was called before the same (branch-local) day, its event
says ``"recall": true``. Without a ``callId``, the same ticket to the same booth within
:data:`DEDUP_NEAR_S` is one call. A bound JWT may be used once (``Call.replay_key``).

:class:`SqliteStore` (the default, one relay): one file in WAL mode; the webhook is
answered only after the COMMIT, so a call answered 2xx survives a crash or a kill -9 of
the relay (``synchronous=NORMAL``, the default ``relay.sqlite_sync: normal``), or also a
power cut (``full``: the WAL is flushed to the disk first). Concurrent webhooks share one
transaction (group commit), so a burst costs one commit, not one per call.
:mod:`kiosk.relay.redis_store` is the replicated one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic_core import to_json

from kiosk.errors import StoreError
from kiosk.tasks import cancel

log = logging.getLogger(__name__)

CHECKPOINT_S = 2.0
"""How often the WAL is checkpointed (``sqlite_sync: normal``)."""
KEEP_DAYS = 14
"""Calls older than this many days are deleted (at start-up, then daily)."""
PRUNE_S = 3600.0
"""How often the SQLite store deletes what it no longer needs."""
EPOCH_SPAN = 10**8
"""Ids of one epoch: ``epoch * EPOCH_SPAN + n``, ``n`` below it (18 digits until 2286)."""
DEDUP_CALL_S = 31 * 24 * 3600
"""How long a ``callId`` is remembered (a repeated delivery, or a replay, is one call)."""
DEDUP_NEAR_S = 300
"""Without a ``callId``: the same ticket to the same booth within this is one call."""


def days_around(day: str) -> tuple[str, str, str]:
    """The day before ``day`` (``YYYY-MM-DD``), it, and the day after: where a screen's
    calls may be that it has not had. Ids grow per branch whatever the day; a call may be
    stored just after the midnight of the day it took (a busy moment), or by a relay whose
    clock is a little off. A screen resuming (``Last-Event-ID``) reads them all."""
    d = date.fromisoformat(day)
    return ((d - timedelta(days=1)).isoformat(), day, (d + timedelta(days=1)).isoformat())


class Replayed(Exception):
    """The call's JWT was used before (a replay within its time window)."""


@dataclass(slots=True)
class Call:
    """A verified call about to be stored (made once, never changed: not a frozen
    dataclass, which costs three times as much to make, on every webhook)."""

    branch: str
    day: str
    """The branch's local day the call belongs to (``YYYY-MM-DD``)."""
    call_id: str
    """The provider's call id; "" when the webhook carried none."""
    ticket_id: str
    data: dict[str, Any]
    """What a screen receives: ticketId, poc.label, queue.name, at, lang."""
    received: float
    """Wall-clock time the webhook arrived (for the latency histogram)."""
    poc: str = ""
    """The booth's label (the no-``callId`` rule: same ticket, same booth, minutes)."""
    replay_key: str = ""
    """A JWT's key, used once (empty: no JWT)."""
    replay_ttl_s: int = 0
    """How long the store keeps ``replay_key``."""

    def dedup(self) -> tuple[str, int]:
        """The key that makes a delivery "the same call", and how long it is kept."""
        if self.call_id:
            return "call:" + self.call_id, DEDUP_CALL_S
        near = json.dumps([self.branch, self.ticket_id, self.poc], ensure_ascii=False)
        return "near:" + hashlib.sha256(near.encode()).hexdigest(), DEDUP_NEAR_S

    def payloads(self) -> tuple[str, str]:
        """The SSE ``data:`` JSON for a first call of the ticket that day, and for a
        re-call (``"recall": true``, last)."""
        first = _payload_json(self.data)
        return first, first[:-1] + RECALL_END  # data is a non-empty JSON object

    def payload(self, recall: bool) -> str:
        """The SSE ``data:`` JSON, for a re-call or a first call (:meth:`payloads`)."""
        first = _payload_json(self.data)
        return first[:-1] + RECALL_END if recall else first


def _payload_json(data: dict[str, Any]) -> str:
    """A call's data as the compact JSON screens read: ``json.dumps(data,
    ensure_ascii=False, separators=(",", ":"))``, made by pydantic-core in a third of the
    time (the same text, tested, for any text a call can carry: :func:`contract.parse
    <kiosk.relay.contract.parse>` lets no lone surrogate through, which only json writes)."""
    return to_json(data).decode()


RECALL_END = ',"recall":true}'
"""How a re-call's ``data:`` JSON ends."""


@dataclass(slots=True)
class Event:
    """A stored call as a screen receives it (made once, never changed: shared by every
    screen of its branch; not frozen, for :class:`Call`'s reason)."""

    id: int
    branch: str
    data: str
    """The SSE ``data:`` JSON."""
    received: float

    def frame(self) -> bytes:
        """The SSE frame."""
        return f"id: {self.id}\nevent: call\ndata: {self.data}\n\n".encode()

    @property
    def epoch(self) -> int:
        return self.id // EPOCH_SPAN


def next_epoch(now: float, before: int | None) -> int:
    """A new epoch: the time in seconds, and above the one ``before``."""
    return max(int(now), (before or 0) + 1)


Publish = Callable[[str, list[Event]], None]
"""Hands a branch's new events (in id order) to the hub."""


class Store(Protocol):
    """What the relay needs from a store."""

    async def start(self, publish: Publish) -> None:
        """Open; from now on every stored call reaches ``publish`` (in id order per branch)."""

    async def close(self) -> None:
        """Finish pending writes and close."""

    async def add(self, call: Call) -> Event | None:
        """Keep ``call``; its event, or ``None`` for a repeated delivery.
        :class:`Replayed` for a JWT used before; :class:`StoreError` when not stored."""

    async def since(self, branch: str, day: str, after: int | None, limit: int) -> list[Event]:
        """The events of ``branch`` after id ``after`` on ``day`` and the days around it
        (:func:`days_around`: what a resuming screen missed; at most the newest ``limit``,
        oldest first); without ``after``, the last ``limit`` ones of ``day``."""

    async def watch(self, branch: str) -> None:
        """A screen of ``branch`` is about to read: make sure its new calls reach the hub."""

    async def unwatch(self, branch: str) -> None:
        """The last screen of ``branch`` left."""

    async def ping(self) -> bool:
        """Whether the store answers (``/healthz``)."""


_EVENTS = """(
    branch TEXT NOT NULL,
    id INTEGER NOT NULL,
    day TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    data TEXT NOT NULL,
    received REAL NOT NULL,
    PRIMARY KEY (branch, day, id)
) WITHOUT ROWID"""
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events {_EVENTS};
CREATE TABLE IF NOT EXISTS seen (
    key TEXT PRIMARY KEY,
    expires REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""
"""``events``: the calls screens get, a branch's day in id order (the one B-tree a call
adds to: what a screen reads is a range of it); ``seen``: what makes a delivery the same
call, until ``expires``; ``meta``: ``epoch``. Each branch's ``n`` in this run's epoch is
counted in memory (one writer; a new epoch at every start), and so are the tickets called
on a branch's day (read from ``events`` once, then kept: what makes a call a re-call)."""


def rollback(db: sqlite3.Connection) -> None:
    """End a failed transaction, if SQLite has not ended it itself: a full disk (or an
    I/O error) may have rolled it back already, and a ROLLBACK then would raise "no
    transaction is active" in place of what went wrong."""
    if db.in_transaction:
        db.execute("ROLLBACK")


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` around the block (``db`` in autocommit mode);
    on any error the block's work is rolled back (:func:`rollback`) and the error goes on."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise


def _migrate(db: sqlite3.Connection) -> None:
    """A store from before per-branch ids (one ``calls`` table, ids shared by branches):
    its calls move to ``events`` with their ids (all below any epoch's), its call ids to
    ``seen``."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'calls'"
                      ).fetchone():
        return
    db.execute("INSERT OR IGNORE INTO events (branch, id, day, ticket_id, data, received) "
               "SELECT branch, id, day, ticket_id, data, received FROM calls")
    db.execute("INSERT OR IGNORE INTO seen (key, expires) SELECT 'call:' || call_id, "
               "received + ? FROM calls", (DEDUP_CALL_S,))
    db.execute("DROP TABLE calls")
    log.info("relay: the SQLite store was moved to per-branch event ids")


def _migrate_layout(db: sqlite3.Connection) -> None:
    """``events`` keyed by (branch, id) with two indexes (before December 2026): moved to
    one table keyed by (branch, day, id), its rows and ids kept."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND "
                      "name = 'events_by_day'").fetchone():
        return
    db.execute(f"CREATE TABLE events_by_branch_day {_EVENTS}")
    db.execute("INSERT INTO events_by_branch_day SELECT branch, id, day, ticket_id, data, "
               "received FROM events")
    db.execute("DROP TABLE events")  # and its indexes
    db.execute("ALTER TABLE events_by_branch_day RENAME TO events")
    log.info("relay: the SQLite store's calls were moved to one table by branch and day")


class SqliteStore:
    """Calls in one SQLite file, written by one writer task with group commit."""

    def __init__(self, path: Path, sync: str = "normal",
                 clock: Callable[[], float] | None = None) -> None:
        self.path = path
        self.sync = "FULL" if sync == "full" else "NORMAL"
        self.inline = self.sync == "NORMAL"
        self.epoch = 0
        """This run's epoch (taken at start: above every earlier run's)."""
        self._counts: dict[str, int] = {}
        """Each branch's calls in this epoch (a failed commit leaves a gap: harmless)."""
        self._called: dict[tuple[str, str], set[str]] = {}
        """The tickets called on a branch's day, by (branch, day): read from the file at
        the branch's first call of the day, then kept up to date (one writer). A branch's
        earlier days are dropped when its next day begins."""
        self._jwts: dict[str, float] = {}
        """JWTs used, until when (the replay cache: one process, so in memory; after a
        restart a replay within its window is still its call's ``callId``: a repeated
        delivery, kept on disk)."""
        self._clock = clock
        self._checkpointer: asyncio.Task[None] | None = None
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[Call, asyncio.Future[Event | None]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._publish: Publish = lambda branch, events: None
        self._closing = False
        self._next_prune = 0.0

    async def start(self, publish: Publish) -> None:
        self._publish = publish
        await asyncio.to_thread(self._open)
        self._writer = asyncio.create_task(self._write_loop(), name="relay-sqlite-writer")
        if self.inline:
            self._checkpointer = asyncio.create_task(self._checkpoint_loop(),
                                                     name="relay-sqlite-checkpoint")

    async def _checkpoint_loop(self) -> None:
        """Move the WAL into the database now and then, off the event loop (the writer's
        own commits never checkpoint: ``wal_autocheckpoint=0``)."""
        while True:
            await asyncio.sleep(CHECKPOINT_S)
            try:
                await asyncio.to_thread(self._checkpoint)
            except sqlite3.Error as exc:
                log.warning("relay: WAL checkpoint failed: %s (retried later)", exc)

    def _checkpoint(self) -> None:
        db = sqlite3.connect(self.path)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def _time(self) -> float:
        return self._clock() if self._clock is not None else now()  # now(): a test's seam

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # the new epoch is on disk before any call
        if self.inline:
            db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        try:
            with transaction(db):
                _migrate(db)
                _migrate_layout(db)
                row = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
                before = int(row[0]) if row else None
                self.epoch = next_epoch(self._time(), before)
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?)",
                           (self.epoch,))
                db.execute("DROP TABLE IF EXISTS counters")  # an early version's
                self._prune(db)
        except BaseException:
            db.close()  # (also when the ROLLBACK itself failed)
            raise
        db.execute(f"PRAGMA synchronous={self.sync}")
        if before is not None:
            log.info("relay: store epoch %d (was %d): ids continue above the last run's",
                     self.epoch, before)
        self._db = db

    def _prune(self, db: sqlite3.Connection) -> None:
        """Delete calls past :data:`KEEP_DAYS` and expired dedup keys (in a transaction)."""
        moment = self._time()
        cutoff = (date.fromtimestamp(moment) - timedelta(days=KEEP_DAYS)).isoformat()
        db.execute("DELETE FROM events WHERE day < ?", (cutoff,))
        db.execute("DELETE FROM seen WHERE expires < ?", (moment,))
        self._jwts = {k: t for k, t in self._jwts.items() if t >= moment}
        self._called = {k: v for k, v in self._called.items() if k[1] >= cutoff}
        self._next_prune = time.monotonic() + PRUNE_S

    def _prune_now(self) -> None:
        db = self._db
        if db is None:
            return
        with transaction(db):
            self._prune(db)

    async def close(self) -> None:
        await cancel(self._checkpointer)
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)

    async def add(self, call: Call) -> Event | None:
        if self._closing or self._writer is None or self._writer.done():
            raise StoreError("the store is closed")
        fut: asyncio.Future[Event | None] = asyncio.get_running_loop().create_future()
        self._pending.append((call, fut))
        self._wake.set()
        return await fut

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                try:
                    calls = [c for c, _ in batch]
                    # NORMAL: a commit only appends to the WAL (no fsync, checkpoints run
                    # on a thread), cheaper here than a thread hop; FULL waits for the disk.
                    events = self._insert(calls) if self.inline else \
                        await asyncio.to_thread(self._insert, calls)
                except Exception as exc:  # any failure: the provider retries (5xx)
                    log.error("relay: storing %d call(s) failed: %s", len(batch), exc)
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(StoreError(f"storing failed: {exc}"))
                else:
                    by_branch: dict[str, list[Event]] = {}
                    for (_, fut), ev in zip(batch, events, strict=True):
                        if isinstance(ev, Event):
                            by_branch.setdefault(ev.branch, []).append(ev)
                        if fut.done():
                            continue
                        if ev is _REPLAYED:
                            fut.set_exception(Replayed())
                        else:
                            fut.set_result(ev if isinstance(ev, Event) else None)
                    for branch, evs in by_branch.items():
                        self._publish(branch, evs)
            if time.monotonic() >= self._next_prune and not self._closing:
                try:
                    await asyncio.to_thread(self._prune_now)
                except sqlite3.Error as exc:
                    log.warning("relay: pruning old calls failed: %s (retried later)", exc)
                    self._next_prune = time.monotonic() + 60
            if self._closing and not self._pending:
                return

    def _insert(self, calls: list[Call]) -> list[Event | object | None]:
        db = self._db
        if db is None:
            raise sqlite3.OperationalError("closed")
        out: list[Event | object | None] = []
        used: list[str] = []
        """The JWTs the batch marked used: forgotten again if it fails."""
        try:
            with transaction(db):
                for c in calls:
                    out.append(self._insert_one(db, c, used))
        except BaseException:
            for key in used:
                self._jwts.pop(key, None)
            for day in {(c.branch, c.day) for c in calls}:  # read from the file again
                self._called.pop(day, None)  # (a day reloaded within the batch saw its rows)
            raise
        return out

    def _tickets(self, db: sqlite3.Connection, branch: str, day: str) -> set[str]:
        """The tickets called on ``branch``'s ``day`` (:attr:`_called`)."""
        key = (branch, day)
        tickets = self._called.get(key)
        if tickets is None:
            for old in [k for k in self._called if k[0] == branch and k[1] < day]:
                del self._called[old]  # the branch's new day began
            tickets = self._called[key] = {row[0] for row in db.execute(
                "SELECT ticket_id FROM events WHERE branch = ? AND day = ?", key)}
        return tickets

    @staticmethod
    def _first(db: sqlite3.Connection, key: str, ttl_s: int, moment: float) -> bool:
        """Whether ``key`` is new (or its time is over); then it is kept ``ttl_s``."""
        cur = db.execute("INSERT INTO seen (key, expires) VALUES (?, ?) ON CONFLICT (key) "
                         "DO UPDATE SET expires = excluded.expires WHERE expires < ?",
                         (key, moment + ttl_s, moment))
        return cur.rowcount == 1

    def _insert_one(self, db: sqlite3.Connection, c: Call,
                    used: list[str]) -> Event | object | None:
        if c.replay_key:
            if self._jwts.get(c.replay_key, 0.0) >= c.received:
                return _REPLAYED
            self._jwts[c.replay_key] = c.received + c.replay_ttl_s
            used.append(c.replay_key)
        key, ttl = c.dedup()
        if not self._first(db, key, ttl, c.received):
            return None
        tickets = self._tickets(db, c.branch, c.day)
        again = c.ticket_id in tickets
        tickets.add(c.ticket_id)
        data = c.payload(again)
        n = self._counts[c.branch] = self._counts.get(c.branch, 0) + 1
        if n >= EPOCH_SPAN:
            raise sqlite3.OperationalError("the branch's ids are exhausted: restart the relay")
        event_id = self.epoch * EPOCH_SPAN + n
        db.execute("INSERT INTO events (branch, id, day, ticket_id, data, received) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   (c.branch, event_id, c.day, c.ticket_id, data, c.received))
        return Event(event_id, c.branch, data, c.received)

    async def since(self, branch: str, day: str, after: int | None, limit: int) -> list[Event]:
        return await asyncio.to_thread(self._since, branch, day, after, limit)

    def _since(self, branch: str, day: str, after: int | None, limit: int) -> list[Event]:
        # A reader connection of its own: WAL lets it read while the writer commits.
        db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            days = days_around(day) if after is not None else (day, day, day)
            rows = db.execute(  # the newest ``limit`` after ``after``
                "SELECT id, data, received FROM events WHERE branch = ? AND day IN (?, ?, ?) "
                "AND id > ? ORDER BY id DESC LIMIT ?",
                (branch, *days, -1 if after is None else after, limit)).fetchall()
            rows.reverse()
        finally:
            db.close()
        return [Event(int(i), branch, str(d), float(r)) for i, d, r in rows]

    async def watch(self, branch: str) -> None:
        return None

    async def unwatch(self, branch: str) -> None:
        return None

    async def ping(self) -> bool:
        return self._writer is not None and not self._writer.done()


_REPLAYED = object()
"""What :meth:`SqliteStore._insert_one` returns for a JWT seen before."""


def now() -> float:
    """Wall-clock seconds (a seam for tests)."""
    return time.time()
