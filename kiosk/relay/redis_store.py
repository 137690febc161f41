"""The Redis store: several relay replicas behind one load balancer share calls.

Keys (``{b}`` a branch id, ``{d}`` the branch's local day, ``{e}`` an epoch)::

    kiosk:relay:epoch                  HASH e, run: the epoch and the Redis run it began in
    kiosk:relay:seq:{e}                HASH branch -> n, the branch's calls in epoch e
    kiosk:relay:call:{callId}          the call was stored (31 days)
    kiosk:relay:near:{hash}            a call without callId (ticket, booth; 5 min)
    kiosk:relay:jwt:{hash}             a JWT used (its time window)
    kiosk:relay:tickets:{b}:{d}        SET: the tickets called that day (re-calls)
    kiosk:relay:calls:{b}:{d}          a stream per branch and day; entry ids ``<id>-0``
    kiosk:relay:called:{b}:{d}         HASH ticket -> its latest call's data (the ledger's
                                       join: kiosk.relay.ledger)

One Lua script (:data:`_ADD`) does it all atomically, so a repeated delivery on any
replica is one call and ids are ordered per branch. Event ids are ``epoch * 10^8 + n``
(:mod:`kiosk.relay.store`): the script starts a new epoch (the Redis clock in seconds,
above the last one this replica saw and above the second this Redis run began in: a run
that lost its data may have begun an epoch in it) whenever the epoch record is missing
(Redis lost its data) or was written by another Redis run (``run_id`` changes at every
restart, which may have restored an older state: everysec AOF, an RDB snapshot). So ids
never go back: screens, replicas' read cursors and streams resume above them with no
reset to coordinate.

Each replica runs one reader that XREADs (blocking) the streams of the branches its
screens watch, so a screen on replica B gets a call that replica A received. Ids grow per
branch whatever the day, so the reader keeps one cursor per branch, its last id, and
reads the day before's, the day's and the next day's streams from it in one XREAD: a
call that took its day just before midnight and was stored just after, or a replica
whose clock is behind, still comes in id order (one XREAD is one moment in Redis: any
lower id was stored before it and is in the same answer). A screen's watch starts the
cursor at the branch's last id (:data:`_LAST`: the epoch record and its counter).

Every client retries a command once on a connection error (the pooled connections of a
restarted Redis each fail once). Redis must persist (AOF, ``appendfsync always`` for no loss, or
``everysec``: up to a second of calls) for a stored call to survive Redis itself; a
single Redis (or a Sentinel pair), not a Cluster; ``maxmemory-policy noeviction``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from kiosk.errors import StoreError
from kiosk.relay.store import EPOCH_SPAN, Call, Event, Publish, Replayed, days_around
from kiosk.tasks import cancel

log = logging.getLogger(__name__)

TTL_S = 3 * 24 * 3600
"""How long a day's stream and ticket set are kept."""
BLOCK_MS = 250
"""The reader's XREAD wait; a newly watched branch joins the next read."""
SOCKET_TIMEOUT_S = 5.0
"""How long a connect to Redis, or one answer from it, may take before it fails (a
blackholed Redis then gives 503s, not requests hung for the kernel's ~15 min). Well above
:data:`BLOCK_MS`: the reader's blocking XREAD waits at most that for its answer. The URL's
``?socket_timeout=`` / ``?socket_connect_timeout=`` override it (redis-py: the URL wins)."""

