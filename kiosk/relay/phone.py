"""The ticket on the customer's phone: the page the ticket's QR opens (issue 18).

::

    GET /t/{token}          the page (HTML, in the ticket's language)
    GET /t/{token}/state    its state as JSON (the page polls it when it has no stream)
    GET /t/{token}/events   Server-Sent Events: ``event: state`` with the same JSON, at
                            once and on every change
    GET /phone/phone.css, /phone/phone.js   the page's style and script (same origin)

The token is 128 random bits or more, made by the kiosk's core for one ticket and sent to
the hub in the ticket's report (``phone``); the hub keeps only its SHA-256 (hex), so every
request hashes the token and looks the hash up: a well-formed token, a malformed one and
an unknown one all take the same path (no early exit, no enumeration by timing). The
state (docs/hub.md)::

    {"ticketId", "queue": {"name"}, "state": "waiting" | "called" | "expired",
     "ahead", "wait_min", "booth", "issuedAt", "calledAt", "priority"}

- ``ahead``: the tickets of the same branch, day and queue issued before this one (by
  ``issuedAt``, then number) and not called yet.
- ``wait_min``: ``ahead`` times the median interval between the queue's calls that day
  (once it has :data:`MIN_CALLS_FOR_MEDIAN` calls); before that, the wait the kiosk showed
  at issue (the report's ``wait_min``) less the minutes gone since; ``null`` when neither
  is known, or once called.
- ``expired``: the branch's day is over, or the ticket was called more than
  :data:`KEEP_AFTER_CALL_S` ago: the page answers 410 with kind words.

Answers carry ``Cache-Control: no-store``, ``Referrer-Policy: no-referrer``,
``X-Robots-Tag: noindex``, ``X-Content-Type-Options: nosniff`` and a strict
Content-Security-Policy (no inline script or style, nothing from another origin). Requests
on ``/t/`` are limited per address (:class:`RateLimiter`; behind this machine's reverse
proxy, the address it forwards: :func:`kiosk.netloc.client_address`): 429 with ``Retry-After``.

The streams share the relay's hub (:mod:`kiosk.relay.hub`): each page is a
:class:`~kiosk.relay.hub.Page` with a small bounded queue; a change of a branch (a call, a
report) is handled after its screens got their events, in a task of its own that yields
every :data:`CHUNK` pages, and a page that is too slow to read is dropped (it reconnects,
and gets its whole state first). Thousands of pages never slow the screens.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import statistics
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from kiosk.errors import StoreError
from kiosk.i18n import DEFAULT_LANGUAGE, LANGUAGES, format_wait, t
from kiosk.netloc import Network, client_address
from kiosk.relay.hub import GONE, Hub, Page
from kiosk.relay.ledger import Ledger, Ticket

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
KEEP_AFTER_CALL_S = 3 * 3600
"""A called ticket's page expires this long after its (latest) call."""
MIN_CALLS_FOR_MEDIAN = 3
"""The queue's calls that day before the median interval estimates the wait."""
PAGE_BUFFER = 4
"""A page's queue of states not yet sent: one more and it is dropped (it reconnects)."""
KEEPALIVE_S = 20.0
"""A comment on a quiet page stream this often (proxies close idle connections); the
page's expiry is checked then too."""
CHUNK = 250
"""Pages updated between two yields to the event loop (the screens' sends go between)."""
MAX_PAGES = 50_000
"""Open page streams at most (per relay process): one more is answered 503."""
RATE_PER_MIN = 240.0
"""Requests per minute per address on ``/t/`` (a branch's Wi-Fi is one address)."""
RATE_BURST = 120.0
"""Requests an address may send at once before the rate applies."""
RATE_ADDRESSES = 100_000
"""Addresses remembered at most by the limiter (the idle ones are forgotten first)."""
POLL_S = 3
"""How often the page polls ``/state`` when it has no stream (in the page's script)."""
LEDGER_READS = 8
"""Ledger reads the pages make at once (a crowd opening pages waits its turn; the ledger's
connections stay free for the devices' reports and leases)."""
INDEX_TTL_S = 10.0
"""A branch-day's index is read again after this long (reports another replica took)."""
SEND_TIMEOUT_S = 10.0
"""A send to a page that does not complete within this resets its stream."""


