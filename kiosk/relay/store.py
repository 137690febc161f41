"""Where calls are kept: the store interface and its SQLite implementation.

A store keeps each call once (a repeated ``callId``, or the same branch and ``ticketId``
the same day, is a duplicate), gives it an event id that increases per branch, and feeds
the calls it stores to the :class:`~kiosk.relay.hub.Hub` in id order per branch.

:class:`SqliteStore` (the default, one relay): one file in WAL mode; the webhook is
answered only after the COMMIT, so a call answered 2xx survives a crash or a kill -9 of
the relay (``synchronous=NORMAL``, the default ``relay.sqlite_sync: normal``), or also a
power cut (``full``: the WAL is flushed to the disk first). Concurrent webhooks share one
transaction (group commit), so a burst costs one commit, not one per call. Event ids are
SQLite's AUTOINCREMENT row ids: increasing for every branch, across days.
:mod:`kiosk.relay.redis_store` is the replicated one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

from kiosk.errors import StoreError

log = logging.getLogger(__name__)

CHECKPOINT_S = 2.0
"""How often the WAL is checkpointed (``sqlite_sync: normal``)."""
KEEP_DAYS = 14
"""Calls older than this many days are deleted at start-up."""


@dataclass(frozen=True)
class Call:
    """A verified call about to be stored."""

    branch: str
    day: str
    call_id: str
    ticket_id: str
    data: dict[str, Any]
    """What a screen receives: ticketId, poc.label, queue.name, at, lang."""
    received: float
    """Wall-clock time the webhook arrived (for the latency histogram)."""


@dataclass(frozen=True)
class Event:
    """A stored call as a screen receives it."""

    id: int
    branch: str
    data: str
    """The SSE ``data:`` JSON."""
    received: float

    def frame(self) -> bytes:
        """The SSE frame."""
        return f"id: {self.id}\nevent: call\ndata: {self.data}\n\n".encode()


Publish = Callable[[str, list[Event]], None]
"""Hands a branch's new events (in id order) to the hub."""


class Store(Protocol):
    """What the relay needs from a store."""

    async def start(self, publish: Publish) -> None:
        """Open; from now on every stored call reaches ``publish`` (in id order per branch)."""

    async def close(self) -> None:
        """Finish pending writes and close."""

    async def add(self, call: Call) -> Event | None:
        """Keep ``call``; its event, or ``None`` for a duplicate. :class:`StoreError`."""

    async def since(self, branch: str, day: str, after: int | None, limit: int) -> list[Event]:
        """The day's events of ``branch`` after id ``after`` (all of them, oldest first);
        without ``after``, the last ``limit`` ones."""

    async def watch(self, branch: str) -> None:
        """A screen of ``branch`` is about to read: make sure its new calls reach the hub."""

    async def unwatch(self, branch: str) -> None:
        """The last screen of ``branch`` left."""

    async def ping(self) -> bool:
        """Whether the store answers (``/healthz``)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    branch TEXT NOT NULL,
    day TEXT NOT NULL,
    call_id TEXT NOT NULL UNIQUE,
    ticket_id TEXT NOT NULL,
    data TEXT NOT NULL,
    received REAL NOT NULL,
    UNIQUE (branch, day, ticket_id)
);
CREATE INDEX IF NOT EXISTS calls_by_branch ON calls (branch, day, id);
"""


class SqliteStore:
    """Calls in one SQLite file, written by one writer task with group commit."""

    def __init__(self, path: Path, sync: str = "normal") -> None:
        self.path = path
        self.sync = "FULL" if sync == "full" else "NORMAL"
        self.inline = self.sync == "NORMAL"
        self._checkpointer: asyncio.Task[None] | None = None
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[Call, asyncio.Future[Event | None]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._publish: Publish = lambda branch, events: None
        self._closing = False

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

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.sync}")
        if self.inline:
            db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        cutoff = (date.today() - timedelta(days=KEEP_DAYS)).isoformat()
        db.execute("DELETE FROM calls WHERE day < ?", (cutoff,))
        self._db = db

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
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
                    for ev in events:
                        if ev is not None:
                            by_branch.setdefault(ev.branch, []).append(ev)
                    for (_, fut), ev in zip(batch, events, strict=True):
                        if not fut.done():
                            fut.set_result(ev)
                    for branch, evs in by_branch.items():
                        self._publish(branch, evs)
            if self._closing and not self._pending:
                return

    def _insert(self, calls: list[Call]) -> list[Event | None]:
        db = self._db
        if db is None:
            raise sqlite3.OperationalError("closed")
        out: list[Event | None] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for c in calls:
                data = json.dumps(c.data, ensure_ascii=False, separators=(",", ":"))
                cur = db.execute(
                    "INSERT OR IGNORE INTO calls (branch, day, call_id, ticket_id, data, "
                    "received) VALUES (?, ?, ?, ?, ?, ?)",
                    (c.branch, c.day, c.call_id, c.ticket_id, data, c.received))
                out.append(Event(int(cur.lastrowid or 0), c.branch, data, c.received)
                           if cur.rowcount == 1 else None)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return out

    async def since(self, branch: str, day: str, after: int | None, limit: int) -> list[Event]:
        return await asyncio.to_thread(self._since, branch, day, after, limit)

    def _since(self, branch: str, day: str, after: int | None, limit: int) -> list[Event]:
        # A reader connection of its own: WAL lets it read while the writer commits.
        db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            if after is None:
                rows = db.execute(
                    "SELECT id, data, received FROM calls WHERE branch = ? AND day = ? "
                    "ORDER BY id DESC LIMIT ?", (branch, day, limit)).fetchall()
                rows.reverse()
            else:  # at most ``limit`` of them, the newest (as without ``after``)
                rows = db.execute(
                    "SELECT id, data, received FROM calls WHERE branch = ? AND day = ? "
                    "AND id > ? ORDER BY id DESC LIMIT ?", (branch, day, after, limit)).fetchall()
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


def now() -> float:
    """Wall-clock seconds (a seam for tests)."""
    return time.time()
