"""The wiring: everything one kiosk's core needs, built from its config in one place.

The CLI, the core process and the demo all start from :func:`open_runtime`, so they issue
tickets through the same objects and the same use case. What staff do and see is
:mod:`kiosk.core.admin`; a new config, :mod:`kiosk.core.reload`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from pydantic import SecretStr

from kiosk.api import QmsClient
from kiosk.api.client import DEFAULT_RETRY, RetryPolicy
from kiosk.config import Config
from kiosk.errors import ApiError, StoreError
from kiosk.printing import TicketPrinter
from kiosk.store import Journal
from kiosk.store.journal import Access
from kiosk.tickets.clock import TicketClock
from kiosk.tickets.formcatalog import FormCatalog
from kiosk.tickets.issuing import TicketService
from kiosk.tickets.queues import QueueMonitor, open_monitor

if TYPE_CHECKING:
    from kiosk.calls.feed import CallFeed
    from kiosk.hub.client import HubClient
    from kiosk.hub.leases import LeaseKeeper
    from kiosk.hub.outbox import ReportSender

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """The wired objects of one kiosk."""

    config: Config
    api: QmsClient
    journal: Journal
    printer: TicketPrinter
    monitor: QueueMonitor
    service: TicketService
    clock: TicketClock
    forms: FormCatalog | None = None
    """Which queues need a form, and their forms (refreshed while the UI is served)."""
    calls: CallFeed | None = None
    """The relay's calls, when the config has a hub (set by the core)."""
    started: float = field(default_factory=time.monotonic)
    """Monotonic time the runtime was made (the state's uptime)."""
    hub_word: str = "waiting"
    """The heartbeat's last answer (:mod:`kiosk.hub.heartbeat`): ``ok``, ``unreachable``,
    ``refused``; ``waiting`` before the first (the state says ``none`` without a hub)."""
    hub: HubClient | None = None
    """The one client of the branch's hub, when the config has one (closed by
    :meth:`aclose`)."""
    leases: LeaseKeeper | None = None
    """With a hub, in the core: what keeps blocks of numbers ahead (:meth:`start_hub`)."""
    reports: ReportSender | None = None
    """With a hub, in the core: what delivers the tickets' reports (:meth:`start_hub`)."""
    demo_phone_link: tuple[str, str] | None = None
    """The demo only: the last ticket's number and phone page link, for its staff screen
    (a kiosk never shows a customer's link to anyone else)."""

    def start_hub(self) -> None:
        """Start the hub's background work (in the running loop): numbers leased ahead,
        the outbox's reports delivered (what a crash left first)."""
        if self.leases is not None:
            self.leases.start()
        if self.reports is not None:
            self.reports.start()

    def numbers(self) -> str:
        """Where numbers come from now: ``local`` (no hub), ``shared`` (leased from the
        hub) or ``offline`` (the hub away and the block used up)."""
        if self.config.hub is None:
            return "local"
        return "offline" if "numbers" in self.service.health.faults() else "shared"

    def faults(self) -> dict[str, str]:
        """What staff must know is wrong now: the journal, the clock (see
        :mod:`kiosk.tickets.health`)."""
        faults = self.service.health.faults()
        if "clock" not in faults and (note := self.clock.note()):
            faults["clock"] = note
        return faults

    async def branch_label(self) -> str:
        """The branch's label from config, else from the API (empty if unreachable)."""
        if self.config.ticket.branch_label:
            return self.config.ticket.branch_label
        try:
            branches = await self.api.list_branches()
        except ApiError as exc:
            log.info("branch label unavailable: %s", exc)
            return ""
        for b in branches:
            if b.matches(self.config.branch):
                return b.label or b.name
        return ""

    def warm_up(self) -> None:
        """Load what the first ticket needs (the printer's set-up) in the background,
        once the first frame is up (the UI warms its own QR drawing)."""
        self.printer.warm_up()

    def counts(self) -> dict[str, int]:
        """Today's attempts by outcome (and ``unprinted``); empty if the journal cannot be
        read (the fault is reported)."""
        try:
            return self.journal.counts()
        except StoreError as exc:
            self.service.health.set("journal", str(exc))
            return {}

    async def aclose(self) -> None:
        """Stop polling, close the HTTP pool and the journal."""
        await self.monitor.stop()
        if self.forms is not None:
            await self.forms.stop()
        if self.leases is not None:
            await self.leases.aclose()
        if self.reports is not None:
            await self.reports.aclose()
        await self.service.aclose()
        await self.api.aclose()
        if self.hub is not None:
            await self.hub.aclose()
        await asyncio.to_thread(self.printer.close)
        await asyncio.to_thread(self.journal.close)