def digest(token: str) -> str:
    """The SHA-256 (hex) of a phone token: what the hub keeps and looks up."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class PhoneTicket:
    """One ticket of the branch's day as the phone page needs it (from the ledger)."""

    branch: str
    day: str
    """The branch-local day (``YYYY-MM-DD``)."""
    ticket_id: str
    queue_id: str
    queue_name: str
    lang: str
    issued_at: str
    """ISO 8601 with the branch's offset."""
    outcome: str = "issued"
    priority: object = None
    booth: str | None = None
    """The booth of the latest call; None until called."""
    called_at: str | None = None
    wait_min: float | None = None
    """The wait the kiosk showed at issue (the report's ``wait_min``), if any."""
    device: str = ""
    """The device that reported it (a number reported twice is a fault the ledger keeps
    every report of, each with its own phone token: kiosk.relay.ledger.CONFLICT)."""
    variant: str = ""
    """Which of its device's reports of the number ("" the first)."""
    second: bool = False
    """A report kept beside the first of its number: not counted in the queue again."""

    @property
    def key(self) -> tuple[str, str, str]:
        """The report among the day's: ticket, device, variant."""
        return (self.ticket_id, self.device, self.variant)

    @property
    def queue_key(self) -> str:
        return self.queue_id or self.queue_name

    def order(self) -> tuple[float, str]:
        """Where it stands in its queue: issued time, then number."""
        return (_epoch(self.issued_at), self.ticket_id)


class PhoneSource(Protocol):
    """What the page reads: the hub's ledger (kiosk.relay.ledger)."""

    async def ticket_by_phone(self, sha256_hex: str) -> PhoneTicket | None:
        """The ticket whose phone token hashes to ``sha256_hex``, or None."""

    async def day_tickets(self, branch: str, day: str) -> Sequence[PhoneTicket]:
        """Every ticket of ``branch``'s ``day``, each with its latest call."""


Follow = Callable[[str, Callable[[Any], None]], contextlib.AbstractAsyncContextManager[None]]
"""``Relay.follow``: a listener told of a branch's changes while inside."""


class LedgerSource:
    """The hub's ledger (:mod:`kiosk.relay.ledger`) as the pages read it."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def ticket_by_phone(self, sha256_hex: str) -> PhoneTicket | None:
        """The ticket whose phone token hashes to ``sha256_hex``, or None."""
        found = await self.ledger.ticket_by_phone(sha256_hex)
        return None if found is None else phone_ticket(found)

    async def day_tickets(self, branch: str, day: str) -> Sequence[PhoneTicket]:
        """Every ticket of ``branch``'s ``day``, each with its latest call."""
        return [phone_ticket(t) for t in await self.ledger.tickets(branch, day)]


def phone_ticket(ticket: Ticket) -> PhoneTicket:
    """A ledger's ticket (``kiosk.relay.ledger.Ticket``) as the page needs it."""
    call = ticket.call or {}
    wait = ticket.wait_min
    return PhoneTicket(
        branch=ticket.branch, day=ticket.day, ticket_id=ticket.ticket_id,
        queue_id=ticket.queue_id, queue_name=ticket.queue_name,
        lang=ticket.lang or DEFAULT_LANGUAGE, issued_at=ticket.issued_at,
        outcome=ticket.outcome, priority=ticket.priority,
        booth=call.get("booth") if call else None, called_at=call.get("at") if call else None,
        wait_min=wait, device=ticket.device, variant=ticket.variant, second=ticket.second)


def _epoch(iso: str | None) -> float:
    if not iso:
        return 0.0
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0


