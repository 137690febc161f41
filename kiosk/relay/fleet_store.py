"""Where the devices' last heartbeats are kept: one record per configured device, only the
latest (docs/hub.md, "Heartbeats").

A record is the relay's own JSON text: the validated heartbeat and the relay-clock time
it arrived (``{"t": 1764670000.1, "s": {...}}``); never the body as the device sent it.

:class:`SqliteStates` (one relay): the table ``device_states`` in the relay's SQLite file.
Heartbeats are answered from memory and written at most every :data:`FLUSH_S` in one
transaction (a burst of 2,000 devices is one commit); a kill -9 loses at most that last
second, which the next heartbeat (every ``heartbeat_s``) brings back: only the latest
counts. :class:`RedisStates` (replicas): the hash ``kiosk:relay:devices`` (device id ->
record), written at once and read whole, so every replica sees every device's last state.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any, Protocol

from redis.exceptions import RedisError

from kiosk.errors import StoreError
from kiosk.relay.store import transaction
from kiosk.tasks import cancel, in_thread

log = logging.getLogger(__name__)

FLUSH_S = 1.0
"""How often the SQLite store writes the heartbeats received since its last write."""
REDIS_KEY = "kiosk:relay:devices"
"""The Redis hash: device id -> its last record."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS device_states (
    device TEXT PRIMARY KEY,
    record TEXT NOT NULL
) WITHOUT ROWID;
"""


class States(Protocol):
    """What the fleet needs from a store of heartbeats."""

    async def start(self) -> None:
        """Open (and, for SQLite, read what the last run kept)."""

    async def close(self) -> None:
        """Write what is pending and close."""

    async def put(self, device: str, record: str) -> None:
        """Keep ``record`` as ``device``'s latest; :class:`StoreError` when it cannot."""

    async def all(self) -> dict[str, str]:
        """Every device's latest record; :class:`StoreError` when it cannot be read."""


class SqliteStates:
    """Heartbeats in memory, written to the relay's SQLite file every :data:`FLUSH_S`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._records: dict[str, str] = {}
        self._dirty: dict[str, str] = {}
        self._db: sqlite3.Connection | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self._open)
        self._flusher = asyncio.create_task(self._flush_loop(), name="relay-fleet-flush")

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        self._records = {str(d): str(r) for d, r in
                         db.execute("SELECT device, record FROM device_states")}
        self._db = db

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self._flush()

    async def _flush(self) -> None:
        if not self._dirty:
            return
        batch, self._dirty = self._dirty, {}
        try:
            await in_thread(self._write, batch)
        except sqlite3.Error as exc:
            log.warning("relay: writing %d heartbeat(s) failed: %s (retried)", len(batch), exc)
            self._dirty = {**batch, **self._dirty}

    def _write(self, batch: dict[str, str]) -> None:
        db = self._db
        if db is None:
            raise sqlite3.OperationalError("closed")
        with transaction(db):
            db.executemany("INSERT OR REPLACE INTO device_states (device, record) VALUES (?, ?)",
                           batch.items())

    async def close(self) -> None:
        await cancel(self._flusher)
        await self._flush()
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)

    async def put(self, device: str, record: str) -> None:
        if self._db is None:
            raise StoreError("the store is closed")
        self._records[device] = record
        self._dirty[device] = record

    async def all(self) -> dict[str, str]:
        return dict(self._records)


class RedisStates:
    """Heartbeats in one Redis hash, shared by every replica."""

    def __init__(self, url: str) -> None:
        from kiosk.relay.redis_store import client
        self.url = url
        self._redis: Any = client(url)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self._redis.aclose()

    async def put(self, device: str, record: str) -> None:
        try:
            await self._redis.hset(REDIS_KEY, device, record)
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from None

    async def all(self) -> dict[str, str]:
        try:
            found = await self._redis.hgetall(REDIS_KEY)
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from None
        return {str(k): str(v) for k, v in found.items()}


def open_states(store: str, sqlite_path: Path) -> States:
    """The heartbeat store beside the calls' (``relay.store``)."""
    if store == "sqlite":
        return SqliteStates(sqlite_path)
    return RedisStates(store)
