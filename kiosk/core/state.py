"""The device's state, composed in one place from what the core knows: the queues'
monitor (the API), the printer's last answer, the clock, the journal's faults and counts,
the forms, the relay's calls, the hub (docs/hub.md, "Heartbeats").

``status.json`` (:mod:`kiosk.core.status`), ``kiosk check`` (which reads it), the staff
screen (:mod:`kiosk.core.admin`, over the link) and the heartbeat (:mod:`kiosk.hub`) all
show this :class:`~kiosk.view.devicestate.DeviceState`. It reads the journal: call it off
the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import datetime
from typing import TYPE_CHECKING

from kiosk import __version__
from kiosk.errors import StoreError
from kiosk.printing import PrinterStatus, State
from kiosk.printing.status import Paper
from kiosk.view.devicestate import DeviceState
from kiosk.view.presentation import out_of_service

if TYPE_CHECKING:
    from kiosk.calls.feed import CallFeed
    from kiosk.config import Config
    from kiosk.core.runtime import Runtime
    from kiosk.hub.heartbeat import Heartbeat

_PRINTER_WORDS = {State.READY: "ok", State.PAPER_NEAR_END: "paper_low",
                  State.PAPER_OUT: "paper_out", State.COVER_OPEN: "cover_open",
                  State.OFFLINE: "offline", State.UNREACHABLE: "offline",
                  State.NOT_QUERIED: "unknown", State.UNKNOWN: "unknown", State.NONE: "none"}


def printer_word(status: PrinterStatus) -> str:
    """The printer in the hub's words: a printer that did not answer, or whose paper
    sensor did not, is ``unknown``, never ``ok``."""
    word = _PRINTER_WORDS[status.state]
    if word == "ok" and status.paper is Paper.UNKNOWN:
        return "unknown"
    return word


def role_of(config: Config) -> str:
    """``kiosk``, ``tablet`` or ``display`` (the config's mode)."""
    return config.kiosk.mode


def words(rt: Runtime, printer: PrinterStatus | None = None
          ) -> tuple[str, str, str, str, dict[str, str]]:
    """(printer, api, clock, journal, details) from what is in memory (no journal read,
    no printer query): what the heartbeat watches for a change."""
    details: dict[str, str] = {}
    printer = printer or rt.printer.last_status
    word = printer_word(printer)
    if printer.detail:
        details["printer"] = printer.detail
    snap = rt.monitor.snapshot
    api = "ok"
    if out_of_service(snap):
        api = "refused"
    elif snap.error is not None and snap.is_stale(rt.monitor.period_s):
        api = "unreachable"
    if snap.error is not None:
        details["api"] = str(snap.error)
    faults = rt.service.health.faults()
    clock = "wrong" if "clock" in faults else "skewed" if rt.clock.note() else "ok"
    if clock != "ok":
        details["clock"] = faults.get("clock") or rt.clock.note()
    journal = "ok"
    if rt.journal.fault is not None:
        journal = "unavailable"
        details["journal"] = rt.journal.fault
    elif "journal" in faults:
        journal = "fault"
        details["journal"] = faults["journal"]
    if "numbers" in faults:
        details["numbers"] = faults["numbers"]
    return word, api, clock, journal, details


def watched(rt: Runtime) -> tuple[str, ...]:
    """What a change of is sent to the hub at once (:meth:`DeviceState.words`)."""
    word, api, clock, journal, _ = words(rt)
    return DeviceState(role=role_of(rt.config), version=__version__, printer=word, api=api,
                       clock=clock, journal=journal, numbers=rt.numbers()).words()


def compose(rt: Runtime, printer: PrinterStatus | None = None) -> DeviceState:
    """A kiosk's or tablet's state now; ``printer``: a fresh answer (default: the last
    one the printer gave)."""
    config = rt.config
    word, api, clock, journal, details = words(rt, printer)
    skew = rt.clock.skew()
    tickets: dict[str, int] = {}
    priority: dict[str, int] = {}
    waits: list[float] = []
    last: str | None = None
    day = ""
    if journal != "unavailable":
        try:
            day = rt.journal.today()
            tickets = rt.journal.counts(day)
            priority = rt.journal.priority_counts(day)
            waits = rt.journal.call_waits(day)  # the relay's calls, as journalled
            row = rt.journal.last_issued()
            if row is not None:
                last = row.answered_at or row.created_at
        except StoreError as exc:
            rt.service.health.set("journal", str(exc))
            journal, details["journal"] = "fault", str(exc)
    sent = refused = 0
    if rt.forms is not None:
        sent, refused = rt.forms.today(day or datetime.now().date().isoformat())
    return DeviceState(
        role=role_of(config), version=__version__, printer=word, api=api, clock=clock,
        clock_skew_s=None if skew is None else skew.total_seconds(), journal=journal,
        numbers=rt.numbers(), hub=rt.hub_word if rt.config.hub is not None else "none",
        tickets=tickets, priority_today=priority,
        forms_sent=sent, forms_refused=refused, last_ticket_at=last,
        called_today=len(waits),
        call_wait_median_s=statistics.median(waits) if waits else None,
        uptime_s=int(time.monotonic() - rt.started), details=details)


async def asked(rt: Runtime) -> DeviceState:
    """The state with the printer asked now (its paper sensor read: DLE EOT 4), on the
    printer's own thread behind any job, then composed off the loop: each heartbeat."""
    status = await asyncio.wrap_future(rt.printer.submit_status())
    return await asyncio.to_thread(compose, rt, status)


def heartbeat(rt: Runtime) -> Heartbeat | None:
    """A kiosk's or tablet's heartbeat to its hub (None without a hub): every
    ``hub.heartbeat_s``, the printer asked each time, and at once on a change."""
    if rt.hub is None or rt.config.hub is None:
        return None
    from kiosk.hub.heartbeat import Heartbeat

    def answered(word: str) -> None:
        rt.hub_word = word
    return Heartbeat(lambda: asked(rt), lambda: watched(rt), rt.hub.put_state,
                     every_s=rt.config.hub.heartbeat_s, answered=answered)


def compose_display(config: Config, feed: CallFeed, started: float,
                    hub: str = "none") -> DeviceState:
    """A calling screen's state: no API, no printer, no journal; the relay's calls."""
    details = {} if feed.connected else {"calls": feed.error or "connecting"}
    return DeviceState(role="display", version=__version__, printer="none", api="none",
                       journal="none", hub=hub, uptime_s=int(time.monotonic() - started),
                       details=details)