@dataclass
class DayIndex:
    """One branch-day's tickets, indexed for the pages: per queue, the waiting tickets'
    places (sorted) and the median interval between calls."""

    waiting: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    interval_s: dict[str, float] = field(default_factory=dict)
    tickets: dict[tuple[str, str, str], PhoneTicket] = field(default_factory=dict)
    """By :attr:`PhoneTicket.key`."""

    @classmethod
    def of(cls, tickets: Sequence[PhoneTicket]) -> DayIndex:
        """Index ``tickets``."""
        index = cls()
        calls: dict[str, list[float]] = {}
        for ticket in tickets:
            index.tickets[ticket.key] = ticket
            if ticket.second:  # a number reported twice (a fault) waits and is called once
                continue
            if ticket.booth is None:
                if ticket.outcome in ("issued", "uncertain"):
                    index.waiting.setdefault(ticket.queue_key, []).append(ticket.order())
            elif ticket.called_at:
                calls.setdefault(ticket.queue_key, []).append(_epoch(ticket.called_at))
        for places in index.waiting.values():
            places.sort()
        for queue, moments in calls.items():
            if len(moments) >= MIN_CALLS_FOR_MEDIAN:
                moments.sort()
                gaps = [b - a for a, b in pairwise(moments)]
                index.interval_s[queue] = statistics.median(gaps)
        return index

    def ahead(self, ticket: PhoneTicket) -> int:
        """Tickets of ``ticket``'s queue issued before it and not called yet."""
        return bisect_left(self.waiting.get(ticket.queue_key, []), ticket.order())


def state(ticket: PhoneTicket, index: DayIndex, today: str, moment: float) -> dict[str, Any]:
    """The page's state (module docstring) of ``ticket`` at ``moment``."""
    current = index.tickets.get(ticket.key, ticket)  # the newest report and call
    called = current.booth is not None
    expired = current.day != today or (
        called and moment - _epoch(current.called_at) > KEEP_AFTER_CALL_S)
    ahead = 0 if called else index.ahead(current)
    wait: float | None = None
    if not called and not expired:
        interval = index.interval_s.get(current.queue_key)
        if interval is not None:
            wait = round(ahead * interval / 60.0, 1)
        elif current.wait_min is not None:
            gone = max(0.0, moment - _epoch(current.issued_at)) / 60.0
            wait = round(max(1.0 if ahead else 0.0, current.wait_min - gone), 1)
    return {"ticketId": current.ticket_id, "queue": {"name": current.queue_name},
            "state": "expired" if expired else "called" if called else "waiting",
            "ahead": ahead, "wait_min": wait, "booth": current.booth,
            "issuedAt": current.issued_at, "calledAt": current.called_at,
            "priority": current.priority is not None and current.priority is not False}


class RateLimiter:
    """A token bucket per address: ``rate_per_min`` requests a minute, ``burst`` at once."""

    def __init__(self, rate_per_min: float = RATE_PER_MIN, burst: float = RATE_BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_min / 60.0
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, address: str) -> float:
        """0 when ``address`` may send one more request now, else the seconds to wait."""
        moment = self.clock()
        tokens, last = self._buckets.pop(address, (self.burst, moment))
        tokens = min(self.burst, tokens + (moment - last) * self.rate)
        if len(self._buckets) >= RATE_ADDRESSES:  # forget the longest idle (insertion order)
            for old in list(self._buckets)[:RATE_ADDRESSES // 10]:
                del self._buckets[old]
        if tokens >= 1.0:
            self._buckets[address] = (tokens - 1.0, moment)
            return 0.0
        self._buckets[address] = (tokens, moment)
        return (1.0 - tokens) / self.rate


def _words(lang: str) -> dict[str, str]:
    """The page's texts in ``lang``."""
    return {
        "title": t("Your turn", lang), "ticket": t("Your ticket", lang),
        "queue": t("Service", lang), "issued": t("Issued at", lang),
        "wait": t("Estimated wait", lang), "ahead_none": t("You are next", lang),
        "ahead_one": t("1 person ahead of you", lang),
        "ahead_many": t("{n} people ahead of you", lang, n="{n}"),
        "called": t("It's your turn", lang), "booth": t("Please go to", lang),
        "sound_on": t("Turn on sound", lang), "sound_is_on": t("Sound is on", lang),
        "sound_hint": t("We will play a chime when it is your turn.", lang),
        "live": t("This page updates by itself. You can leave it open.", lang),
        "offline": t("Reconnecting…", lang), "priority": t("Priority service", lang),
        "expired_title": t("This ticket has ended", lang),
        "expired_text": t("If you still need help, please take a new ticket at the kiosk. "
                          "Thank you for your visit.", lang),
        "unknown_title": t("We could not find this ticket", lang),
        "unknown_text": t("Please check the link on your ticket, or ask our staff.", lang),
        "busy_title": t("Too many requests", lang),
        "busy_text": t("Please wait a moment and try again.", lang),
        "wait_unknown": "—", "wait_lt1": t("< 1 min", lang),
        "wait_min": t("~{n} min", lang, n="{n}"), "wait_h": t("~{h} h", lang, h="{h}"),
        "wait_h_min": t("~{h} h {n} min", lang, h="{h}", n="{n}"),
    }


def _lang_of(request_lang: str | None, accept: str) -> str:
    if request_lang in LANGUAGES:
        return request_lang
    for part in accept.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def _hhmm(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return ""
    return f"{moment.hour:02d}:{moment.minute:02d}"


CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; manifest-src 'none'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
           "X-Robots-Tag": "noindex, nofollow", "X-Content-Type-Options": "nosniff",
           "Content-Security-Policy": CSP, "X-Frame-Options": "DENY"}
"""Every answer on ``/t/`` carries these."""
STATIC_HEADERS = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff",
                  "Referrer-Policy": "no-referrer", "Content-Security-Policy": CSP}


