"""The relay's HTTP routes (Starlette).

::

    POST /webhooks/videsk                  the provider's QMS webhook (kiosk.relay.contract)
    GET  /v1/branches/{branch}/calls       Server-Sent Events for a branch's screens
    POST /v1/branches/{branch}/leases      a block of ticket numbers (kiosk.relay.ledger)
    POST /v1/branches/{branch}/tickets     a device's report of a ticket it issued
    GET  /v1/branches/{branch}/tickets     the branch's day: every device's tickets, called
    GET  /healthz                          200 {"status": "ok"} | 503 {"status": "unavailable"}
    GET  /metrics                          Prometheus text format (bearer token, or loopback)
    PUT  /v1/devices/{id}/state            a device's heartbeat (kiosk.relay.fleet)
    GET  /v1/fleet                         every device's state (the fleet token)
    /fleet                                 the operations team's page (kiosk.relay.fleet_page)
    GET  /t/{token}, /t/{token}/state, /t/{token}/events   the phone ticket (kiosk.relay.phone)

Webhook answers follow the provider's retry rules: 201 when the call was stored (only
after the store committed it; header ``X-Relay-Event-Id``, no body), 200 for a repeated
delivery of a stored call (header ``X-Relay-Duplicate: true``, no body), 401 for a
bad or missing signature or JWT (a JWT not bound to the call, outside its time window, or
used before), 400 for a body that is not a call, 413 above 64 KB, 503 when storing
failed (the provider retries later). Who may send calls: a bound, fresh JWT
(:func:`kiosk.relay.contract.verify_jwt`), or, unless ``require_jwt``, an HMAC signature;
unsigned calls only with ``allow_unsigned`` and from this machine (a loopback peer whose
request carries no proxy's forwarding header). Refusals are logged at most once a minute
per reason (:class:`~kiosk.relay.ratelog.RateLimitedLog`) and all counted; outside data is
quoted (``%r``) in every log line; secrets, signatures and tokens never reach one.

The stream: ``Authorization: Bearer <device token>``, any device of the branch (401
without a known token, 403 for another branch's: :mod:`kiosk.relay.devices`), then one
``event: call`` per call with an increasing ``id:`` and
``data: {"ticketId", "poc": {"label"}, "queue": {"name"}, "at", "lang"?, "recall"?}``
(``recall: true`` when the ticket was called before that day; ``at`` in the branch's time
zone, whose midnight starts its day). Ids are decimal, increasing per branch, and never go
back (see :mod:`kiosk.relay.store`). With
``Last-Event-ID`` it first replays the day's calls after that id; without it, the day's
last ``history`` calls. A ``: keep-alive`` comment every ``keepalive_s`` on a quiet stream.
One device holds at most ``max_streams_per_token`` streams at once (per relay
process): one more is answered 429 with ``Retry-After``. A stream starts with reading the
store (the branch's backlog): a store that does not answer within ``STORE_READ_TIMEOUT_S``
gets the stream a 503 with ``Retry-After``, and its place is free again. Each send to a
screen must complete within ``send_timeout_s``, else the stream is reset; a send only waits
once the socket's send buffer, the screen's receive window and uvicorn's buffer are full, so
a screen that stops reading is reset only after that backlog has filled (at keep-alive rate
that can take days, while it holds one of its token's places).

Nobody needs a login for ``/healthz``, so it says only whether the relay can store calls:
no branch, no count. ``/metrics`` names branches and counts screens: with
``relay.metrics_token_file`` it demands ``Authorization: Bearer <that token>`` (compared in
constant time, never logged); without one it answers only a loopback peer whose request
carries no proxy's forwarding header (through a proxy the peer is always loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from kiosk.errors import StoreError
from kiosk.netloc import is_loopback
from kiosk.relay import contract
from kiosk.relay.changes import Change, Changes, Listener
from kiosk.relay.config import MAX_BODY, RelaySettings, check_keys
from kiosk.relay.devices import Action, Refused, access_of
from kiosk.relay.fleet import Fleet, FleetApi, exposition, read_limited
from kiosk.relay.fleet_page import FleetPage
from kiosk.relay.fleet_store import open_states
from kiosk.relay.hub import GONE, SLOW, Hub, Screen
from kiosk.relay.ledger import (
    CONFLICT,
    KNOWN,
    NEW,
    OUTCOMES,
    SEED_RETRY_AFTER_S,
    Ledger,
    NotSeeded,
    Report,
    open_ledger,
)
from kiosk.relay.phone import LedgerSource, Phone, PhoneSource
from kiosk.relay.quota import MAX_COUNT, NumberQuota, OverBudget, ReportQuota
from kiosk.relay.ratelog import RateLimitedLog
from kiosk.relay.store import RECALL_END, Call, Event, Replayed, SqliteStore, Store, now

log = logging.getLogger("kiosk.relay")

WEBHOOK_PATH = "/webhooks/videsk"
STREAM_PATH = "/v1/branches/{branch}/calls"
LEASES_PATH = "/v1/branches/{branch}/leases"
TICKETS_PATH = "/v1/branches/{branch}/tickets"
REPORT_PAST_DAYS = 13
"""A report's ``issuedAt`` at most this many days back (the ledger keeps 14)."""
REPORT_FUTURE_S = 36 * 3600
"""A report's ``issuedAt`` at most this far ahead of the hub's clock (400 beyond)."""
PHONE_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
"""What a phone-ticket token looks like (``secrets.token_urlsafe``: 128 bits and more)."""
MAX_WAIT_MIN = 24 * 60
"""A report's ``wait_min`` at most (minutes)."""
MAX_ISSUED_AT = 40
"""A report's ``issuedAt`` at most this many characters (kept as sent)."""
_CONTROLS = "\x00-\x1f\x7f-\x9f\u2028\u2029"
"""The control characters (C0, C1) and the line and paragraph separators, as a regular
expression's character range: no text a device reports holds one (no-break spaces and the
like are fine)."""
CONTROL = re.compile(f"[{_CONTROLS}]")
"""One of :data:`_CONTROLS`."""
TICKET_ID = re.compile(f"[^{_CONTROLS}]{{1,50}}")
"""A ticket's number as the API takes it (1 to 50 characters), none of :data:`_CONTROLS`."""
MAX_HUB_BODY = 8 * 1024
"""Largest body of a device's request to the hub (a lease, a ticket report): 413 above."""
SEQUENCE = re.compile(r"[A-Za-z0-9:_-]{1,40}")
"""A lease's counter: the prefix (``A``) or ``priority:A``."""
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
REPLAY_MAX = 1000
"""At most this many missed calls are replayed to a reconnecting screen."""
STREAM_SNDBUF = 64 * 1024
"""A stream socket's kernel send buffer (SSE events are small): without it Linux grows it
to megabytes, all held by a screen that stopped reading until ``send_timeout_s``."""
_LINGER_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on, 0 s: closing sends a reset and frees the socket's buffers at once."""
RETRY_AFTER_S = 30
"""``Retry-After`` of a stream refused for its token's cap (429)."""
STORE_READ_TIMEOUT_S = 5.0
"""A stream's start (watching its branch, reading its backlog) waits this long at most for
the store; then it is answered 503 and gives its place under the token's cap back."""
STORE_RETRY_AFTER_S = 5
"""``Retry-After`` of a stream whose store did not answer (503)."""
METRICS_REFUSAL_LOG_S = 60.0
"""At most one log line per this many seconds for refused ``/metrics`` requests (anyone
can send them)."""
REFUSAL_LOG_S = 60.0
"""At most one log line per this many seconds per kind of refused webhook (and per
device over its number budget)."""
_STREAM_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
                   (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
FORWARDED = (b"forwarded", b"x-forwarded-for", b"x-real-ip")
"""Headers a reverse proxy adds: such a request came from another machine."""


class Metrics:
    """The relay's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter("relay_webhooks", "Webhooks received, by result and reason",
                                ["result", "reason"], registry=self.registry)
        self.duplicates = Counter("relay_duplicates", "Repeated deliveries of a stored call",
                                  registry=self.registry)
        self.screens = Gauge("relay_screens", "Screens connected, by branch", ["branch"],
                             registry=self.registry)
        self.latency = Histogram(
            "relay_call_latency_seconds", "From a webhook's arrival to its event leaving for "
            "a screen", registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0))
        self.slow_dropped = Counter("relay_screens_dropped", "Screens disconnected for "
                                    "falling too far behind", registry=self.registry)
        self.stalled = Counter("relay_screens_stalled", "Screens disconnected because a send "
                               "to them waited send_timeout_s", registry=self.registry)
        self.streams_refused = Counter("relay_streams_refused", "Streams refused (429): their "
                                       "device held max_streams_per_token already",
                                       registry=self.registry)
        self.recalls = Counter("relay_recalls", "Calls of a ticket called before that day "
                               "(a new callId: shown and announced again)",
                               registry=self.registry)
        self.leases = Counter("relay_leases", "Lease requests by result (leased, day: 409, "
                              "refused: 4xx, limited: 429, unavailable: 503)", ["result"],
                              registry=self.registry)
        self.reports = Counter("relay_ticket_reports", "Ticket reports by result (new, "
                               "known, replaced, conflict, refused: 4xx, limited: 429, "
                               "unavailable: 503)", ["result"],
                               registry=self.registry)
        self.epochs = Counter("relay_store_epochs", "New store epochs seen while running "
                              "(the store went back: Redis restarted or lost its data)",
                              registry=self.registry)


def open_store(settings: RelaySettings) -> Store:
    """The store the settings name."""
    if settings.store == "sqlite":
        return SqliteStore(settings.sqlite_path, settings.sqlite_sync)
    from kiosk.relay.redis_store import RedisStore
    return RedisStore(settings.store)  # its days: Relay.today (set by Relay)


class Relay:
    """The routes over one store and hub."""

    def __init__(self, settings: RelaySettings, store: Store | None = None,
                 ledger: Ledger | None = None) -> None:
        check_keys(settings, "(relay settings)")  # never a relay that takes unsigned calls
        self.settings = settings
        self.store = store if store is not None else open_store(settings)
        self.ledger = ledger if ledger is not None else open_ledger(settings.store,
                                                                    settings.sqlite_path)
        """The branch's numbers (and, kiosk.relay.ledger, its tickets)."""
        self.changes = Changes()
        """Who follows a branch's day (:meth:`follow`)."""
        self.ledger.on_report = lambda branch, ticket: self.changes.publish(
            Change(branch, "report", ticket))
        self.metrics = Metrics()
        self.access = access_of(settings.devices, settings.displays, settings.fleet_tokens)
        """Who may do what: the devices' and the fleet's tokens (kiosk.relay.devices)."""
        self.fleet = Fleet(self.access.by_id.values(), settings.heartbeat_s,
                           open_states(settings.store, settings.sqlite_path))
        """The devices' heartbeats and states (:mod:`kiosk.relay.fleet`)."""
        self.fleet_api = FleetApi(self.fleet, self.access, now)
        self.fleet_page = FleetPage(self.fleet, self.access, settings.fleet_tokens, now,
                                    settings.trusted_proxies)
        self.hub = Hub(on_change=lambda b, n: self.metrics.screens.labels(b).set(n))
        self.zone = ZoneInfo(settings.timezone)
        self._zones = {b: ZoneInfo(z) for b, z in settings.zones.items()}
        self._seconds: dict[ZoneInfo, tuple[int, str, str]] = {}
        """Each zone's last second, as :meth:`_local` gave it."""
        self._accepted = self.metrics.webhooks.labels("accepted", "stored")
        self.refusals = RateLimitedLog(log, REFUSAL_LOG_S, counter=self.metrics.webhooks,
                                       labels=("rejected",))
        """Webhook refusals: one log line a minute per reason, every one counted."""
        # the Redis store says when its ids went back, and follows each branch's day
        if hasattr(self.store, "on_epoch") and hasattr(self.store, "today"):
            self.store.on_epoch = self._epoch_changed
            self.store.today = self.today
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop serving the routes (set at start-up; tests run coroutines on it)."""
        self._streams: dict[str, int] = {}
        """Open streams by device id (``max_streams_per_token`` caps them)."""
        self._refusal_logged: dict[str, float] = {}
        """When a device's next refusal may be logged (one line per ``RETRY_AFTER_S`` for a
        stream, per ``REFUSAL_LOG_S`` for a lease over its budget)."""
        self.quota = NumberQuota(settings.max_numbers_per_hour)
        """Numbers each device may still lease (``max_numbers_per_hour``)."""
        self.report_quota = ReportQuota(settings.max_reports_per_hour)
        """Reports each device may still send (``max_reports_per_hour``)."""
        self._metrics_refusal_logged = 0.0
        """When the next refused ``/metrics`` request may be logged."""
        self._metrics_refused_quietly = 0
        """Refused ``/metrics`` requests not logged since the last line."""
        self.transport_of: Callable[[Scope], asyncio.Transport | None] = lambda scope: None
        """The connection serving ``scope``, set by :mod:`kiosk.relay.server` (ASGI has no
        such call): a stream bounds its socket's send buffer, and a stalled one is reset
        (a close would wait for a buffer a screen that stopped reading never empties)."""

    def zone_of(self, branch: str) -> ZoneInfo:
        """The time zone whose midnight starts ``branch``'s day."""
        return self._zones.get(branch, self.zone)

    def _local(self, branch: str, moment: float) -> tuple[str, str]:
        """``moment`` in ``branch``'s zone: the time (ISO 8601, to the second) and the day
        (``YYYY-MM-DD``). A zone's last second is remembered: under load most calls
        arrive in the same second as the one before."""
        second = int(moment)
        zone = self.zone_of(branch)
        last = self._seconds.get(zone)
        if last is None or last[0] != second:
            at = datetime.fromtimestamp(second, zone)
            last = self._seconds[zone] = (second, at.isoformat(timespec="seconds"),
                                          at.date().isoformat())
        return last[1], last[2]

    def today(self, branch: str) -> str:
        """``branch``'s current day (its own zone): the unit of replay and of re-calls."""
        return self._local(branch, now())[1]

    def publish(self, branch: str, events: list[Event]) -> None:
        """The store's new calls: to the branch's screens, and to who follows its day."""
        self.hub.publish(branch, events)
        if self.changes.followed(branch):
            for ev in events:
                try:
                    ticket = str(json.loads(ev.data)["ticketId"])
                except (ValueError, KeyError, TypeError):
                    continue
                self.changes.publish(Change(branch, "call", ticket))

    @contextlib.asynccontextmanager
    async def follow(self, branch: str, listener: Listener) -> AsyncIterator[None]:
        """Tell ``listener`` of ``branch``'s reports and calls while inside (on every
        replica: the branch's calls are read from the store meanwhile);
        :class:`StoreError` when the store cannot watch the branch."""
        stop = self.changes.subscribe(branch, listener)
        try:
            await self.store.watch(branch)
            yield
        finally:
            stop()
            if not self.changes.followed(branch) and not self.hub.screens.get(branch):
                with contextlib.suppress(Exception):
                    await self.store.unwatch(branch)

    def _epoch_changed(self, old: int, new: int) -> None:
        self.metrics.epochs.inc()
        log.warning("relay: the store went back (Redis restarted or lost its data): new "
                    "epoch %d (was %d); ids continue above every earlier one, so screens "
                    "and replicas resume with no reset", new, old)

    # ---------------------------------------------------------------- webhook

    def _reject(self, status: int, reason: str, detail: str,
                call: contract.Webhook | None = None) -> tuple[int, bytes | int]:
        """Refuse a webhook: counted, logged at most once a minute per reason. ``detail``
        is our own words (it is also the answer's); the call's fields are quoted."""
        if call is None:
            self.refusals.warning(reason, "relay: webhook refused (%d %s): %s", status,
                                  reason, detail)
        else:
            self.refusals.warning(reason, "relay: webhook refused (%d %s): %s (branch %r, "
                                  "ticket %r, call %r)", status, reason, detail,
                                  call.branch.id, call.ticketId, call.callId)
        return status, json.dumps({"error": reason, "detail": detail}).encode()

    def _authenticate(self, call: contract.Webhook, body: bytes, header: str | None,
                      token: str | None, raw_ok: bool, local: bool, received: float
                      ) -> contract.JwtAccepted | tuple[int, bytes | int] | None:
        """Who sent ``call``: a JWT's replay key, None (a valid HMAC, or an unsigned call
        allowed here), or the refusal."""
        s = self.settings
        if header is not None and s.secrets and not (
                raw_ok or contract.fields_signed(header, call, s.secrets)):
            return self._reject(401, "bad_signature", "signature not valid", call)
        if token is not None:
            try:
                return contract.verify_jwt(token, call, secrets=s.secrets, keys=s.jwt_keys,
                                           now=received, window_s=s.jwt_window_s,
                                           max_lifetime_s=s.jwt_max_lifetime_s)
            except contract.JwtRefused as exc:
                return self._reject(401, exc.reason, str(exc), call)
        if header is None and s.allow_unsigned:
            if local:
                return None
            return self._reject(401, "missing_signature", "unsigned calls are taken only "
                                "from this machine (relay.allow_unsigned), not through a "
                                "proxy or from another machine", call)
        if s.require_jwt:
            return self._reject(401, "missing_jwt", "a bearer JWT is required "
                                "(relay.require_jwt)", call)
        if header is None:
            return self._reject(401, "missing_signature", "no X-Kiosk-Signature and no "
                                "bearer JWT", call)
        if not s.secrets:
            return self._reject(401, "missing_signature", "an X-Kiosk-Signature, but no "
                                "webhook secret here to check it: send the JWT", call)
        return None

    async def webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /webhooks/videsk`` as a plain ASGI endpoint (the hot path: no Request
        object, the body read at most to :data:`MAX_BODY`)."""
        received = now()
        headers: dict[bytes, bytes] = dict(scope["headers"])
        client: tuple[str, int] | None = scope.get("client")
        local = self.settings.allow_unsigned and client is not None and not any(
            name in FORWARDED for name in headers) and is_loopback(client[0])
        length = headers.get(b"content-length", b"")
        body: bytes | None = None
        if not (length.isdigit() and int(length) > MAX_BODY):
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > MAX_BODY:
                    break
                chunks.append(chunk)
                if not message.get("more_body", False):
                    body = b"".join(chunks)
                    break
        if body is None:
            status, payload = self._reject(413, "too_large", f"body over {MAX_BODY} bytes")
        else:
            status, payload = await self._webhook(
                body, headers.get(b"x-kiosk-signature", b"").decode("latin-1") or None,
                headers.get(b"authorization", b"").decode("latin-1"), received, local)
        if isinstance(payload, int):  # stored (201) or a duplicate (200): no body, so the
            # whole answer leaves in one write (its meaning is the status; the id a header)
            answer = [(b"content-length", b"0")]
            if payload:
                answer.append((b"x-relay-event-id", b"%d" % payload))
            else:
                answer.append((b"x-relay-duplicate", b"true"))
            await send({"type": "http.response.start", "status": status, "headers": answer})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"%d" % len(payload))]})
        await send({"type": "http.response.body", "body": payload})

    async def _webhook(self, body: bytes, header: str | None, authorization: str,
                       received: float, local: bool = False) -> tuple[int, bytes | int]:
        """The status and a JSON body, or for a stored call its event id (0: a duplicate)."""
        secrets = self.settings.secrets
        token = contract.bearer(authorization) if authorization else None
        raw_ok = bool(secrets) and contract.body_signed(header, body, secrets)
        try:
            call = contract.parse(body)
        except contract.Malformed as exc:
            unsigned_ok = self.settings.allow_unsigned and local and not (header or token)
            if not (raw_ok or unsigned_ok):  # unauthenticated: say nothing about the body
                return self._reject(401, "missing_signature" if not (header or token)
                                    else "bad_signature", "signature not valid (or the body "
                                    "is not a call: it is not read unsigned)")
            return self._reject(400, "malformed", str(exc))
        auth = self._authenticate(call, body, header, token, raw_ok, local, received)
        if isinstance(auth, tuple):
            return auth
        at, day = self._local(call.branch.id, received)
        data: dict[str, object] = {"ticketId": call.ticketId, "poc": {"label": call.poc.label},
                                   "queue": {"name": call.queue.name}, "at": at}
        lang = call.lang()
        if lang:
            data["lang"] = lang
        priority = call.priority()
        if priority is not None:  # a priority ticket's call is marked on the screens
            data["priority"] = priority
        stored = Call(branch=call.branch.id, day=day, call_id=call.callId,
                      ticket_id=call.ticketId, data=data, received=received,
                      poc=call.poc.label, replay_key=auth.replay_key if auth else "",
                      replay_ttl_s=auth.replay_ttl_s if auth else 0)
        try:
            event = await self.store.add(stored)
        except Replayed:
            return self._reject(401, "replayed_jwt", "this JWT was used before", call)
        except StoreError as exc:
            self.metrics.webhooks.labels("failed", "store").inc()
            log.error("relay: call %r %r not stored: %s", call.branch.id, call.ticketId, exc)
            return 503, b'{"error": "store", "detail": "not stored; retry later"}'
        if event is None:
            self.metrics.webhooks.labels("duplicate", "duplicate").inc()
            self.metrics.duplicates.inc()
            log.info("relay: repeated delivery of %r %r (call %r): one call",
                     call.branch.id, call.ticketId, call.callId)
            return 200, 0
        self._accepted.inc()
        recall = event.data.endswith(RECALL_END)
        if recall:
            self.metrics.recalls.inc()
        if log.isEnabledFor(logging.INFO):
            log.info("relay: call %r -> %r (branch %r, event %d%s)", call.ticketId,
                     call.poc.label, call.branch.id, event.id, ", a re-call" if recall else "")
        return 201, event.id

    # ---------------------------------------------------------------- screens

    async def calls(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v1/branches/{branch}/calls`` as a plain ASGI endpoint: it owns the
        stream's whole life (its place under the token's cap, the send deadline, the
        screen leaving). Any device of the branch may read its calls."""
        branch: str = scope["path_params"]["branch"]
        headers: dict[bytes, bytes] = dict(scope["headers"])
        try:
            device = self.access.device(headers.get(b"authorization"), Action.CALLS,
                                        branch=branch)
        except Refused as exc:
            await refusal(exc)(scope, receive, send)
            return
        token = device.id  # the cap is per device (a rotation's two tokens share it)
        held = self._streams.get(token, 0)
        cap = self.settings.max_streams_per_token
        if held >= cap:
            self.metrics.streams_refused.inc()
            if time.monotonic() >= self._refusal_logged.get(token, 0.0):  # no log flood
                self._refusal_logged[token] = time.monotonic() + RETRY_AFTER_S
                log.warning("relay: device %s of branch %s already holds %d streams "
                            "(relay.max_streams_per_token): more refused (429)", token,
                            branch, held)
            await JSONResponse({"error": "too many streams for this device",
                                "detail": f"at most {cap} at once"}, status_code=429,
                               headers={"Retry-After": str(RETRY_AFTER_S)})(
                                   scope, receive, send)
            return
        self._streams[token] = held + 1  # no await since the check: the cap holds
        try:
            await self._calls(scope, receive, send, branch, headers)
        finally:
            left = self._streams[token] - 1
            if left:
                self._streams[token] = left
            else:
                del self._streams[token]

    async def _calls(self, scope: Scope, receive: Receive, send: Send, branch: str,
                     headers: dict[bytes, bytes]) -> None:
        last: int | None = None
        raw = headers.get(b"last-event-id", b"").strip()
        if raw.isdigit() and len(raw) <= 18:  # bytes: ASCII digits only; not > SQLite's int
            last = int(raw)
        transport = self.transport_of(scope)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:  # else the kernel lets a stalled stream hold megabytes
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
        screen = Screen(branch, self.settings.client_buffer)
        self.hub.add(screen)
        try:
            try:
                async with asyncio.timeout(STORE_READ_TIMEOUT_S):  # the slot is held meanwhile
                    await self.store.watch(branch)
                    backlog = await self.store.since(branch, self.today(branch), last,
                                                     REPLAY_MAX if last is not None
                                                     else self.settings.history)
            except (StoreError, TimeoutError) as exc:
                reason = str(exc) if isinstance(exc, StoreError) else \
                    f"no answer within {STORE_READ_TIMEOUT_S:g} s"
                log.error("relay: calls of branch %s cannot be read: %s", branch, reason)
                await JSONResponse({"error": "store", "detail": "calls cannot be read now"},
                                   status_code=503,
                                   headers={"Retry-After": str(STORE_RETRY_AFTER_S)})(
                                       scope, receive, send)
                return
            watcher = asyncio.create_task(self._watch_leaving(receive, screen))
            try:
                await self._stream(scope, send, screen, backlog)
            finally:
                watcher.cancel()
        finally:
            await self._leave(screen)

    @staticmethod
    async def _watch_leaving(receive: Receive, screen: Screen) -> None:
        """End ``screen``'s stream when its client disconnects (a send to a gone client
        never fails, so nothing else would notice)."""
        while (await receive())["type"] != "http.disconnect":
            pass
        screen.drop(GONE)

    async def _leave(self, screen: Screen) -> None:
        if self.hub.remove(screen) == 0 and not self.changes.followed(screen.branch):
            with contextlib.suppress(Exception):
                await self.store.unwatch(screen.branch)

    async def _stream(self, scope: Scope, send: Send, screen: Screen,
                      backlog: list[Event]) -> None:
        """Send the stream; a send that does not complete within ``send_timeout_s`` resets
        the connection. A send waits only once the socket's send buffer, the screen's
        receive window and uvicorn's buffer are full, so the deadline starts then, not when
        the screen stopped reading."""
        keepalive = self.settings.keepalive_s
        deadline = self.settings.send_timeout_s
        try:
            first = b"retry: 2000\n\n"
            if backlog:
                screen.last_id = backlog[-1].id
                first += b"".join(ev.frame() for ev in backlog)
            async with asyncio.timeout(deadline):
                await send({"type": "http.response.start", "status": 200,
                            "headers": _STREAM_HEADERS})
                await send({"type": "http.response.body", "body": first, "more_body": True})
            while True:
                try:
                    async with asyncio.timeout(keepalive):  # no task per wait, unlike wait_for
                        ev = await screen.queue.get()
                except TimeoutError:
                    frame = b": keep-alive\n\n"
                else:
                    if ev is None:
                        break
                    if ev.id <= screen.last_id:
                        continue
                    screen.last_id = ev.id
                    self.metrics.latency.observe(max(0.0, now() - ev.received))
                    frame = ev.frame()
                async with asyncio.timeout(deadline):
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
            if screen.reason == SLOW:
                self.metrics.slow_dropped.inc()
            if screen.reason != GONE:
                async with asyncio.timeout(deadline):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            self.metrics.stalled.inc()
            log.warning("relay: a send to a screen of branch %s waited %g s (it stopped "
                        "reading): disconnected (it resumes from its last call)",
                        screen.branch, deadline)
            transport = self.transport_of(scope)
            if transport is not None:
                sock = transport.get_extra_info("socket")
                if sock is not None:  # a reset: a plain close would still wait to send
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                transport.abort()  # now, unsent data dropped
                await asyncio.sleep(0)  # the server sees the connection lost before we return

    # ---------------------------------------------------------------- the hub

    async def leases(self, request: Request) -> Response:
        """``POST /v1/branches/{branch}/leases``: the next block of a counter
        (docs/hub.md)."""
        branch: str = request.path_params["branch"]
        try:
            device = self.access.device(request.headers.get("authorization"), Action.LEASE,
                                        branch=branch)
            body = await read_json(request)
            sequence, day, count = _lease_request(body)
        except Refused as exc:
            self.metrics.leases.labels("refused").inc()
            return refusal(exc)
        today = self.today(branch)
        if day != today:  # a lease belongs to one day: the device's clock or day is off
            self.metrics.leases.labels("day").inc()
            log.info("relay: lease refused to %s: day %s, the branch's is %s", device.id,
                     day, today)
            return JSONResponse({"error": "day", "day": today}, status_code=409)
        try:  # a device in a loop would burn the branch's numbers for the whole day
            taken = self.quota.take(device.id, day, sequence, count)
        except OverBudget as over:
            self.metrics.leases.labels("limited").inc()
            self._warn_once_a_minute(
                "lease:" + device.id, "relay: device %s asked for %d numbers of %s, over its "
                "budget (relay.max_numbers_per_hour: %d): refused (429) for %d s",
                device.id, count, sequence, self.quota.per_hour, over.wait_s)
            return JSONResponse({"error": "rate", "detail": "too many numbers leased: a "
                                 f"device's budget is {self.quota.per_hour}, refilled at "
                                 f"{self.quota.per_hour} an hour"},
                                status_code=429, headers={"Retry-After": str(over.wait_s)})
        try:
            lease = await self.ledger.lease(branch, day, sequence, count)
        except StoreError as exc:
            self.quota.give_back(taken)
            self.metrics.leases.labels("unavailable").inc()
            log.error("relay: no lease for %s (%s %s): %s", device.id, sequence, day, exc)
            retry = SEED_RETRY_AFTER_S if isinstance(exc, NotSeeded) else STORE_RETRY_AFTER_S
            return JSONResponse({"error": "store", "detail": "no numbers now; retry later"},
                                status_code=503, headers={"Retry-After": str(retry)})
        self.metrics.leases.labels("leased").inc()
        log.info("relay: numbers %s %d-%d of %s to %s", sequence, lease.first, lease.last,
                 day, device.id)
        return JSONResponse(lease.json(), status_code=201)

    async def report(self, request: Request) -> Response:
        """``POST /v1/branches/{branch}/tickets``: a device's report of a ticket it issued
        (idempotent by branch, branch-local day and ticketId)."""
        branch: str = request.path_params["branch"]
        try:
            device = self.access.device(request.headers.get("authorization"), Action.REPORT,
                                        branch=branch)
            body = await read_json(request)
            report = self._report_of(body, branch)
            if report.device != device.id:
                raise Refused(403, "device: this token is another device's")
        except Refused as exc:
            self.metrics.reports.labels("refused").inc()
            return refusal(exc)
        try:  # a device in a loop (or a stolen token) would fill the branch's ledger
            self.report_quota.check(device.id)
        except OverBudget as over:
            self.metrics.reports.labels("limited").inc()
            self._warn_once_a_minute(
                "report:" + device.id, "relay: device %s reports tickets over its budget "
                "(relay.max_reports_per_hour: %d): refused (429) for %d s (its outbox sends "
                "them later)", device.id, self.report_quota.per_hour, over.wait_s)
            return JSONResponse({"error": "rate", "detail": "too many reports: a device's "
                                 f"budget is {self.report_quota.per_hour}, refilled at "
                                 f"{self.report_quota.per_hour} an hour"},
                                status_code=429, headers={"Retry-After": str(over.wait_s)})
        try:
            result, first = await self.ledger.report(branch, report)
        except StoreError as exc:
            self.metrics.reports.labels("unavailable").inc()
            log.error("relay: report of %r from %s not stored: %s", report.ticket_id,
                      device.id, exc)
            return JSONResponse({"error": "store", "detail": "not stored; retry later"},
                                status_code=503,
                                headers={"Retry-After": str(STORE_RETRY_AFTER_S)})
        self.metrics.reports.labels(result).inc()
        if result != KNOWN:  # what changed the ledger is charged (a replay is not)
            self.report_quota.charge(device.id)
        if result == CONFLICT:  # kept beside the first: no customer's ticket is lost
            self._warn_once_a_minute(
                "conflict:" + device.id, "relay: ticket %r of %s (branch %s) reported by %s, "
                "but %s: numbers repeated (a fault, or a stolen token), every report kept "
                "and listed as a conflict (one line a minute per device; "
                "relay_ticket_reports_total{result=\"conflict\"} counts them all)",
                report.ticket_id, report.day, branch, device.id,
                "with other data than its first report of it (queue, time, language, "
                "priority or phone token)" if first == device.id else
                f"{first} reported it first")
        return JSONResponse({"ticketId": report.ticket_id, "day": report.day,
                             "result": result},
                            status_code=201 if result in (NEW, CONFLICT) else 200)

    def _warn_once_a_minute(self, key: str, msg: str, *args: object) -> None:
        """``log.warning(msg, *args)``, at most once per :data:`REFUSAL_LOG_S` for ``key``
        (a device's refusals: a device in a loop must not flood the log)."""
        if time.monotonic() >= self._refusal_logged.get(key, 0.0):
            self._refusal_logged[key] = time.monotonic() + REFUSAL_LOG_S
            log.warning(msg, *args)

    def _report_of(self, body: dict[str, Any], branch: str) -> Report:
        """The report in ``body``; :class:`Refused` (400) naming the field."""
        ticket = body.get("ticketId")
        if not isinstance(ticket, str) or not TICKET_ID.fullmatch(ticket):
            raise Refused(400, "ticketId: the ticket's number, 1-50 characters")
        queue = body.get("queue")
        if not isinstance(queue, dict):
            raise Refused(400, "queue: {id, name}")
        qid, qname = queue.get("id"), queue.get("name")
        if not isinstance(qid, str) or not 1 <= len(qid) <= 64 or CONTROL.search(qid):
            raise Refused(400, "queue.id: the queue's id, 1-64 characters, no control "
                          "character")
        if not isinstance(qname, str) or len(qname) > 200 or CONTROL.search(qname):
            raise Refused(400, "queue.name: the queue's name, at most 200 characters, no "
                          "control character")
        lang = body.get("lang")
        if lang is not None and not (isinstance(lang, str) and re.fullmatch(r"[a-z]{2}", lang)):
            raise Refused(400, "lang: a two-letter language code, or null")
        outcome = body.get("outcome")
        if outcome not in OUTCOMES:
            raise Refused(400, "outcome: 'issued' or 'uncertain'")
        device = body.get("device")
        if not isinstance(device, str):
            raise Refused(400, "device: this device's id")
        priority = body.get("priority")
        if not (priority is None or priority is True or (
                isinstance(priority, str) and contract.REASON_RE.fullmatch(priority)
                and priority not in ("true", "false"))):  # kiosk.config.RESERVED_REASONS
            raise Refused(400, "priority: null, true or a priority reason id")
        phone = body.get("phone")
        if phone is not None and not (isinstance(phone, str) and PHONE_TOKEN.fullmatch(phone)):
            raise Refused(400, "phone: the phone-ticket token, or null")
        wait = body.get("wait_min")
        if wait is not None and not (type(wait) in (int, float)  # not a bool; NaN fails
                                     and 0 <= wait <= MAX_WAIT_MIN):  # (10**400: no float)
            raise Refused(400, f"wait_min: the wait shown in minutes (0-{MAX_WAIT_MIN}), "
                          "or null")
        issued = body.get("issuedAt")
        try:  # (fromisoformat takes any number of digits after the second: kept as sent,
            # the text is bounded; 2026-12-02T09:14:03.123456+05:45 is 32 characters)
            at = datetime.fromisoformat(issued) if isinstance(issued, str) and \
                len(issued) <= MAX_ISSUED_AT else None
        except ValueError:
            at = None
        if at is None or at.tzinfo is None or not isinstance(issued, str) or \
                issued[10:11] not in ("T", "t", " ") or CONTROL.search(issued):
            raise Refused(400, "issuedAt: ISO 8601 with its offset, "  # (3.11's parser takes
                          "e.g. 2026-12-02T09:14:03-03:00")  # any separator, a line break)
        try:
            moment = at.timestamp()
            day = at.astimezone(self.zone_of(branch)).date()
        except (OverflowError, ValueError):  # 0001-01-01T00:00+14:00 is before year 1 in UTC
            raise Refused(400, "issuedAt: a time of this era") from None
        today = date.fromisoformat(self.today(branch))
        if moment > now() + REPORT_FUTURE_S or (today - day).days > REPORT_PAST_DAYS:
            raise Refused(400, f"issuedAt: within the last {REPORT_PAST_DAYS} days and not "
                          "ahead of the hub's clock")
        return Report(ticket_id=ticket, queue_id=qid, queue_name=qname, lang=lang,
                      issued_at=issued if isinstance(issued, str) else "",
                      issued_ts=moment, day=day.isoformat(), outcome=str(outcome),
                      device=device, priority=priority,
                      phone=hashlib.sha256(phone.encode()).hexdigest() if phone else None,
                      wait_min=None if wait is None else float(wait))

    async def tickets(self, request: Request) -> Response:
        """``GET /v1/branches/{branch}/tickets?date=YYYY-MM-DD`` (default: the branch's
        today): every device's tickets that day with their calls."""
        branch: str = request.path_params["branch"]
        try:
            self.access.reader(request.headers.get("authorization"), branch)
            day = request.query_params.get("date") or self.today(branch)
            if not DAY.fullmatch(day):
                raise Refused(400, "date: YYYY-MM-DD")
            try:
                date.fromisoformat(day)
            except ValueError:
                raise Refused(400, "date: YYYY-MM-DD") from None
        except Refused as exc:
            return refusal(exc)
        try:
            found = await self.ledger.tickets(branch, day)
        except StoreError as exc:
            log.error("relay: the tickets of %s on %s cannot be read: %s", branch, day, exc)
            return JSONResponse({"error": "store", "detail": "cannot be read now"},
                                status_code=503,
                                headers={"Retry-After": str(STORE_RETRY_AFTER_S)})
        return JSONResponse({"branch": branch, "date": day,
                             "tickets": [t.json() for t in found]},
                            headers={"Cache-Control": "no-store"})

    # ---------------------------------------------------------------- health

    async def healthz(self, request: Request) -> Response:
        """Whether the store answers, and nothing more (it needs no login)."""
        if await self.store.ping():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable"}, status_code=503)

    def _metrics_allowed(self, request: Request) -> int:
        """200 when ``request`` may read the metrics, else the status refusing it."""
        tokens = self.settings.metrics_tokens
        if tokens:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            given = token.strip().encode()
            ok = False
            for known in tokens:  # all compared, constant time
                ok |= hmac.compare_digest(given, known)
            return 200 if ok and scheme.lower() == "bearer" else 401
        client = request.scope.get("client")
        peer = client[0] if client else ""
        forwarded = any(name in FORWARDED for name, _ in request.scope["headers"])
        return 200 if is_loopback(peer) and not forwarded else 403

    def _log_metrics_refusal(self) -> None:
        """One warning per :data:`METRICS_REFUSAL_LOG_S` for refused ``/metrics`` requests
        (any peer can send them: no log flood), counting those it did not log."""
        moment = time.monotonic()
        if moment < self._metrics_refusal_logged:
            self._metrics_refused_quietly += 1
            return
        more, self._metrics_refused_quietly = self._metrics_refused_quietly, 0
        self._metrics_refusal_logged = moment + METRICS_REFUSAL_LOG_S
        log.warning("relay: /metrics refused to a non-local peer (no metrics_token_file)%s",
                    f"; {more} more refused since the last such line" if more else "")

    async def metrics_page(self, request: Request) -> Response:
        status = self._metrics_allowed(request)
        if status == 401:
            return JSONResponse({"error": "a metrics token is required"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        if status == 403:
            self._log_metrics_refusal()
            return JSONResponse({"error": "metrics are served to this machine only (or set "
                                 "relay.metrics_token_file)"}, status_code=403)
        try:  # the per-device series (kiosk.relay.fleet.exposition) as of now
            await self.fleet.views(now())
        except StoreError as exc:  # none rather than stale ones: the scrape shows the gap
            self.fleet.snapshot = []
            log.error("relay: the fleet cannot be read for /metrics: %s", exc)
        fleet = await exposition(self.fleet)
        return Response(generate_latest(self.metrics.registry) + fleet,
                        media_type=CONTENT_TYPE_LATEST)


async def read_json(request: Request, limit: int = MAX_HUB_BODY) -> dict[str, Any]:
    """The request's JSON object, read to ``limit`` bytes at most; :class:`Refused` (413
    above it, 400 for anything but a JSON object)."""
    raw = await read_limited(request, limit)
    try:  # UTF-8 only (json.loads of bytes would take UTF-16 and UTF-32 too)
        body = json.loads(raw.decode("utf-8").removeprefix("\ufeff"))
        # no lone surrogate ("\ud800" is valid JSON, not text SQLite can keep: a 500)
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        raise Refused(400, "a JSON body (UTF-8 text)") from None
    if not isinstance(body, dict):
        raise Refused(400, "a JSON object")
    return body


def _lease_request(body: dict[str, Any]) -> tuple[str, str, int]:
    """``sequence``, ``day`` and ``count`` of a lease request; :class:`Refused` (400)
    naming the field."""
    sequence, day, count = body.get("sequence"), body.get("day"), body.get("count")
    if not isinstance(sequence, str) or not SEQUENCE.fullmatch(sequence):
        raise Refused(400, "sequence: 1-40 letters, digits, ':', '_' or '-' (A, priority:A)")
    if not isinstance(day, str) or not DAY.fullmatch(day):
        raise Refused(400, "day: the branch-local day, YYYY-MM-DD")
    try:
        date.fromisoformat(day)
    except ValueError:
        raise Refused(400, "day: the branch-local day, YYYY-MM-DD") from None
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise Refused(400, f"count: a whole number from 1 to {MAX_COUNT}")
    return sequence, day, count


def refusal(exc: Refused) -> JSONResponse:
    """The answer to a refused request (401 asks for a bearer token)."""
    return JSONResponse({"error": exc.error}, status_code=exc.status,
                        headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)


class _Asgi:
    """Marks a method as a plain ASGI endpoint (Starlette wraps bare functions and methods
    as request handlers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class RelayApp(Starlette):
    """The relay's Starlette app with a front door for its hot path: a webhook goes
    straight to :meth:`Relay.webhook` (a plain ASGI endpoint that answers every outcome
    itself), past the middleware and the router every other request takes. Their cost
    was a tenth of a webhook's. An error escaping it is answered 500 by uvicorn."""

    webhook: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.webhook is not None and scope["type"] == "http"
                and scope["path"] == WEBHOOK_PATH and scope["method"] == "POST"):
            scope["app"] = self
            await self.webhook(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: RelaySettings, store: Store | None = None,
               phone_source: PhoneSource | None = None) -> Starlette:
    """The relay as an ASGI app; its lifespan opens and closes the store and the ledger.
    The customers' phone pages read the ledger (or ``phone_source``)."""
    relay = Relay(settings, store)
    phone = Phone(phone_source or LedgerSource(relay.ledger), relay.hub, relay.today,
                  follow=relay.follow, proxies=settings.trusted_proxies)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        relay.loop = asyncio.get_running_loop()
        if settings.allow_unsigned:
            log.warning("relay: UNSIGNED WEBHOOKS ARE ACCEPTED from this machine "
                        "(relay.allow_unsigned: for development only; never in production)")
        await relay.store.start(relay.publish)
        await relay.fleet.states.start()
        try:
            await relay.ledger.start()
        except BaseException:
            await relay.store.close()
            raise
        try:
            yield
        finally:
            relay.hub.close_all()
            try:
                await relay.ledger.close()
            finally:
                await relay.fleet.states.close()
                await relay.store.close()

    app = RelayApp(routes=[
        Route(WEBHOOK_PATH, _Asgi(relay.webhook), methods=["POST"]),
        Route(STREAM_PATH, _Asgi(relay.calls), methods=["GET"]),
        Route(LEASES_PATH, relay.leases, methods=["POST"]),
        Route(TICKETS_PATH, relay.report, methods=["POST"]),
        Route(TICKETS_PATH, relay.tickets, methods=["GET"]),
        Route("/healthz", relay.healthz, methods=["GET"]),
        Route("/metrics", relay.metrics_page, methods=["GET"]),
        Route("/v1/devices/{id}/state", relay.fleet_api.put_state, methods=["PUT"]),
        Route("/v1/fleet", relay.fleet_api.list, methods=["GET"]),
        *relay.fleet_page.routes(),
        *phone.routes(),
    ], lifespan=lifespan)
    app.webhook = relay.webhook  # past any middleware: one added later must cover it itself
    app.state.relay = relay
    app.state.phone = phone
    return app