_ADD = """
local SPAN = 100000000
local received = tonumber(ARGV[3])
local function first_use(key, ttl, again)  -- new, or its time is over (the relay's clock)
  local held = redis.call('GET', key)
  local mine = string.format('%.3f', received + ttl)
  if again and held == mine then return true end
  if held and (held == '1' or tonumber(held) >= received) then return false end
  redis.call('SET', key, mine, 'EX', ttl + 60)
  return true
end
local info = redis.call('INFO', 'server')
local run = string.match(info, 'run_id:(%x+)') or '?'
local rec = redis.call('HMGET', KEYS[4], 'e', 'run')
local e = tonumber(rec[1])
-- a JWT key holding this very request's time: this script ran before and its answer was
-- lost (redis-py sends it again after a connection error): the call's key answers
if ARGV[9] ~= '0' and not first_use(KEYS[5], tonumber(ARGV[9]), true) then return {-1, 0, 0} end
if not first_use(KEYS[1], tonumber(ARGV[4])) then return {0, 0, 0} end
local function new_epoch(before)
  local t = tonumber(redis.call('TIME')[1])
  -- above the second this run began in: the run before (its data lost) may have begun
  -- an epoch in it
  local up = tonumber(string.match(info, 'uptime_in_seconds:(%d+)') or '0')
  local n = math.max(t, t - up + 1, (before or 0) + 1, tonumber(ARGV[8]) + 1)
  redis.call('HSET', KEYS[4], 'e', string.format('%d', n), 'run', run)
  if before then redis.call('DEL', 'kiosk:relay:seq:' .. string.format('%d', before)) end
  return n
end
if (not e) or rec[2] ~= run then e = new_epoch(e) end
local fresh = redis.call('SADD', KEYS[2], ARGV[7]) == 1
redis.call('EXPIRE', KEYS[2], ARGV[5])
local data = fresh and ARGV[1] or ARGV[2]
local n, ok
for _ = 1, 2 do
  n = redis.call('HINCRBY', 'kiosk:relay:seq:' .. string.format('%d', e), ARGV[6], 1)
  if n >= SPAN then
    ok = {err = 'ids exhausted'}
  else
    ok = redis.pcall('XADD', KEYS[3], string.format('%d%08d-0', e, n), 'data', data,
                     'received', ARGV[3])
  end
  if type(ok) ~= 'table' or not ok.err then break end
  e = new_epoch(e)  -- the stream holds a later id than this epoch's: the next epoch, once
end
if type(ok) == 'table' and ok.err then  -- not stored: forget it was seen (5xx, retried)
  redis.call('DEL', KEYS[1])
  if ARGV[9] ~= '0' then redis.call('DEL', KEYS[5]) end
  if fresh then redis.call('SREM', KEYS[2], ARGV[7]) end
  return redis.error_reply('XADD: ' .. ok.err)
end
redis.call('EXPIRE', KEYS[3], ARGV[5])
redis.call('HSET', KEYS[6], ARGV[7], data)
redis.call('EXPIRE', KEYS[6], ARGV[5])
return {e, n, fresh and 0 or 1}
"""
"""KEYS: dedup key, the day's tickets, the day's stream, the epoch record, the JWT key,
the day's latest call per ticket.
ARGV: data, data of a re-call, received, dedup TTL, day TTL, branch, ticket, the highest
epoch this replica has seen, the JWT key's TTL (0: none). A dedup or JWT key holds the
relay-clock time it is kept until (Redis expires it a minute later). Returns
``{e, n, recall}``; ``{0, ...}`` a repeated delivery; ``{-1, ...}`` a JWT used before."""


_LAST = """
local e = redis.call('HGET', KEYS[1], 'e')
if not e then return '0-0' end
local n = redis.call('HGET', 'kiosk:relay:seq:' .. e, ARGV[1]) or '0'
return e .. string.format('%08d', tonumber(n)) .. '-0'
"""
"""The branch's last id (or its epoch's start): a cursor for every day's stream."""


def called_key(branch: str, day: str) -> str:
    """The HASH of a day's tickets' latest calls (ticket -> the call's SSE data)."""
    return f"kiosk:relay:called:{branch}:{day}"


def _stream(branch: str, day: str) -> str:
    return f"kiosk:relay:calls:{branch}:{day}"


def client(url: str) -> Any:
    """A Redis client as every part of the relay uses it (timeouts, one retry)."""
    # Any: redis-py's stubs type every answer as a union of bytes, str and None.
    return aioredis.Redis.from_url(
        url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        # a restarted Redis closed every pooled connection: each command retries once
        # on a fresh one (never a timeout: a blackholed Redis would double the wait)
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)))


