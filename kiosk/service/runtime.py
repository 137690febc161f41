"""Everything one kiosk process needs, built from its config in one place.

The CLI, the UI and the demo all start from :func:`open_runtime`, so they issue tickets
through the same objects and the same use case.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from pydantic import SecretStr

from kiosk import __version__
from kiosk.api import QmsClient
from kiosk.api.client import DEFAULT_RETRY, RetryPolicy
from kiosk.config import Config, load_config
from kiosk.errors import ApiError, ConfigError, PrinterError, StoreError
from kiosk.printing import PrinterStatus, TicketPrinter
from kiosk.service import presentation
from kiosk.service.clock import TicketClock
from kiosk.service.formflow import FormCatalog
from kiosk.service.issuing import TicketService
from kiosk.service.queues import QueueMonitor, open_monitor
from kiosk.store import Journal
from kiosk.store.journal import Access

if TYPE_CHECKING:
    from kiosk.service.callfeed import CallFeed

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
    """The relay's calls, when the config has a ``calls`` section (set by the core)."""

    def faults(self) -> dict[str, str]:
        """What staff must know is wrong now: the journal, the clock (see
        :mod:`kiosk.service.health`)."""
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
        """Load what the first ticket needs (the printer's set-up, the QR encoder) in the
        background, once the first frame is up."""
        self.printer.warm_up()
        threading.Thread(target=presentation.warm_up, name="warm-up", daemon=True).start()

    # ----------------------------------------------------------------- admin

    async def printer_status(self) -> PrinterStatus:
        """Ask the printer now (on its own thread)."""
        return await asyncio.wrap_future(self.printer.submit_status())

    async def test_print(self, lang: str) -> tuple[bool, str]:
        """Print the sample ticket (every element and special letter)."""
        try:
            await asyncio.wrap_future(self.printer.submit(self.printer.sample_layout(lang),
                                                          "print-test"))
        except PrinterError as exc:
            return False, f"{exc.__class__.__name__}: {exc}"
        return True, ""

    async def reprint_last(self) -> tuple[str | None, bool, str]:
        """Print the last issued ticket again: (its number, printed, error)."""
        row = await asyncio.to_thread(self.journal.last_issued)
        if row is None:
            return None, False, "no ticket issued yet"
        printed, error = await self.service.reprint(row.ticket_id)
        return row.ticket_id, printed, error

    def counts(self) -> dict[str, int]:
        """Today's attempts by outcome (and ``unprinted``); empty if the journal cannot be
        read (the fault is reported)."""
        try:
            return self.journal.counts()
        except StoreError as exc:
            self.service.health.set("journal", str(exc))
            return {}

    async def reload_from(self, path: str | None) -> str:
        """Reload the config file at ``path``: all of it, or nothing (a bad file, or a
        change that needs a restart, keeps the old config). Returns what happened, for the
        staff screen and the log."""
        if not path:
            return "no config file to reload (demo)"
        try:
            config = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            log.error("config not reloaded, keeping the old one: %s", exc)
            return f"Not reloaded, old config kept: {exc}"
        return await self.reload(config)

    def admin_summary(self, printer: PrinterStatus) -> str:
        """API, printer and today's counts, in a few lines for staff (never the key)."""
        snap = self.monitor.snapshot
        age = snap.age()
        api = (f"ok, {len(snap.queues)} queues, updated {age:.0f} s ago" if snap.error is None
               and age is not None else f"{snap.error or 'not reached yet'}")
        counts = self.counts()
        today = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        faults = "".join(f"\n{what.upper()} FAULT: {problem}"
                         for what, problem in self.faults().items())
        text = (f"Kiosk {self.config.kiosk.id} · kiosk {__version__}\n"
                f"API {self.config.api.base_url}: {api}\n"
                f"Printer ({self.config.printer.type}): {printer}\n"
                f"Today: {today}" + self._forms_summary())
        if self.calls is not None:
            from kiosk.service.callfeed import call_wait_summary, relay_summary
            try:
                waits = call_wait_summary(self.journal.call_waits())
            except StoreError:  # reported among the faults below
                waits = "unknown"
            text += f"\n{relay_summary(self.calls)}\nCalls today: {waits}"
        return text + faults

    def _forms_summary(self) -> str:
        """Forms since start, as counts (what customers typed never reaches staff)."""
        forms = self.forms
        if forms is None or not any(forms.forms.values()):
            return ""
        return f"\nForms: {forms.sent} sent, {forms.refused} sent back to the customer"

    async def reload(self, config: Config) -> str:
        """Take a new config without dropping a ticket in flight, all or nothing (see
        :mod:`kiosk.service.reload`); returns what happened."""
        from kiosk.service.reload import changed_keys, needs_restart
        async with self.service.busy:
            changed = changed_keys(self.config, config)
            restart = needs_restart(changed)
            if restart:
                message = (f"Not reloaded: {', '.join(restart)} needs a restart "
                           "(systemctl restart kiosk); the old config stays")
                log.error("config %s", message[0].lower() + message[1:])
                return message
            self.config = config
            self.service.config = config
            self.service.branch_label = config.ticket.branch_label or self.service.branch_label
            self.printer.ticket_cfg = config.ticket
            self.monitor.period_s = config.ui.refresh_s
        log.info("config reloaded: %s", ", ".join(changed) or "nothing changed")
        return "Reloaded: " + (", ".join(changed) or "nothing changed")

    async def aclose(self) -> None:
        """Stop polling, close the HTTP pool and the journal."""
        await self.monitor.stop()
        if self.forms is not None:
            await self.forms.stop()
        await self.service.aclose()
        await self.api.aclose()
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
) -> Runtime:
    """Wire a kiosk from ``config``.

    ``access`` is how the journal is opened (:mod:`kiosk.store.journal`): ``"own"`` for
    the core, which recovers it (attempts a crash left pending) when no other process owns
    it, and runs on, out of service and saying why, when it cannot be opened; ``"write"``
    for one-shot commands, which never recover or arm; ``"read"`` for read-only ones.
    ``clock`` is the local wall clock; tickets go by it as corrected by the API's ``Date``
    (:class:`~kiosk.service.clock.TicketClock`). ``monitor`` (from
    :func:`~kiosk.service.queues.open_monitor`, maybe polling already) brings its API
    client; otherwise both are made here.
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
    return Runtime(config, api, journal, printer, monitor, service, ticket_clock, forms)

