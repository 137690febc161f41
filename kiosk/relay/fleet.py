"""The fleet: the devices' heartbeats in, their states out (docs/hub.md, "Heartbeats" and
"Fleet").

::

    PUT  /v1/devices/{id}/state     a device's heartbeat (its own token; 204)
    GET  /v1/fleet?branch=&state=   every configured device's state, worst first (fleet token)
    /metrics                        kiosk_device_* series, per configured device only

A heartbeat is validated strictly (:class:`Heartbeat`: an unknown value of a known key
is a 400 naming the key; keys we do not know are ignored, so a newer device can talk to
an older hub), at most :data:`MAX_STATE_BODY` bytes, and only the latest is kept
(:mod:`kiosk.relay.fleet_store`), with the time the relay received it. A device is
``offline`` once ``OFFLINE_AFTER`` heartbeat intervals pass with none, ``unknown`` until
its first. Its state (:func:`assess`): ``error`` when out of service, or its paper is out
or its cover open; ``warning`` for paper low, numbers offline, the API away (still in
service), a clock ``skewed`` (or more than :data:`CLOCK_FAULT_S` off), a journal fault,
a printer that does not answer or whose state is unknown; else ``ok``. ``reason`` says
why, in one word (:data:`REASONS`), and ``faults`` lists every fault standing.

The operations team's page is :mod:`kiosk.relay.fleet_page`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from kiosk.errors import StoreError
from kiosk.relay.devices import Access, Action, Refused
from kiosk.relay.fleet_store import States

log = logging.getLogger("kiosk.relay")

MAX_STATE_BODY = 8 * 1024
"""Largest heartbeat body (413 above)."""
OFFLINE_AFTER = 3
"""Heartbeat intervals without one after which a device is ``offline``."""
CLOCK_FAULT_S = 300.0
"""A clock further than this from the API's is a fault (the alert's "five minutes")."""

ROLES = ("kiosk", "tablet", "display")
PRINTER_STATES = ("ok", "paper_low", "paper_out", "cover_open", "offline", "unknown", "none")
OUT_REASONS = ("api", "printer", "clock", "journal", "numbers")
FAULTS = OUT_REASONS
"""``kiosk_device_fault{fault}``: the same words as the reasons for being out of service."""
STATES = ("offline", "error", "warning", "unknown", "ok")
"""The fleet's states, worst first (the order of ``GET /v1/fleet`` and the page)."""
REASONS = (*OUT_REASONS, "paper_out", "cover_open", "paper_low", "numbers_offline",
           "printer_offline", "printer_unknown", "silent", "never_heard")
"""What ``reason`` may say: why out of service (api, printer, clock, journal, numbers),
or the worst fault of a device in service, ``silent`` (offline) or ``never_heard``."""
_RANK = {s: i for i, s in enumerate(STATES)}
T = TypeVar("T")
SLICE = 100
"""Devices handled between two turns of the event loop (a few ms at most)."""


class DeviceLike(Protocol):
    """A configured device (:class:`kiosk.relay.devices.Device`)."""

    @property
    def id(self) -> str: ...
    @property
    def branch(self) -> str: ...
    @property
    def role(self) -> str: ...


_Count = Annotated[int, Field(ge=0, le=10_000_000)]
_Word = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{0,40}$")]
"""A priority reason's id (``""``: a priority ticket with no reason asked)."""


class Heartbeat(BaseModel):
    """A heartbeat's body (docs/hub.md): what the relay keeps of it, validated."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    role: Literal["kiosk", "tablet", "display"]
    """The device's role; must be the one configured for it."""
    version: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.+_-]{1,40}$")]
    """The software's version."""
    in_service: bool
    """Whether it serves customers now."""
    reason: Literal["api", "printer", "clock", "journal", "numbers"] | None = None
    """Why it is out of service (required then; null while in service)."""
    printer: Literal["ok", "paper_low", "paper_out", "cover_open", "offline", "unknown",
                     "none"]
    """The printer's state (``none``: a device without one)."""
    api: Literal["ok", "unreachable", "refused", "none"]
    """Whether the ticket API answers (``refused``: the key or the branch; ``none``: a
    device that does not use it)."""
    clock: Literal["ok", "skewed", "wrong"] | None = None
    """``skewed``: over 5 min off the API's (a warning); ``wrong``: behind the journal's day
    (out of service); left out by older devices."""
    clock_skew_s: float | None = Field(None, ge=-1e9, le=1e9, allow_inf_nan=False)
    """The device's clock less the API's, seconds (null: not known)."""
    journal: Literal["ok", "fault", "unavailable", "none"]
    """Its journal (the local record): ``fault``, records not written (a warning);
    ``unavailable``, it cannot be used (out of service); ``none``: a device without one."""
    numbers: Literal["shared", "offline", "local"]
    """Where its numbers come from (``offline``: the offline format, the hub away)."""
    tickets_today: _Count = 0
    forms_today: _Count = 0
    priority_today: dict[_Word, _Count] = Field(default_factory=dict, max_length=32)
    """Priority tickets today by reason."""
    last_ticket_at: Annotated[str, StringConstraints(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
                r"(Z|[+-][0-9]{2}:[0-9]{2})?$")] | None = None  # ASCII digits (\d: any digit)
    """When its last ticket was issued (ISO 8601)."""
    uptime_s: float = Field(0.0, ge=0, le=1e10, allow_inf_nan=False)
    """Seconds since its core started."""


