"""The branch's numbers and its day at the hub: blocks of ticket numbers leased to devices
(docs/hub.md, "Numbers: blocks leased ahead").

A **lease** is a block ``first..last`` of one counter: per branch, branch-local day and
sequence (``A``, ``priority:A``). Blocks of one counter never overlap, whichever device,
replica or restart asked for them.

:class:`SqliteLedger` (one relay): the counter is a row of ``hub.sqlite3`` (next to the
relay's ``relay.sqlite3``), raised in an ``IMMEDIATE`` transaction that is on the disk
(``synchronous=FULL``) before the 201; so a kill -9 or a power cut after the 201 never
hands the block out again.

:class:`RedisLedger` (replicas): ``INCRBY`` on ``kiosk:seq:{branch}:{day}:{sequence}``
(kept :data:`COUNTER_TTL_S`), so two replicas never hand out the same block. A Redis that
restarts without persistence (or comes back from an older snapshot) would count from
zero again, so each replica also keeps, on its own disk (``hub.sqlite3``, fsynced before
the 201), the **floor** of every counter it raised: the last number it handed out. A
Redis run that has not been seeded refuses every lease (503, ``Retry-After``; the devices
number offline meanwhile, :mod:`kiosk.relay.app`) until every replica seen in the last
:data:`REPLICA_MEMORY_S` has raised the counters to its floors. The run is Redis's
``run_id``: every Redis restart (even one that kept its data) is re-seeded. Each replica
checks every :data:`SEED_CHECK_S` and seeds at once when needed, under the same lock as
its leases, so no block it handed out is missing from its floors. A replica that is gone
for good keeps leases refused until it is forgotten (:data:`REPLICA_MEMORY_S`) or its id
is deleted from the others' ``replicas`` table (README, "kiosk relay").

Keys (Redis)::

    kiosk:seq:{b}:{d}:{s}          the counter: the last number handed out
    kiosk:hub:replicas             SET: the replicas that seeded (their ids)
    kiosk:hub:seeded               SET: the replicas that seeded this Redis run
    kiosk:hub:seeded-run           the Redis run_id the seeded set belongs to
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

from redis.exceptions import RedisError

from kiosk.errors import StoreError

log = logging.getLogger(__name__)

COUNTER_TTL_S = 4 * 24 * 3600
"""How long Redis keeps a day's counter (a lease is only ever for the branch's today)."""
KEEP_DAYS = 14
"""Counters and floors older than this many days are deleted."""
SEED_CHECK_S = 1.0
"""How often a replica checks that the Redis run is seeded (and seeds it when not)."""
REPLICA_MEMORY_S = 36 * 3600
"""A replica not seen for this long is no longer waited for when seeding."""
MAX_COUNT = 1000
"""The largest block a lease may ask for."""
SEED_RETRY_AFTER_S = 2
"""``Retry-After`` of a lease refused while Redis is being seeded."""


@dataclass(frozen=True)
class Lease:
    """A block of numbers handed out: ``first..last`` of one counter."""

    sequence: str
    day: str
    first: int
    last: int

    def json(self) -> dict[str, Any]:
        """The 201's body."""
        return {"sequence": self.sequence, "day": self.day, "first": self.first,
                "last": self.last}


class NotSeeded(StoreError):
    """Redis restarted and not every replica has raised the counters to its floors yet:
    no lease until then (the devices number offline)."""


class Ledger(Protocol):
    """What the relay needs from the branch's ledger."""

    async def start(self) -> None:
        """Open (and, with Redis, start keeping the run seeded)."""

    async def close(self) -> None:
        """Close."""

    async def lease(self, branch: str, day: str, sequence: str, count: int) -> Lease:
        """The next ``count`` numbers of the counter, durably handed out;
        :class:`StoreError` (:class:`NotSeeded`) when they cannot be."""


def _cutoff(moment: float) -> str:
    return (date.fromtimestamp(moment) - timedelta(days=KEEP_DAYS)).isoformat()


