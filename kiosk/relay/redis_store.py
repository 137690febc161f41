"""The Redis store: several relay replicas behind one load balancer share calls.

Keys (``{b}`` a branch id, ``{d}`` a day)::

    kiosk:relay:call:{callId}          SET NX: the call was stored (TTL 3 days)
    kiosk:relay:ticket:{b}:{d}:{t}     SET NX: the branch's ticket t was called that day
    kiosk:relay:seq:{b}                INCR: the branch's last event id (never expires)
    kiosk:relay:calls:{b}:{d}          a stream per branch and day; entry ids ``<n>-0``

One Lua script does both SET NX, the INCR and the XADD atomically, so a repeated delivery
on any replica is one call and ids are gap-free and ordered per branch. Each replica runs
one reader that XREADs (blocking) the streams of the branches its screens watch, so a
screen on replica B gets a call that replica A received. Redis must persist (AOF with
``appendfsync everysec`` or ``always``) for a stored call to survive Redis itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kiosk.errors import StoreError
from kiosk.relay.store import Call, Event, Publish

log = logging.getLogger(__name__)

TTL_S = 3 * 24 * 3600
BLOCK_MS = 250
"""The reader's XREAD wait; a newly watched branch joins the next read."""
SOCKET_TIMEOUT_S = 5.0
"""How long a connect to Redis, or one answer from it, may take before it fails (a
blackholed Redis then gives 503s, not requests hung for the kernel's ~15 min). Well above
:data:`BLOCK_MS`: the reader's blocking XREAD waits at most that for its answer. The URL's
``?socket_timeout=`` / ``?socket_connect_timeout=`` override it (redis-py: the URL wins)."""

_ADD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then return 0 end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then return 0 end
local n = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], n .. '-0', 'data', ARGV[1], 'received', ARGV[2])
redis.call('EXPIRE', KEYS[4], ARGV[3])
return n
"""


def _stream(branch: str, day: str) -> str:
    return f"kiosk:relay:calls:{branch}:{day}"


class RedisStore:
    """Calls in Redis, shared by every replica that points at it."""

    def __init__(self, url: str, today: Callable[[], str] | None = None) -> None:
        self.url = url
        # Any: redis-py's stubs type every answer as a union of bytes, str and None.
        self._redis: Any = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S)
        self._reader_conn: Any = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S)
        self._add = self._redis.register_script(_ADD)
        self._publish: Publish = lambda branch, events: None
        self._watched: dict[str, str] = {}  # branch -> cursor (last entry id read)
        self._day: str = ""
        self._reader: asyncio.Task[None] | None = None
        self._today = today

    def set_today(self, today: Callable[[], str]) -> None:
        """Which day the reader follows (the app's :meth:`Relay.today`)."""
        self._today = today

    def _current_day(self) -> str:
        if self._today is not None:
            return self._today()
        return datetime.now().date().isoformat()

    async def start(self, publish: Publish) -> None:
        self._publish = publish
        if not await self.ping():  # start all the same: 503s until Redis is back
            log.warning("relay: Redis at %s does not answer yet", self._where())
        self._day = self._current_day()
        self._reader = asyncio.create_task(self._read_loop(), name="relay-redis-reader")

    def _where(self) -> str:
        return self.url.split("@")[-1].split("?")[0]  # never a password from the URL

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self._reader_conn.aclose()
        await self._redis.aclose()

    async def add(self, call: Call) -> Event | None:
        data = json.dumps(call.data, ensure_ascii=False, separators=(",", ":"))
        keys = [f"kiosk:relay:call:{call.call_id}",
                f"kiosk:relay:ticket:{call.branch}:{call.day}:{call.ticket_id}",
                f"kiosk:relay:seq:{call.branch}", _stream(call.branch, call.day)]
        try:
            n = int(await self._add(keys=keys, args=[data, repr(call.received), TTL_S]))
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from None
        return Event(n, call.branch, data, call.received) if n else None

    async def since(self, branch: str, day: str, after: int | None, limit: int) -> list[Event]:
        key = _stream(branch, day)
        try:
            if after is None:
                rows = list(reversed(await self._redis.xrevrange(key, count=limit)))
            else:
                rows = list(reversed(await self._redis.xrevrange(  # the newest ``limit``
                    key, min=f"({after}-0", count=limit)))
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
        key = _stream(branch, self._day or self._current_day())
        try:
            last = await self._redis.xrevrange(key, count=1)
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from None
        # From the stream's present end: what the screen's backlog read misses (stored
        # after it), the reader delivers; the screen skips ids it already has.
        self._watched[branch] = last[0][0] if last else "0-0"

    async def unwatch(self, branch: str) -> None:
        self._watched.pop(branch, None)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def _read_loop(self) -> None:
        while True:
            day = self._current_day()
            if day != self._day:  # midnight: follow the new day's streams from their start
                self._day = day
                self._watched = dict.fromkeys(self._watched, "0-0")
            if not self._watched:
                await asyncio.sleep(BLOCK_MS / 1000)
                continue
            streams = {_stream(b, day): cursor for b, cursor in self._watched.items()}
            names = {_stream(b, day): b for b in self._watched}
            try:
                answer = await self._reader_conn.xread(streams, block=BLOCK_MS)
            except (RedisError, OSError) as exc:
                log.warning("relay: reading calls from Redis failed: %s (retrying)", exc)
                await asyncio.sleep(1.0)
                continue
            for key, entries in answer or []:
                branch = names.get(key)
                if branch is None or branch not in self._watched or not entries:
                    continue
                self._watched[branch] = entries[-1][0]
                self._publish(branch, [self._event(branch, i, f) for i, f in entries])