class Invalid(ValueError):
    """A heartbeat refused: ``field`` names the key, the message says what was expected."""

    def __init__(self, field: str, expected: str) -> None:
        super().__init__(f"{field}: {expected}")
        self.field = field
        self.expected = expected


_EXPECTED = {"literal_error": "one of {expected}", "missing": "a value (required)",
             "bool_type": "true or false", "int_type": "a whole number",
             "float_type": "a number", "string_type": "a string",
             "string_pattern_mismatch": "a short word (letters, digits, . _ - +)",
             "greater_than_equal": "a number not below {ge}",
             "less_than_equal": "a number not above {le}",
             "too_long": "at most {max_length} entries", "dict_type": "an object",
             "finite_number": "a finite number"}


def parse_heartbeat(body: bytes, role: str) -> Heartbeat:
    """The heartbeat in ``body`` from a device of ``role``; :class:`Invalid` otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deep (8 KB of "[")
        raise Invalid("(body)", "a JSON object") from None
    if not isinstance(data, dict):
        raise Invalid("(body)", "a JSON object")
    try:
        beat = Heartbeat.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "(body)"
        ctx = {k: (v if not isinstance(v, str) else v.replace("'", ""))
               for k, v in (err.get("ctx") or {}).items()}
        expected = _EXPECTED.get(err["type"], "a valid value").format(**ctx) \
            if err["type"] in _EXPECTED else str(err["msg"])
        raise Invalid(field, expected) from None
    if beat.role != role:
        raise Invalid("role", f"{role} (the role this device is configured with)")
    if not beat.in_service and beat.reason is None:
        raise Invalid("reason", f"one of {', '.join(OUT_REASONS)} when in_service is false")
    if beat.in_service and beat.reason is not None:
        raise Invalid("reason", "null while in_service is true")
    return beat


# ------------------------------------------------------------------ assessing a device

@dataclass(frozen=True)
class DeviceView:
    """One configured device as the fleet sees it now."""

    id: str
    branch: str
    role: str
    state: str
    """:data:`STATES`."""
    reason: str | None
    """:data:`REASONS` (None when ``ok``)."""
    faults: tuple[str, ...]
    """Faults standing (:data:`FAULTS`), from the last heartbeat while it is heard."""
    last_seen: float | None
    """Relay-clock time of its last heartbeat (None: never)."""
    beat: dict[str, Any] | None
    """Its last heartbeat (validated), or None."""

    @property
    def up(self) -> bool:
        """Whether heartbeats arrive."""
        return self.state not in ("offline", "unknown")

    @property
    def printer(self) -> str:
        """The printer's state; ``unknown`` while the device is not heard."""
        if self.beat is None:
            return "none" if self.role == "display" else "unknown"
        printer = str(self.beat["printer"])
        return printer if self.up or printer == "none" else "unknown"

    def as_json(self) -> dict[str, Any]:
        """The device in ``GET /v1/fleet``."""
        b = self.beat or {}
        return {"id": self.id, "branch": self.branch, "role": self.role, "state": self.state,
                "reason": self.reason, "faults": list(self.faults),
                "printer": self.printer,
                "last_seen": None if self.last_seen is None else
                datetime.fromtimestamp(self.last_seen, UTC).isoformat(timespec="seconds"),
                "in_service": bool(b.get("in_service")) and self.up,
                "version": b.get("version"), "api": b.get("api"),
                "journal": b.get("journal"), "numbers": b.get("numbers"),
                "clock_skew_s": b.get("clock_skew_s"),
                "tickets_today": b.get("tickets_today", 0),
                "forms_today": b.get("forms_today", 0),
                "priority_today": b.get("priority_today", {}),
                "last_ticket_at": b.get("last_ticket_at"), "uptime_s": b.get("uptime_s")}