class _Db:
    """``hub.sqlite3``: one connection, used on a worker thread under a lock (its own
    transactions are short: one lease, one batch of reports)."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self.schema = schema
        self._db: sqlite3.Connection | None = None
        self.lock = asyncio.Lock()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a lease is on the disk before its 201
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(self.schema)
        self._db = db

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the ledger is closed")
        return self._db

    def transaction(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            out = work(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return out

    async def run(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """``work`` in one transaction on a worker thread; :class:`StoreError` on failure."""
        async with self.lock:
            try:
                return await asyncio.to_thread(self.transaction, work)
            except sqlite3.Error as exc:
                raise StoreError(f"the ledger: {exc}") from None

    def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    branch TEXT NOT NULL,
    day TEXT NOT NULL,
    sequence TEXT NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (branch, day, sequence)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replicas (
    id TEXT PRIMARY KEY,
    seen REAL NOT NULL,
    me INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""
"""``counters``: on one relay, the counter itself; on a replica, its floor (the last
number it handed out). ``replicas``: the replicas seen in Redis (``me``: this one)."""


def _raise(db: sqlite3.Connection, branch: str, day: str, sequence: str, last: int) -> None:
    db.execute("INSERT INTO counters (branch, day, sequence, last) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (branch, day, sequence) DO UPDATE SET last = max(last, "
               "excluded.last)", (branch, day, sequence, last))


class SqliteLedger:
    """The ledger of one relay, in ``hub.sqlite3``."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._file = _Db(path, _SCHEMA)
        self._clock = clock

    async def start(self) -> None:
        await asyncio.to_thread(self._file.open)
        await self._file.run(lambda db: db.execute("DELETE FROM counters WHERE day < ?",
                                                   (_cutoff(self._clock()),)))

    async def close(self) -> None:
        async with self._file.lock:
            await asyncio.to_thread(self._file.close)

    async def lease(self, branch: str, day: str, sequence: str, count: int) -> Lease:
        def work(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT last FROM counters WHERE branch = ? AND day = ? AND "
                             "sequence = ?", (branch, day, sequence)).fetchone()
            last = (int(row[0]) if row else 0) + count
            _raise(db, branch, day, sequence, last)
            return last
        last: int = await self._file.run(work)
        return Lease(sequence, day, last - count + 1, last)


_LEASE = """
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '?'
if redis.call('GET', KEYS[3]) ~= run then
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[3], run)
end
for i = 3, #ARGV do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 0 then return {-1, ARGV[i]} end
end
local last = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {last, ''}
"""
"""KEYS: the counter, the seeded set, the seeded run. ARGV: count, the counter's TTL, the
replicas that must have seeded this run. ``{last, ''}``, or ``{-1, id}``: ``id`` has not."""

_SEED = """
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '?'
if redis.call('GET', KEYS[2]) ~= run then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], run)
end
if ARGV[2] == '1' then
  for i = 4, #KEYS do
    local held = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
    if held < tonumber(ARGV[i]) then
      redis.call('SET', KEYS[i], ARGV[i], 'EX', ARGV[3])
    end
  end
  redis.call('SADD', KEYS[1], ARGV[1])
end
redis.call('SADD', KEYS[3], ARGV[1])
return {redis.call('SISMEMBER', KEYS[1], ARGV[1]), redis.call('SMEMBERS', KEYS[3])}
"""
"""KEYS: the seeded set, the seeded run, the replicas, then the counters to raise. ARGV:
this replica's id, '1' to seed ('0': only look), the counters' TTL, then each counter's
floor (ARGV[i] for KEYS[i], i from 4). Returns ``{seeded, replicas}``."""


def counter_key(branch: str, day: str, sequence: str) -> str:
    """The Redis key of a counter."""
    return f"kiosk:seq:{branch}:{day}:{sequence}"


SEEDED = "kiosk:hub:seeded"
SEEDED_RUN = "kiosk:hub:seeded-run"
REPLICAS = "kiosk:hub:replicas"