def open_runtime(
    config: Config,
    api_key: SecretStr | str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    clock: Callable[[], datetime] | None = None,
    printer: TicketPrinter | None = None,
    check_printer: bool = False,
    monitor: QueueMonitor | None = None,
    access: Access = "own",
    hub: HubClient | None = None,
) -> Runtime:
    """Wire a kiosk from ``config``.

    ``access`` is how the journal is opened (:mod:`kiosk.store.journal`): ``"own"`` for
    the core, which recovers it (attempts a crash left pending) when no other process owns
    it, and runs on, out of service and saying why, when it cannot be opened; ``"write"``
    for one-shot commands, which never recover or arm; ``"read"`` for read-only ones.
    ``clock`` is the local wall clock; tickets go by it as corrected by the API's ``Date``
    (:class:`~kiosk.tickets.clock.TicketClock`). ``monitor`` (from
    :func:`~kiosk.tickets.queues.open_monitor`, maybe polling already) brings its API
    client; otherwise both are made here. ``hub``: the client of the branch's hub (the
    core's, with a ``hub:`` section); the core's runtime (``access="own"``) then keeps
    blocks of numbers ahead once :meth:`Runtime.start_hub` runs.
    """
    if monitor is None:
        monitor = open_monitor(config, api_key, transport=transport, retry=retry)
    api = monitor.api
    ticket_clock = TicketClock(clock or _utcnow, lambda: api.server_date)
    fault = ""
    try:
        journal = Journal(config.kiosk.data_dir, kiosk_id=config.kiosk.id,
                          timezone=config.kiosk.timezone, clock=ticket_clock, access=access)
    except StoreError as exc:
        if access != "own":
            raise
        fault = str(exc)
        journal = Journal.unavailable(config.kiosk.data_dir, kiosk_id=config.kiosk.id,
                                      reason=fault, timezone=config.kiosk.timezone)
    printer = printer or TicketPrinter(config.printer, config.ticket,
                                       timezone=config.kiosk.timezone)
    if check_printer:
        printer.ready()  # a bad profile, code page or logo stops start-up here
    service = TicketService(config, api, journal, printer, monitor=monitor,
                            clock=ticket_clock)
    forms = FormCatalog(api, lambda: [q.id for q in service.config.queues]
                        or [q.id for q in monitor.snapshot.queues])
    service.forms = forms
    if fault:
        service.health.set("journal", f"{fault}; no ticket is issued until it is fixed "
                           "(then restart the kiosk)")
    elif access == "own":
        recovered = journal.recover()
        if recovered:
            log.warning("%d ticket attempt(s) were interrupted by a crash; marked 'unknown' "
                        "in %s", recovered, journal.path)
        elif recovered is None:
            log.warning("another kiosk process owns the journal %s (or a command is writing "
                        "to it): numbers are taken one by one until it is gone", journal.path)
    rt = Runtime(config, api, journal, printer, monitor, service, ticket_clock, forms,
                 hub=hub)
    if hub is not None and access == "own" and not fault:
        from kiosk.hub.leases import LeaseKeeper
        rt.leases = service.leases = LeaseKeeper(
            journal, hub, config.numbering.block, service.sequences,
            on_lease=service.lease_arrived)
        from kiosk.hub.outbox import ReportSender
        rt.reports = service.reports = ReportSender(journal, hub)
    return rt