class RedisStore:
    """Calls in Redis, shared by every replica that points at it."""

    def __init__(self, url: str, today: Callable[[str], str] | None = None) -> None:
        self.url = url
        self._redis: Any = client(url)
        self._reader_conn: Any = client(url)
        self._add = self._redis.register_script(_ADD)
        self._publish: Publish = lambda branch, events: None
        self._watched: dict[str, str] = {}  # branch -> cursor (its last entry id read)
        self._last = self._redis.register_script(_LAST)
        self._reader: asyncio.Task[None] | None = None
        self.today = today
        """Branch -> its current day (the relay's :meth:`Relay.today`)."""
        self.epoch = 0
        """The highest epoch this replica has seen (a new one must be above it)."""
        self.on_epoch: Callable[[int, int], None] = lambda old, new: None
        """Called when a stored call shows a new epoch (the store went back)."""

    def _day(self, branch: str) -> str:
        if self.today is not None:
            return self.today(branch)
        return datetime.now().date().isoformat()

    async def start(self, publish: Publish) -> None:
        self._publish = publish
        if not await self.ping():  # start all the same: 503s until Redis is back
            log.warning("relay: Redis at %s does not answer yet", self._where())
        self._reader = asyncio.create_task(self._read_loop(), name="relay-redis-reader")

    def _where(self) -> str:
        return self.url.split("@")[-1].split("?")[0]  # never a password from the URL

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await cancel(self._reader)
        await self._reader_conn.aclose()
        await self._redis.aclose()

    async def add(self, call: Call) -> Event | None:
        first, again = call.payloads()
        key, ttl = call.dedup()
        replay = call.replay_key or "-"
        keys = [f"kiosk:relay:{key}", f"kiosk:relay:tickets:{call.branch}:{call.day}",
                _stream(call.branch, call.day), "kiosk:relay:epoch",
                "kiosk:relay:" + (replay if call.replay_key else "jwt:-"),
                called_key(call.branch, call.day)]
        args = [first, again, repr(call.received), ttl, TTL_S, call.branch, call.ticket_id,
                self.epoch, call.replay_ttl_s if call.replay_key else 0]
        try:
            epoch, n, recall = (int(x) for x in await self._add(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from None
        if epoch == -1:
            raise Replayed()
        if epoch == 0:
            return None
        self._saw_epoch(epoch)
        return Event(epoch * EPOCH_SPAN + n, call.branch, again if recall else first,
                     call.received)

    def _saw_epoch(self, epoch: int) -> None:
        if epoch > self.epoch:
            old, self.epoch = self.epoch, epoch
            if old:
                self.on_epoch(old, epoch)

    async def since(self, branch: str, day: str, after: int | None, limit: int) -> list[Event]:
        try:
            if after is None:  # a new screen: the day's last calls
                rows = list(reversed(await self._redis.xrevrange(_stream(branch, day),
                                                                 count=limit)))
            else:  # a screen resuming: what it missed, of the days around (store.days_around)
                pipe = self._redis.pipeline(transaction=False)
                for d in days_around(day):
                    pipe.xrevrange(_stream(branch, d), min=f"({after}-0", count=limit)
                rows = sorted((row for part in await pipe.execute() for row in part),
                              key=lambda row: int(row[0].split("-", 1)[0]))[-limit:]
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from None
        return [self._event(branch, entry_id, fields) for entry_id, fields in rows]

    @staticmethod
    def _event(branch: str, entry_id: str, fields: dict[str, str]) -> Event:
        return Event(int(entry_id.split("-", 1)[0]), branch, fields["data"],
                     float(fields.get("received", "0")))

    async def watch(self, branch: str) -> None:
        if branch in self._watched:
            return
        try:
            last = await self._last(keys=["kiosk:relay:epoch"], args=[branch])
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from None
        # From the branch's last id: what the screen's backlog read misses (stored after
        # it), the reader delivers; the screen skips ids it already has. Another screen's
        # watch may have set the cursor during this read (screens come back together
        # after a restart): it stays, never moved to this later id, which would skip the
        # calls stored between the two reads that the other screen's backlog, read before
        # them, does not hold.
        if branch not in self._watched:
            self._watched[branch] = str(last)

    async def unwatch(self, branch: str) -> None:
        self._watched.pop(branch, None)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def _read_loop(self) -> None:
        while True:
            if not self._watched:
                await asyncio.sleep(BLOCK_MS / 1000)
                continue
            streams: dict[str, str] = {}
            names: dict[str, str] = {}  # stream -> branch
            for branch, cursor in list(self._watched.items()):
                # ids grow per branch across days: one cursor for the day before's, the
                # day's and the next day's streams (replicas' clocks differ; a call may
                # store after its day ended), all read in one XREAD: in id order
                for day in days_around(self._day(branch)):
                    streams[_stream(branch, day)] = cursor
                    names[_stream(branch, day)] = branch
            try:
                answer = await self._reader_conn.xread(streams, block=BLOCK_MS)
            except (RedisError, OSError) as exc:
                log.warning("relay: reading calls from Redis failed: %s (retrying)", exc)
                await asyncio.sleep(1.0)
                continue
            read: dict[str, list[Event]] = {}
            for key, entries in answer or []:
                branch = names.get(key, "")
                if branch not in self._watched or not entries:
                    continue
                read.setdefault(branch, []).extend(self._event(branch, i, f) for i, f in entries)
            for branch, events in read.items():
                events.sort(key=lambda ev: ev.id)
                self._watched[branch] = f"{events[-1].id}-0"
                self._saw_epoch(events[-1].epoch)
                self._publish(branch, events)