class RedisLedger:
    """The ledger shared by replicas in Redis; each replica's floors in its ``hub.sqlite3``."""

    def __init__(self, url: str, path: Path, clock: Callable[[], float] = time.time) -> None:
        from kiosk.relay.redis_store import client
        self.url = url
        self._redis: Any = client(url)
        self._lease = self._redis.register_script(_LEASE)
        self._seed = self._redis.register_script(_SEED)
        self._file = _Db(path, _SCHEMA)
        self._clock = clock
        self.id = ""
        """This replica's id (made once, kept in ``hub.sqlite3``)."""
        self._checker: asyncio.Task[None] | None = None
        self.seeded = asyncio.Event()
        """Set while this replica knows the Redis run is seeded by it."""

    async def start(self) -> None:
        await asyncio.to_thread(self._file.open)

        def me(db: sqlite3.Connection) -> str:
            db.execute("DELETE FROM counters WHERE day < ?", (_cutoff(self._clock()),))
            row = db.execute("SELECT id FROM replicas WHERE me = 1").fetchone()
            if row:
                return str(row[0])
            new = uuid.uuid4().hex
            db.execute("INSERT INTO replicas (id, seen, me) VALUES (?, ?, 1)",
                       (new, self._clock()))
            return new
        self.id = await self._file.run(me)
        self._checker = asyncio.create_task(self._check_loop(), name="hub-ledger-seed")

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._checker
        async with self._file.lock:
            await asyncio.to_thread(self._file.close)
        await self._redis.aclose()

    async def _check_loop(self) -> None:
        failing = False
        while True:
            try:
                await self.check()
            except StoreError as exc:
                if not failing:  # one line when it starts failing, one when it is back
                    log.warning("relay: the lease counters cannot be checked: %s (no leases "
                                "until Redis answers)", exc)
                failing = True
                self.seeded.clear()
            else:
                if failing:
                    log.info("relay: the lease counters answer again")
                failing = False
            await asyncio.sleep(SEED_CHECK_S)

    async def check(self) -> bool:
        """Make sure this Redis run has this replica's floors; whether it has. Remembers
        every replica seen (leases wait for each to seed after a Redis restart)."""
        async with self._file.lock:
            seeded, members = await self._call_seed(seed=False)
            if not seeded:
                floors = await asyncio.to_thread(self._floors)
                seeded, members = await self._call_seed(seed=True, floors=floors)
                log.warning("relay: Redis is a new run (restarted): the lease counters were "
                            "raised to this replica's %d floor(s)", len(floors))
            moment = self._clock()
            await asyncio.to_thread(self._file.transaction, lambda db: db.executemany(
                "INSERT INTO replicas (id, seen) VALUES (?, ?) ON CONFLICT (id) DO UPDATE "
                "SET seen = excluded.seen", [(m, moment) for m in members]))
        if seeded:
            self.seeded.set()
        else:
            self.seeded.clear()
        return seeded

    async def _call_seed(self, *, seed: bool, floors: list[Any] | None = None
                         ) -> tuple[bool, list[str]]:
        keys: list[str] = [SEEDED, SEEDED_RUN, REPLICAS]
        args: list[Any] = [self.id, "1" if seed else "0", COUNTER_TTL_S]
        for branch, day, sequence, last in floors or []:
            keys.append(counter_key(branch, day, sequence))
            args.append(int(last))
        try:
            seeded, members = await self._seed(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from None
        return bool(int(seeded)), [str(m) for m in members]

    def _floors(self) -> list[Any]:
        """This replica's floors of the days a lease may still be used (two days back:
        time zones ahead of this machine's)."""
        since = (date.fromtimestamp(self._clock()) - timedelta(days=2)).isoformat()
        return self._file.db.execute("SELECT branch, day, sequence, last FROM counters "
                                     "WHERE day >= ?", (since,)).fetchall()

    def _required(self, db: sqlite3.Connection) -> list[str]:
        since = self._clock() - REPLICA_MEMORY_S
        return [str(r[0]) for r in db.execute(
            "SELECT id FROM replicas WHERE seen >= ? OR me = 1", (since,)).fetchall()]

    async def lease(self, branch: str, day: str, sequence: str, count: int) -> Lease:
        async with self._file.lock:  # a seed never misses a block handed out meanwhile
            required = await asyncio.to_thread(self._required, self._file.db)
            try:
                last, missing = await self._lease(
                    keys=[counter_key(branch, day, sequence), SEEDED, SEEDED_RUN],
                    args=[count, COUNTER_TTL_S, *required])
            except (RedisError, OSError) as exc:
                raise StoreError(f"Redis: {exc}") from None
            last = int(last)
            if last < 0:
                self.seeded.clear()
                raise NotSeeded(f"Redis restarted: waiting for replica {missing} to seed "
                                "the lease counters")
            try:
                await asyncio.to_thread(self._file.transaction, lambda db: _raise(
                    db, branch, day, sequence, last))
            except sqlite3.Error as exc:
                raise StoreError(f"the floors: {exc}") from None
        return Lease(sequence, day, last - count + 1, last)


def ledger_path(sqlite_path: Path) -> Path:
    """``hub.sqlite3``, next to the relay's call store."""
    return sqlite_path.with_name("hub.sqlite3")


def open_ledger(store: str, sqlite_path: Path) -> Ledger:
    """The ledger for the relay's ``store`` setting (``sqlite`` or a Redis URL)."""
    if store == "sqlite":
        return SqliteLedger(ledger_path(sqlite_path))
    return RedisLedger(store, ledger_path(sqlite_path))