class Phone:
    """The phone pages of one relay over a :class:`PhoneSource` and the relay's hub."""

    def __init__(self, source: PhoneSource, hub: Hub, today: Callable[[str], str],
                 clock: Callable[[], float] = time.time, follow: Follow | None = None,
                 proxies: Sequence[Network] = ()) -> None:
        self.source = source
        self.proxies = tuple(proxies)
        """Proxies on other machines whose ``X-Forwarded-For`` names the client."""
        self.hub = hub
        self.follow = follow
        """Tells a listener of a branch's reports and calls while a page is open
        (``Relay.follow``: on every replica)."""
        self.today = today
        self.clock = clock
        self.limiter = RateLimiter()
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(
            ["html"]), auto_reload=False, trim_blocks=True, lstrip_blocks=True)
        self.static = {name: (TEMPLATES / name).read_bytes()
                       for name in ("phone.css", "phone.js")}
        self._days: dict[tuple[str, str], tuple[float, DayIndex]] = {}
        self._dirty: set[str] = set()
        self._updating: asyncio.Task[None] | None = None
        self.open_pages = 0
        self.max_pages = MAX_PAGES
        """Open page streams at most; one more is answered 503 (the page polls instead)."""
        self._reads = asyncio.Semaphore(LEDGER_READS)
        self.lookups = 0
        """Ledger look-ups by phone hash (a test counts them: every request makes one)."""

    # ------------------------------------------------------------ data

    async def _lookup(self, token: str) -> PhoneTicket | None:
        self.lookups += 1
        hashed = digest(token)
        async with self._reads:
            return await self.source.ticket_by_phone(hashed)

    async def _index(self, branch: str, day: str) -> DayIndex:
        key = (branch, day)
        moment = time.monotonic()
        cached = self._days.get(key)
        if cached is not None and cached[0] > moment and self.hub.pages.get(branch):
            return cached[1]  # a page of the branch is open here: its changes clear it
        async with self._reads:
            index = DayIndex.of(await self.source.day_tickets(branch, day))
        # kept only while this replica follows the branch (a page of it is open here: its
        # changes clear the index), and not if it changed meanwhile
        if self.hub.pages.get(branch) and branch not in self._dirty:
            self._days[key] = (moment + INDEX_TTL_S, index)
            if len(self._days) > 4096:
                self._days.pop(next(iter(self._days)))
        return index

    async def state_of(self, ticket: PhoneTicket) -> dict[str, Any]:
        """The current state of ``ticket``."""
        return state(ticket, await self._index(ticket.branch, ticket.day),
                     self.today(ticket.branch), self.clock())

    def changed(self, branch: str) -> None:
        """A report or a call of ``branch`` arrived: its pages are updated soon, in a task
        of their own (never on the caller's path)."""
        for key in [k for k in self._days if k[0] == branch]:
            del self._days[key]
        if not self.hub.pages.get(branch):
            return
        self._dirty.add(branch)
        if self._updating is None or self._updating.done():
            self._updating = asyncio.get_running_loop().create_task(self._update())

    async def _update(self) -> None:
        while self._dirty:
            branch = self._dirty.pop()
            for key in [k for k in self._days if k[0] == branch]:
                del self._days[key]
            pages = list(self.hub.pages.get(branch, ()))
            try:
                for n, page in enumerate(pages, 1):
                    if not page.dropped:
                        await self._refresh(page)
                    if n % CHUNK == 0:
                        await asyncio.sleep(0)  # the screens' sends and other branches go first
            except StoreError as exc:
                log.warning("relay: phone pages of branch %s not updated: %s", branch, exc)

    async def _refresh(self, page: Page) -> None:
        ticket: PhoneTicket = page.subject
        current = await self.state_of(ticket)
        frame = _frame(current)
        if frame != page.last:
            page.last, page.ended = frame, current["state"] == "expired"
            if not page.offer(frame):
                log.info("relay: a phone page of branch %s read too slowly: dropped (it "
                         "reconnects)", ticket.branch)

    # ------------------------------------------------------------ HTTP

    def routes(self) -> list[Route]:
        """The page's routes."""
        return [Route("/t/{token}", self.page, methods=["GET"]),
                Route("/t/{token}/state", self.state_json, methods=["GET"]),
                Route("/t/{token}/events", _Endpoint(self.events), methods=["GET"]),
                Route("/phone/{name}", self.asset, methods=["GET"])]

    def _limited(self, request: Request) -> Response | None:
        wait = self.limiter.allow(client_address(request.scope, self.proxies))
        if not wait:
            return None
        lang = _lang_of(None, request.headers.get("accept-language", ""))
        words = _words(lang)
        body = self.env.get_template("message.html").render(
            lang=lang, words=words, title=words["busy_title"], text=words["busy_text"])
        return Response(body, status_code=429, media_type="text/html",
                        headers={**HEADERS, "Retry-After": str(max(1, round(wait)))})

    async def _find(self, request: Request) -> tuple[PhoneTicket | None, Response | None]:
        """The request's ticket, or the answer refusing it (429, 404, 503)."""
        limited = self._limited(request)
        if limited is not None:
            return None, limited
        token = str(request.path_params["token"])[:200]
        try:
            ticket = await self._lookup(token)  # every token, well-formed or not: one path
        except StoreError as exc:
            log.warning("relay: a phone page could not read the ledger: %s", exc)
            return None, JSONResponse({"error": "store"}, status_code=503,
                                      headers={**HEADERS, "Retry-After": "5"})
        if ticket is None:
            return None, None
        return ticket, None

    def _message(self, request: Request, status: int, lang: str | None, which: str) -> Response:
        lang = _lang_of(lang, request.headers.get("accept-language", ""))
        words = _words(lang)
        body = self.env.get_template("message.html").render(
            lang=lang, words=words, title=words[which + "_title"], text=words[which + "_text"])
        return Response(body, status_code=status, media_type="text/html", headers=HEADERS)

    async def page(self, request: Request) -> Response:
        """``GET /t/{token}``: the page."""
        ticket, refused = await self._find(request)
        if refused is not None:
            return refused
        if ticket is None:
            return self._message(request, 404, None, "unknown")
        try:
            current = await self.state_of(ticket)
        except StoreError:
            return JSONResponse({"error": "store"}, status_code=503,
                                headers={**HEADERS, "Retry-After": "5"})
        lang = ticket.lang if ticket.lang in LANGUAGES else DEFAULT_LANGUAGE
        if current["state"] == "expired":
            return self._message(request, 410, lang, "expired")
        words = _words(lang)
        body = self.env.get_template("phone.html").render(
            lang=lang, words=words, s=current, issued=_hhmm(ticket.issued_at),
            wait=_wait_text(current["wait_min"], lang, words),
            ahead=_ahead_text(current["ahead"], words), poll_s=POLL_S)
        return Response(body, media_type="text/html", headers=HEADERS)

    async def state_json(self, request: Request) -> Response:
        """``GET /t/{token}/state``: the state as JSON (410 once expired, 404 unknown)."""
        ticket, refused = await self._find(request)
        if refused is not None:
            return refused
        if ticket is None:
            return JSONResponse({"error": "unknown"}, status_code=404, headers=HEADERS)
        current = await self.state_of(ticket)
        return JSONResponse(current, status_code=410 if current["state"] == "expired" else 200,
                            headers=HEADERS)

    async def asset(self, request: Request) -> Response:
        """``GET /phone/phone.css`` and ``/phone/phone.js``."""
        name = request.path_params["name"]
        body = self.static.get(name)
        if body is None:
            return Response(status_code=404, headers=HEADERS)
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return Response(body, media_type=f"{kind}; charset=utf-8", headers=STATIC_HEADERS)

    async def events(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /t/{token}/events``: the page's stream."""
        request = Request(scope, receive)
        ticket, refused = await self._find(request)
        if refused is None and ticket is None:
            refused = JSONResponse({"error": "unknown"}, status_code=404, headers=HEADERS)
        if refused is None and self.open_pages >= self.max_pages:
            refused = JSONResponse({"error": "busy"}, status_code=503,
                                   headers={**HEADERS, "Retry-After": "10"})
        if refused is not None or ticket is None:
            if refused is not None:
                await refused(scope, receive, send)
            return
        page = Page(ticket.branch, PAGE_BUFFER, ticket)
        self.hub.add_page(page)
        self.open_pages += 1
        watcher = asyncio.create_task(_watch_leaving(receive, page))
        following = contextlib.AsyncExitStack()
        try:
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    if self.follow is not None:
                        await following.enter_async_context(self.follow(
                            ticket.branch, lambda change: self.changed(ticket.branch)))
                    current = await self.state_of(ticket)
                    page.last, page.ended = _frame(current), current["state"] == "expired"
            except (StoreError, TimeoutError) as exc:
                log.warning("relay: a phone page's stream cannot start: %s", exc or "timeout")
                await JSONResponse({"error": "store"}, status_code=503, headers={
                    **HEADERS, "Retry-After": "5"})(scope, receive, send)
                return
            with contextlib.suppress(TimeoutError, OSError):
                await self._stream(send, page)
        finally:
            watcher.cancel()
            self.open_pages -= 1
            self.hub.remove_page(page)
            await following.aclose()

    async def _stream(self, send: Send, page: Page) -> None:
        headers = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
        headers += [(b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"x-accel-buffering", b"no")]
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "more_body": True,
                        "body": b"retry: 2000\n\n" + page.last})
        if page.ended:
            return
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    frame = await page.queue.get()
            except TimeoutError:
                await self._refresh(page)  # the day may have ended, the call grown old
                frame = b": keep-alive\n\n" if page.queue.empty() else page.queue.get_nowait()
            while frame is not None and not page.queue.empty():
                frame = page.queue.get_nowait()  # each frame is the whole state: the latest
            if frame is None:
                break
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            if page.ended:
                break
        if page.reason != GONE:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await send({"type": "http.response.body", "body": b"", "more_body": False})


def _frame(current: dict[str, Any]) -> bytes:
    data = json.dumps(current, ensure_ascii=False, separators=(",", ":"))
    return f"event: state\ndata: {data}\n\n".encode()


def _wait_text(minutes: float | None, lang: str, words: dict[str, str]) -> str:
    if minutes is None:
        return words["wait_unknown"]
    return format_wait(minutes, lang) or words["wait_unknown"]


def _ahead_text(n: int, words: dict[str, str]) -> str:
    if n <= 0:
        return words["ahead_none"]
    if n == 1:
        return words["ahead_one"]
    return words["ahead_many"].replace("{n}", str(n))


async def _watch_leaving(receive: Receive, page: Page) -> None:
    with contextlib.suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass
    page.drop(GONE)


class _Endpoint:
    """A plain ASGI endpoint (Starlette wraps bare methods as request handlers)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