def faults_of(beat: dict[str, Any]) -> tuple[str, ...]:
    """The faults a heartbeat shows (:data:`FAULTS`)."""
    reason = beat.get("reason")
    skew = beat.get("clock_skew_s")
    standing = {
        "api": beat["api"] in ("unreachable", "refused"),
        "printer": beat["printer"] in ("paper_out", "cover_open", "offline"),
        "clock": beat.get("clock") in ("skewed", "wrong")
        or (skew is not None and abs(float(skew)) > CLOCK_FAULT_S),
        "journal": beat["journal"] in ("fault", "unavailable"),
        "numbers": beat["numbers"] == "offline"}
    return tuple(f for f in FAULTS if standing[f] or reason == f)


def assess(beat: dict[str, Any] | None, age: float, heartbeat_s: float
           ) -> tuple[str, str | None, tuple[str, ...]]:
    """A device's state, reason and faults from its last heartbeat ``age`` seconds ago."""
    if beat is None:
        return "unknown", "never_heard", ()
    if age > OFFLINE_AFTER * heartbeat_s:
        return "offline", "silent", ()
    faults = faults_of(beat)
    printer = beat["printer"]
    if not beat["in_service"]:
        return "error", str(beat["reason"]), faults
    if printer in ("paper_out", "cover_open"):
        return "error", str(printer), faults
    for present, reason in ((printer == "paper_low", "paper_low"),
                            ("numbers" in faults, "numbers_offline"),
                            ("api" in faults, "api"), ("clock" in faults, "clock"),
                            ("journal" in faults, "journal"),
                            (printer == "offline", "printer_offline"),
                            (printer == "unknown", "printer_unknown")):
        if present:
            return "warning", reason, faults
    return "ok", None, faults


def worst_first(views: Iterable[DeviceView]) -> list[DeviceView]:
    """``views`` ordered worst state first, then by branch and id."""
    return sorted(views, key=lambda v: (_RANK[v.state], v.branch, v.id))


# ------------------------------------------------------------------ the fleet

class Fleet:
    """The configured devices and their last heartbeats."""

    def __init__(self, devices: Iterable[DeviceLike], heartbeat_s: float,
                 states: States) -> None:
        self.devices = {d.id: d for d in devices}
        self.heartbeat_s = heartbeat_s
        self.states = states
        self.snapshot: list[DeviceView] = []
        """The views of the last :meth:`views` (what ``/metrics`` exports)."""
        self._lock = asyncio.Lock()
        self._views: dict[str, tuple[str | None, bool, DeviceView]] = {}
        """Device -> its last record, whether it was silent then, and its view (a record is
        parsed and assessed once per heartbeat, and once more when it goes silent)."""
        self._texts: dict[str, tuple[DeviceView, bytes]] = {}
        """Device -> its JSON in ``GET /v1/fleet`` and the view it was made from."""
        self._series: dict[str, tuple[DeviceView, tuple[str, ...]]] = {}
        """Device -> its lines of each ``/metrics`` family and the view they were made from."""
        self.labels = {d.id: f'branch="{_escape(d.branch)}",device="{_escape(d.id)}",'
                              f'role="{_escape(d.role)}"' for d in self.devices.values()}
        """Device -> its Prometheus labels, written once (configured devices only)."""

    async def heartbeat(self, device: DeviceLike, body: bytes, received: float) -> None:
        """Keep ``device``'s heartbeat ``body``; :class:`Invalid` or :class:`StoreError`."""
        beat = parse_heartbeat(body, device.role)
        record = json.dumps({"t": received, "s": beat.model_dump(mode="json")},
                            separators=(",", ":"))
        await self.states.put(device.id, record)

    async def views(self, moment: float) -> list[DeviceView]:
        """Every configured device's view at ``moment``, worst first (StoreError when the
        store cannot be read)."""
        records = await self.states.all()
        async with self._lock:  # one at a time (they share the caches)
            out: list[DeviceView] = []
            devices = list(self.devices.values())
            for i in range(0, len(devices), SLICE):
                out += self._compute(records, moment, devices[i:i + SLICE])
                await asyncio.sleep(0)  # the screens' calls go first
            self.snapshot = worst_first(out)
            return self.snapshot

    async def off_loop(self, work: Callable[[], T]) -> T:
        """Run ``work`` (made of the fleet's caches) on a thread, one at a time (the page's
        words for 2,000 devices take tens of ms the screens' calls must not wait for)."""
        async with self._lock:
            return await asyncio.to_thread(work)

    def _compute(self, records: dict[str, str], moment: float,
                 devices: list[DeviceLike]) -> list[DeviceView]:
        out: list[DeviceView] = []
        cache = self._views
        silent_after = OFFLINE_AFTER * self.heartbeat_s
        for dev in devices:
            raw = records.get(dev.id)
            known = cache.get(dev.id)
            if known is not None and known[0] == raw:  # the same heartbeat as last time
                seen = known[2].last_seen
                silent = seen is not None and moment - seen > silent_after
                if silent == known[1]:
                    out.append(known[2])
                    continue
                beat = known[2].beat
            else:
                beat, seen = self._parse(dev, raw)
            age = moment - seen if seen is not None else math.inf
            state, reason, faults = assess(beat, age, self.heartbeat_s)
            view = DeviceView(dev.id, dev.branch, dev.role, state, reason, faults, seen, beat)
            cache[dev.id] = (raw, seen is not None and age > silent_after, view)
            out.append(view)
        return out

    @staticmethod
    def _parse(dev: DeviceLike, raw: str | None) -> tuple[dict[str, Any] | None, float | None]:
        """A stored record's heartbeat and time (None, None: none, or not this device's)."""
        if raw is None:
            return None, None
        try:
            rec = json.loads(raw)
            beat, seen = dict(rec["s"]), float(rec["t"])
        except (ValueError, KeyError, TypeError):
            return None, None
        if beat.get("role") != dev.role:  # the device's role changed in the config
            return None, None
        return beat, seen

    async def fleet_json(self, views: list[DeviceView]) -> bytes:
        """``GET /v1/fleet``'s body for ``views`` (each device's JSON made once per change
        of its view; a slice at a time, the screens' calls first)."""
        texts = self._texts
        parts: list[bytes] = []
        for i, v in enumerate(views):
            cached = texts.get(v.id)
            if cached is None or cached[0] is not v:
                cached = (v, json.dumps(v.as_json(), ensure_ascii=False,
                                        separators=(",", ":")).encode())
                texts[v.id] = cached
            parts.append(cached[1])
            if i % SLICE == SLICE - 1:
                await asyncio.sleep(0)
        return b'{"heartbeat_s":%s,"devices":[%s]}' % (json.dumps(self.heartbeat_s).encode(),
                                                       b",".join(parts))

    async def select(self, moment: float, branch: str | None, states: set[str] | None
                     ) -> list[DeviceView]:
        """The views at ``moment`` of ``branch``'s devices (all: None) in ``states``."""
        return [v for v in await self.views(moment)
                if (branch is None or v.branch == branch)
                and (states is None or v.state in states)]


