"""The relay's stream of calls for this branch, kept open by the core.

``GET {calls.url}/v1/branches/{branch}/calls`` with ``Authorization: Bearer <display
token>`` is a Server-Sent Events stream: one ``event: call`` per call, ``id:`` increasing.
:class:`CallFeed` keeps it open: it reconnects with a capped, jittered backoff and sends
``Last-Event-ID`` so the relay replays what it missed; a first connection (no id yet)
gets the day's last calls from the relay, so a restarted screen is never blank. While the
relay is gone the last calls stay; ``connected`` says so.

Listeners get ``(feed, received)`` after every change: ``received`` are the calls just
received (none when only ``connected`` changed); :meth:`CallFeed.fresh` says whether one
is to be announced: recent enough (see :data:`kiosk.view.calling.ANNOUNCE_WINDOW_S`)
and not announced by this screen before, even before a restart (the relay replays the
day's last calls to a fresh connection: see :mod:`kiosk.calls.announced`).

The relay is trusted with calls, not with this process's memory: a line longer than
:data:`MAX_LINE` or an event longer than :data:`MAX_EVENT` (a broken or hostile relay
streaming one endless line), or a compressed stream (asked for plain), ends the
connection as a protocol error; the feed reconnects with the same growing wait.

The token lives here, in the core process; it never reaches a log line or the link. A
relay on this machine is reached directly, never through a proxy of the environment
(``HTTP_PROXY``, ``ALL_PROXY``): over ``http://`` that proxy would read the token in
clear (see :func:`kiosk.hub.client.relay_client`). In a core with a hub client
(:class:`kiosk.hub.client.HubClient`), the feed borrows its connection pool
(``client=``): one pool to the hub per core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import statistics
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx

from kiosk.calls.announced import MARK_FILE, AnnouncedMark
from kiosk.hub.client import relay_client
from kiosk.tasks import cancel
from kiosk.view.calling import Call, parse_call

if TYPE_CHECKING:
    from pydantic import SecretStr

    from kiosk.config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """How long to wait before reconnecting: doubling from ``initial_s``, capped at
    ``max_s``, each wait jittered by ±``jitter``; ``refused_s`` after a 401/403/404 (a
    wrong token or branch: staff must fix the config, hammering the relay helps nobody)."""

    initial_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.2
    refused_s: float = 60.0

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        base = min(self.max_s, self.initial_s * 2 ** max(0, failures - 1))
        r: float = (rng or random).uniform(-self.jitter, self.jitter)
        return float(max(0.0, base * (1 + r)))


DEFAULT_BACKOFF = Backoff()
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 45.0
"""No byte for this long (the relay sends keep-alive comments far more often): the
connection is dead though TCP has not noticed; reconnect."""
KEEP = 20
"""Calls kept in memory (the screen shows ``calls.keep`` of them)."""
MAX_LINE = 64 * 1024
"""Longest line of the stream read (bytes). A call's event is well under 1 KiB (a ticket
number, a booth, a queue name of at most a few hundred characters, a time), and the
relay takes no webhook over 64 KB: a longer line is a broken or hostile relay."""
MAX_EVENT = 64 * 1024
"""Longest event read (the sum of its ``data:`` lines, in characters)."""
MAX_ID = 128
"""Longest event id kept (the relay's are short numbers): it goes back to the relay as
``Last-Event-ID`` at every reconnect."""


class StreamRefused(Exception):
    """The relay answered with something other than an event stream (``retry_after``:
    the seconds its ``Retry-After`` asked for, when it gave a number)."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"HTTP {status}")


class StreamProtocolError(Exception):
    """The relay broke the stream's rules (a line or an event over the limits, a
    compressed body); the message says which, never the data."""


_EOL = re.compile(rb"\r\n|\r|\n")


async def bounded_lines(chunks: AsyncIterator[bytes], max_line: int = MAX_LINE
                        ) -> AsyncIterator[str]:
    """The lines of a byte stream (ended by CRLF, LF or CR, as the event-stream format
    allows), decoded as UTF-8; :class:`StreamProtocolError` as soon as one grows past
    ``max_line`` bytes, so no more than ``max_line`` plus one chunk is ever held.

    Linear in the bytes received however they are cut: each byte is searched for a line
    end once (a line sent a byte at a time is not searched again from its start with
    every byte)."""
    buf = bytearray()
    scanned = 0  # buf[:scanned] holds no line end: the next search starts there
    async for chunk in chunks:
        buf += chunk
        start = 0
        while (m := _EOL.search(buf, max(start, scanned))) is not None:
            if m.group() == b"\r" and m.end() == len(buf):
                scanned = m.start()  # maybe the first half of a CRLF: wait for the next
                break                # chunk, then look at this \r again
            if m.start() - start > max_line:
                break
            yield buf[start:m.start()].decode("utf-8", "replace")
            start = m.end()
        else:
            scanned = len(buf)
        del buf[:start]  # from the front of a bytearray: O(1), no copy of the rest
        scanned = max(0, scanned - start)
        if len(buf) > max_line + (1 if buf.endswith(b"\r") else 0):
            raise StreamProtocolError(f"a line over {max_line // 1024} KiB")
    if buf:
        yield buf.decode("utf-8", "replace")


@dataclass
class SseEvent:
    """One Server-Sent Event."""

    event: str
    data: str
    id: str | None
    retry_ms: int | None = None


async def sse_events(lines: AsyncIterator[str], max_event: int = MAX_EVENT
                     ) -> AsyncIterator[SseEvent]:
    """Server-Sent Events from a stream's lines (the WHATWG event-stream format:
    ``field: value`` lines, a blank line ends an event, ``:`` starts a comment);
    :class:`StreamProtocolError` when an event's data grows past ``max_event``."""
    event, event_id, retry = "", None, None
    data: list[str] = []
    size = 0
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data or event:
                yield SseEvent(event or "message", "\n".join(data), event_id, retry)
            event, retry = "", None
            data = []
            size = 0
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            size += len(value) + 1
            if size > max_event:
                raise StreamProtocolError(f"an event over {max_event // 1024} KiB")
            data.append(value)
        elif name == "id" and len(value) <= MAX_ID and value.isascii() and (
                value.isprintable()):
            event_id = value  # sent back in a header at each reconnect: plain and short
        elif name == "retry" and value.isdigit():
            retry = int(value)


Listener = Callable[["CallFeed", list[Call]], None]


class CallFeed:
    """This branch's calls from the relay, kept live. Start with :meth:`start`."""

    def __init__(self, url: str, branch: str, token: SecretStr, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 backoff: Backoff = DEFAULT_BACKOFF, keep: int = KEEP,
                 clock: Callable[[], datetime] | None = None,
                 read_timeout_s: float = READ_TIMEOUT_S,
                 mark_file: Path | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        self.url = f"{url.rstrip('/')}/v1/branches/{quote(branch, safe='')}/calls"
        self.mark = AnnouncedMark(mark_file, scope=self.url)
        """The newest call announced (kept in ``mark_file`` across restarts)."""
        self._announced: list[Call] = []  # the last ones this run decided to announce
        self._token = token
        self._timeout = httpx.Timeout(CONNECT_TIMEOUT_S, read=read_timeout_s)
        self._own_client = client is None
        """Whether the client is this feed's own (else the hub's, shared: see
        :class:`kiosk.hub.client.HubClient`), to close with the feed."""
        self._client = client or relay_client(url, self._timeout, transport)
        self.backoff = backoff
        self.keep = keep
        self._clock = clock or (lambda: datetime.now(UTC))
        self.calls: list[Call] = []
        """The last calls, newest first."""
        self.connected = False
        self.last_event_id: str | None = None
        self.failures = 0
        """Connection attempts that failed in a row."""
        self.error = ""
        """Why the last connection failed or ended (empty while connected)."""
        self.connects = 0
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._retry_ms: int | None = None
        self._retry_after: float | None = None
        self._refused = False
        self._failures_before = 0

    @classmethod
    def from_config(cls, config: Config, token: SecretStr, **kw: object) -> CallFeed:
        assert config.hub is not None
        kw.setdefault("mark_file", config.kiosk.data_dir / MARK_FILE)
        return cls(config.hub.url, config.branch, token, **kw)  # type: ignore[arg-type]

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def reconnect_now(self) -> None:
        """Skip the current backoff wait (tests, staff)."""
        self._wake.set()

    async def aclose(self) -> None:
        await cancel(self._task)
        self._task = None
        if self._own_client:
            await self._client.aclose()
        await self.mark.flush()

    # ----------------------------------------------------------------- the loop

    def _notify(self, new: list[Call]) -> None:
        for listener in list(self._listeners):
            try:
                listener(self, new)
            except Exception:  # a listener's bug must not stop the stream
                log.exception("a calls listener failed")

    def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self._notify([])

    async def _run(self) -> None:
        while True:
            self._refused = False
            try:
                await self._stream()
                self.error = "the relay closed the stream"
                self.failures = 1  # a clean end (a relay restart): come back soon
            except StreamRefused as exc:
                self.failures += 1
                self._retry_after = exc.retry_after
                self.error = f"the relay refused the stream ({exc})"
                self._refused = exc.status in (401, 403, 404)
                log.error("calls: %s%s", self.error,
                          ": check calls.token_file and the branch" if exc.status in
                          (401, 403, 404) else "")
            except (httpx.TransportError, httpx.StreamError) as exc:
                self.failures += 1
                self.error = f"relay unreachable ({exc.__class__.__name__})"
                log.log(logging.WARNING if self.failures in (1, 5) else logging.DEBUG,
                        "calls: %s; retrying", self.error)
            except Exception as exc:  # a protocol error, or whatever else the relay sent
                # counted from before the connection, so a relay that keeps doing it
                # meets the same growing wait as one that cannot be reached
                self.failures = max(self.failures, self._failures_before) + 1
                protocol = isinstance(exc, StreamProtocolError)
                self.error = (f"protocol error from the relay ({exc}); stream dropped"
                              if protocol else
                              f"unexpected answer from the relay ({exc.__class__.__name__})")
                level = logging.WARNING if protocol else logging.ERROR
                log.log(level if self.failures in (1, 5) else logging.DEBUG,
                        "calls: %s; retrying", self.error)
            self._set_connected(False)
            await self._pause()

    async def _pause(self) -> None:
        refused = self._refused
        delay = self.backoff.refused_s if refused else self.backoff.delay(self.failures)
        if self._retry_ms is not None and not refused:
            delay = max(delay, min(self._retry_ms / 1000, self.backoff.max_s))
        if self._retry_after is not None:  # a 429/503's Retry-After, within reason
            delay = max(delay, min(self._retry_after, self.backoff.refused_s))
            self._retry_after = None
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _stream(self) -> None:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache",
                   "Accept-Encoding": "identity",  # a small gzip body can inflate to GBs
                   "Authorization": f"Bearer {self._token.get_secret_value()}"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        async with self._client.stream("GET", self.url, headers=headers,
                                       timeout=self._timeout) as resp:
            ctype = resp.headers.get("content-type", "")
            if resp.status_code != 200 or not ctype.startswith("text/event-stream"):
                later = resp.headers.get("retry-after", "").strip()
                raise StreamRefused(resp.status_code, float(later) if later.isascii()
                                    and later.isdigit() and len(later) < 10 else None)
            if resp.headers.get("content-encoding", "identity").lower() != "identity":
                raise StreamProtocolError("a compressed stream, asked for plain")
            self.connects += 1
            self._failures_before, self.failures = self.failures, 0
            self.error = ""
            log.info("calls: connected to the relay%s", "" if self.last_event_id is None
                     else f" (resuming after event {self.last_event_id})")
            self._set_connected(True)
            # raw bytes (no decoding), cut into bounded lines: see MAX_LINE, MAX_EVENT
            async for ev in sse_events(bounded_lines(resp.aiter_raw())):
                if ev.retry_ms is not None:
                    self._retry_ms = ev.retry_ms
                if ev.event != "call":
                    continue
                self._failures_before = 0  # a stream that works: a later fault starts over
                self._receive(ev)

    def _receive(self, ev: SseEvent) -> None:
        if ev.id is not None:
            self.last_event_id = ev.id
        call = parse_call(ev.id or "", ev.data)
        if call is None:
            log.warning("calls: an event the screen cannot read was skipped (id %s)", ev.id)
            return
        if any(c.event_id == call.event_id for c in self.calls if call.event_id):
            return  # a replay of what we already have
        # newest first; a ticket called again (another booth) is listed once, at the top
        self.calls = [call, *(c for c in self.calls if c.ticket_id != call.ticket_id)]
        del self.calls[self.keep:]
        if call.is_recent(self._clock()) and not self.mark.covers(call):
            self.mark.record(call)  # decided once, here, whoever listens
            self._announced = [call, *self._announced[:self.keep - 1]]
        self._notify([call])

    def fresh(self, call: Call) -> bool:
        """Whether ``call`` is to be chimed and spoken: recent, and not announced by this
        screen before (see :mod:`kiosk.calls.announced`)."""
        return call in self._announced


def call_wait_summary(waits: list[float]) -> str:
    """Today's time from ticket to call, for staff: "12 called, median 4.5 min"."""
    if not waits:
        return "none called yet"
    median = statistics.median(waits)
    shown = f"{median:.0f} s" if median < 60 else f"{median / 60:.1f} min"
    return f"{len(waits)} called, median {shown} from ticket to call"


def relay_summary(feed: CallFeed) -> str:
    """The relay's state in one line for staff (never the token)."""
    state = "connected" if feed.connected else f"not connected ({feed.error or 'connecting'})"
    return f"Relay {feed.url}: {state}; {len(feed.calls)} calls today on screen"


async def probe_relay(url: str, branch: str, token: SecretStr, *,
                      transport: httpx.AsyncBaseTransport | None = None,
                      timeout_s: float = 5.0) -> list[tuple[bool, str, str]]:
    """For ``kiosk check``: whether the relay answers, and whether it opens this branch's
    stream with this token: ``[(ok, what, detail), ...]`` (the token never in them)."""
    out: list[tuple[bool, str, str]] = []
    base = url.rstrip("/")
    async with relay_client(base, timeout_s, transport) as client:
        try:
            health = await client.get(f"{base}/healthz")
        except httpx.HTTPError as exc:
            return [(False, "relay", f"{base}: unreachable ({exc.__class__.__name__})")]
        out.append((health.is_success, "relay", f"{base} answers ({health.status_code})"))
        stream = f"{base}/v1/branches/{quote(branch, safe='')}/calls"
        headers = {"Accept": "text/event-stream",
                   "Authorization": f"Bearer {token.get_secret_value()}"}
        try:
            async with client.stream("GET", stream, headers=headers) as resp:
                status = resp.status_code
                ok = status == 200 and resp.headers.get("content-type", "").startswith(
                    "text/event-stream")
        except httpx.HTTPError as exc:
            out.append((False, "token", f"the stream did not open ({exc.__class__.__name__})"))
            return out
    if ok:
        out.append((True, "token", f"the relay streams branch {branch}'s calls to this token"))
    elif status in (401, 403):
        out.append((False, "token", f"the relay refused the token ({status}): check "
                    "calls.token_file and the relay's displays for this branch"))
    else:
        out.append((False, "token", f"the relay answered {status} for branch {branch}"))
    return out