def parse_filter(branch: str | None, state: str | None) -> tuple[str | None, set[str] | None]:
    """``?branch=&state=`` of ``GET /v1/fleet``; :class:`Invalid` naming the parameter."""
    if branch is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", branch):
        raise Invalid("branch", "a branch id (1-64 letters, digits, '_', '.' or '-')")
    wanted: set[str] | None = None
    if state:
        wanted = {s.strip() for s in state.split(",")}
        if not wanted <= set(STATES):
            raise Invalid("state", f"one or more of {', '.join(STATES)}, comma-separated")
    return branch or None, wanted


def _escape(value: str) -> str:
    """A Prometheus label value, escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_FAMILIES = (
    ("kiosk_device_up", "1 while the device's heartbeats arrive; 0 after three missed "
     "intervals (or never heard)"),
    ("kiosk_device_in_service", "1 while the device serves customers"),
    ("kiosk_printer_state", "1 for the printer's current state (unknown while the device "
     "is not heard)"),
    ("kiosk_device_fault", "1 while a fault stands (api, printer, clock, journal, numbers)"),
    ("kiosk_device_last_seen_seconds", "Unix time of the device's last heartbeat"),
    ("kiosk_tickets_today", "Tickets the device issued today (its last heartbeat)"))


async def exposition(fleet: Fleet) -> bytes:
    """The per-device series of ``/metrics`` (Prometheus text format), from the fleet's
    last snapshot. Labels come from the configured devices only: nothing a request
    sends can create a series. Written directly (not through prometheus_client's
    collectors, ten times slower for 2,000 devices' 25,000 samples), each device's lines
    once per change of its view, a slice at a time (the screens' calls first)."""
    lines: list[list[str]] = [[f"# HELP {name} {text}\n# TYPE {name} gauge"]
                              for name, text in _FAMILIES]
    cache = fleet._series
    for i, v in enumerate(fleet.snapshot):
        cached = cache.get(v.id)
        if cached is None or cached[0] is not v:
            cached = (v, _series(v, fleet.labels[v.id]))
            cache[v.id] = cached
        for group, text in zip(lines, cached[1], strict=True):
            if text:
                group.append(text)
        if i % SLICE == SLICE - 1:
            await asyncio.sleep(0)
    return ("\n".join(line for group in lines for line in group) + "\n").encode()


def _series(v: DeviceView, lab: str) -> tuple[str, ...]:
    """One device's lines of each family of :data:`_FAMILIES` ("" for none)."""
    up = v.up
    beat = v.beat or {}
    in_service = up and bool(beat.get("in_service"))
    current = v.printer
    printer = "" if current == "none" else "\n".join(
        f'kiosk_printer_state{{{lab},state="{s}"}} {1 if s == current else 0}'
        for s in PRINTER_STATES[:-1])
    return (f"kiosk_device_up{{{lab}}} {1 if up else 0}",
            f"kiosk_device_in_service{{{lab}}} {1 if in_service else 0}",
            printer,
            "\n".join(f'kiosk_device_fault{{{lab},fault="{f}"}} {1 if up and f in v.faults else 0}'
                      for f in FAULTS),
            "" if v.last_seen is None else
            f"kiosk_device_last_seen_seconds{{{lab}}} {v.last_seen!r}",
            f"kiosk_tickets_today{{{lab}}} {int(beat.get('tickets_today', 0))}")


# ------------------------------------------------------------------ the routes

async def read_limited(request: Request, limit: int) -> bytes:
    """The request's body; :class:`Refused` 413 when it is over ``limit`` bytes (not read
    further), 400 when it never arrived whole (the client left, or the guard closed it at
    its body deadline: nobody reads the answer, and a disconnect is no error of ours to
    log)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise Refused(413, f"a body of at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, f"a body of at most {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise Refused(400, "a whole body") from None
    return b"".join(chunks)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None when :func:`read_limited` refuses it."""
    try:
        return await read_limited(request, limit)
    except Refused:
        return None


def refused(exc: Refused) -> JSONResponse:
    """The answer to a refused request (our own words, never the token)."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"error": exc.error}, status_code=exc.status, headers=headers)


class FleetApi:
    """``PUT /v1/devices/{id}/state`` and ``GET /v1/fleet``."""

    def __init__(self, fleet: Fleet, access: Access, clock: Callable[[], float]) -> None:
        self.fleet = fleet
        self.access = access
        self.clock = clock

    async def put_state(self, request: Request) -> Response:
        """A device's heartbeat: 204, or 400 naming the field, 401/403, 413, 503."""
        device_id = request.path_params["id"]
        try:
            device = self.access.device(request.headers.get("authorization"), Action.STATE,
                                        device_id=device_id)
        except Refused as exc:
            return refused(exc)
        try:
            body = await read_limited(request, MAX_STATE_BODY)
        except Refused as exc:
            if exc.status != 413:  # cut short: no one reads the answer
                return refused(exc)
            return JSONResponse({"error": "too_large",
                                 "detail": f"a heartbeat is at most {MAX_STATE_BODY} bytes"},
                                status_code=413)
        try:
            await self.fleet.heartbeat(device, body, self.clock())
        except Invalid as exc:
            return JSONResponse({"error": "invalid", "field": exc.field,
                                 "detail": exc.expected}, status_code=400)
        except StoreError as exc:
            log.error("relay: the heartbeat of %s not kept: %s", device.id, exc)
            return JSONResponse({"error": "store", "detail": "not kept; send the next one"},
                                status_code=503)
        return Response(status_code=204)

    async def list(self, request: Request) -> Response:
        """Every configured device's state, worst first; ``?branch=&state=`` filter."""
        try:
            self.access.fleet(request.headers.get("authorization"))
        except Refused as exc:
            return refused(exc)
        try:
            branch, states = parse_filter(request.query_params.get("branch"),
                                          request.query_params.get("state"))
        except Invalid as exc:
            return JSONResponse({"error": "invalid", "field": exc.field,
                                 "detail": exc.expected}, status_code=400)
        try:
            views = await self.fleet.select(self.clock(), branch, states)
        except StoreError as exc:
            log.error("relay: the fleet cannot be read: %s", exc)
            return JSONResponse({"error": "store", "detail": "the fleet cannot be read now"},
                                status_code=503, headers={"Retry-After": "5"})
        body = await self.fleet.fleet_json(views)
        return Response(body, media_type="application/json",
                        headers={"Cache-Control": "no-store"})


__all__ = ["DeviceLike", "DeviceView", "Fleet", "FleetApi", "Heartbeat", "Invalid",
           "StoreError", "assess", "exposition", "parse_filter", "parse_heartbeat",
           "worst_first"]
