"""Issuing a ticket: the one use case behind a tap, the greeter's button and the CLI.

``take a number -> enqueue -> print -> journal``:

1. the next number is taken: one armed ahead of time (:meth:`Journal.arm`, durable) and
   claimed for this attempt, else one reserved on the spot; either way it is committed
   before anything is sent, so a number is never used twice in a day. Once the customer
   has their answer, the next number of that prefix is armed in the background, so the
   reservation stays off the tap's path (the claim is fsynced, on a thread, ~1 ms on a
   disk; the answer's record is not, ~0.1 ms, inline);
2. the API is asked to enqueue it (the client retries only what is safe to retry);
3. only a 201 prints a ticket; if printing fails the outcome stays ``issued`` with
   ``printed=False``, and the journal says so;
4. the journal records the outcome.

Numbers are armed only by the process that owns the journal (the core, see
:mod:`kiosk.store.journal`); a one-shot ``kiosk ticket`` reserves its one number and arms
none. A number that cannot be taken (journal unusable, a clock behind the journal's
latest day) sends nothing: the tap is ``unavailable`` and the fault goes to
:class:`~kiosk.tickets.health.Health` (log, staff screen, status file). Once the API has
accepted a ticket, the customer gets the number and the paper whatever the journal does:
a record that cannot be written (disk full, busy) is logged whole, reported as a journal
fault, and written at the next chance.

A 201 whose body cannot be read still means the customer is in the queue: ``issued``
with no provider id, logged as a provider fault (telling the customer to try again would
put them in the queue twice). A timeout or a connection lost after sending leaves it
unknown whether the API took the ticket: ``unavailable`` with ``uncertain=True``, and the
journal says ``uncertain`` so staff can check.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from kiosk.api import QmsClient, Queue
from kiosk.config import Config
from kiosk.errors import (
    AcceptedUnreadable,
    ApiError,
    ApiTimeout,
    ClockBehind,
    ConnectionLost,
    NotOffered,
    PrinterError,
    StoreError,
    TicketNotFound,
)
from kiosk.printing.model import TicketData, qr_content
from kiosk.store import Journal, TicketRow
from kiosk.store.journal import sequence_of
from kiosk.tickets.health import Health
from kiosk.tickets.queues import (
    QueueMonitor,
    priority_segment,
    queue_views,
    unknown_queue_view,
)
from kiosk.view.messages import customer_message
from kiosk.view.outcomes import IssueResult, Outcome, QueueView, outcome_for, priority_value

if TYPE_CHECKING:
    from kiosk.hub.leases import LeaseKeeper
    from kiosk.hub.outbox import ReportSender
    from kiosk.tickets.formcatalog import FormCatalog

log = logging.getLogger(__name__)

PHONE_TOKEN_BYTES = 16
"""A phone token's random bytes (128 bits: ``secrets.token_urlsafe``, 22 characters)."""

MAX_ALTERNATIVES = 12
"""Most alternatives offered after a 406 (a screen shows a few; a link message stays small)."""


class TicketPrinter(Protocol):
    """What the service needs of a printer (see :class:`kiosk.printing.TicketPrinter`)."""

    def submit(self, data: TicketData, job: str | None = None) -> Future[None]:
        """Print on the printer's own thread; the future fails with a PrinterError."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TicketService:
    """Issues tickets for one kiosk."""

    def __init__(
        self,
        config: Config,
        api: QmsClient,
        journal: Journal,
        printer: TicketPrinter | None = None,
        *,
        monitor: QueueMonitor | None = None,
        branch_label: str = "",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.config = config
        self.api = api
        self.journal = journal
        self.printer = printer
        self.monitor = monitor
        self.branch_label = config.ticket.branch_label or branch_label
        self._clock = clock
        self.health = Health()
        """Faults staff must see (journal, clock); shared with the runtime."""
        self._unrecorded: list[tuple[str, Callable[[], None]]] = []
        """Journal writes that failed after the API answered, tried again later."""
        self._armed: dict[str, TicketRow] = {}
        self._arming: dict[str, asyncio.Task[None]] = {}
        self.busy = asyncio.Lock()
        """Held while a ticket is being issued (a config reload waits for it)."""
        self.forms: FormCatalog | None = None
        """Which queues need a form (set by :func:`~kiosk.core.runtime.open_runtime`)."""
        self.reports: ReportSender | None = None
        """With a hub, in the core: what delivers the outbox's reports (woken after each
        report written)."""
        self.on_phone_link: Callable[[str, str], None] | None = None
        """The demo only: told ``(number, link)`` of each ticket's phone page, to print it
        for a newcomer. A kiosk never sets it: the link holds the customer's token."""
        self.leases: LeaseKeeper | None = None
        """With a hub: what keeps blocks of numbers ahead (set by
        :func:`~kiosk.core.runtime.open_runtime` for the core)."""

    # ----------------------------------------------------------------- queues

    def _known_queues(self) -> list[Queue]:
        return list(self.monitor.snapshot.queues) if self.monitor else []

    def views(self, lang: str, queues: list[Queue] | None = None, *,
              priority: bool = False) -> list[QueueView]:
        """The queues to show, from ``queues`` or the monitor's last good state;
        ``priority``: as a priority customer sees them (the preferential segments' agents
        and waits, see :func:`~kiosk.tickets.queues.queue_views`)."""
        ages = None
        if queues is None and self.monitor is not None:  # how old each card's data is
            ages = self.monitor.ages()
        views = queue_views(self.config, self._known_queues() if queues is None else queues,
                            lang, ages, priority=priority)
        if self.forms is not None:  # mark the cards of queues that need a form
            views = [replace(v, needs_form=True) if self.forms.needs(v.id) else v
                     for v in views]
        return views

    async def fetch_views(self, lang: str) -> list[QueueView]:
        """The queues, fresh from the API (for the CLI)."""
        return self.views(lang, await self.api.list_queues(self.config.branch))

    def view(self, queue_id: str, lang: str, *, priority: bool = False) -> QueueView:
        """``queue_id`` as the cards show it in ``lang`` (a placeholder if unknown)."""
        for v in self.views(lang, priority=priority):
            if queue_id == v.id:
                return v
        return unknown_queue_view(self.config, queue_id, lang)

    async def _alternatives(self, queue_id: str, lang: str, priority: bool = False
                            ) -> tuple[QueueView, ...]:
        """Queues with agents now: fresh from the API, else the monitor's last state (for
        a priority ticket, their preferential segments')."""
        try:
            views = self.views(lang, await self.api.list_queues(self.config.branch, retries=0),
                               priority=priority)
        except ApiError as exc:
            log.info("could not refresh queues for alternatives: %s", exc)
            views = self.views(lang, priority=priority)
        return tuple(v for v in views if v.users > 0 and v.id != queue_id)[:MAX_ALTERNATIVES]

    # ----------------------------------------------------------------- numbers

    async def _own_journal(self) -> None:
        """Become the journal's owner if this process may and can (the core, once no other
        core holds it and no one-shot is writing): recover it, then arm numbers. Runs
        with :attr:`busy` held, so no ticket of ours is in flight."""
        if self.journal.owner or self.journal.access != "own" or self.journal.fault:
            return
        recovered = await asyncio.to_thread(self.journal.recover)
        if recovered:
            log.warning("%d ticket attempt(s) were interrupted by a crash; marked 'unknown' "
                        "in %s", recovered, self.journal.path)

    def _offline_format(self, priority: bool) -> str | None:
        """With a hub, how a number reads when no leased one is left; None without."""
        if self.config.hub is None:
            return None
        n = self.config.numbering
        return n.offline_priority_format if priority else n.offline_format

    async def _take_number(self, view: QueueView, lang: str,
                           priority: str | None = None) -> TicketRow:
        row = await self._number(view, lang, priority)
        if row.numbering == "offline":
            example = row.ticket_id
            self.health.set("numbers", "numbers offline: the hub gives no numbers (" + (
                self.leases.error if self.leases is not None and self.leases.error
                else "the last block is used up, the next not here yet")
                + f"); this device numbers on its own ({example}) until it answers")
        elif row.numbering == "shared":
            self.health.clear("numbers")
        return row

    async def _number(self, view: QueueView, lang: str,
                      priority: str | None = None) -> TicketRow:
        await self._own_journal()
        prefix = view.prefix
        name = view.api_name or view.name
        if priority is not None:  # few: reserved on the spot, from their own sequence
            return await asyncio.to_thread(
                self.journal.reserve, queue_id=priority_segment(self.config, view.id),
                queue_name=name, prefix=prefix, fmt=self.config.numbering.priority_format,
                language=lang, priority=priority, offline_fmt=self._offline_format(True))
        pending = self._arming.get(prefix)
        if pending is not None:
            await pending
        armed = self._armed.pop(prefix, None)
        if armed is not None:
            if armed.day == self.journal.today():
                await asyncio.to_thread(  # fsynced: off the event loop
                    self.journal.claim, armed.row_id, queue_id=view.id, queue_name=name,
                    language=lang)
                return replace(armed, queue_id=view.id, queue_name=name, language=lang,
                               outcome="pending")
            self.journal.void(armed.row_id)  # yesterday's
        return await asyncio.to_thread(
            self.journal.reserve, queue_id=view.id, queue_name=name, prefix=prefix,
            fmt=self.config.numbering.format, language=lang,
            offline_fmt=self._offline_format(False))

    def _arm_next(self, prefix: str) -> None:
        if not self.journal.owner or prefix in self._armed or prefix in self._arming:
            return

        async def arm() -> None:
            try:
                self._armed[prefix] = await asyncio.to_thread(
                    self.journal.arm, prefix=prefix, fmt=self.config.numbering.format,
                    offline_fmt=self._offline_format(False))
            except StoreError as exc:
                log.warning("could not arm the next %s number: %s", prefix, exc)
            finally:
                self._arming.pop(prefix, None)
        self._arming[prefix] = asyncio.get_running_loop().create_task(arm())

    def sequences(self) -> list[str]:
        """The number sequences this device offers now: each queue's prefix, and its
        priority sequence (``priority:A``) where priority tickets are offered."""
        prefixes = sorted({*(q.prefix for q in self.config.queues if q.prefix),
                           *(v.prefix for v in self.views(self.config.kiosk.language))})
        if self.config.priority.enabled:
            prefixes += [sequence_of(p, "") for p in prefixes]
        return prefixes

    def lease_arrived(self, sequence: str) -> None:
        """The hub leased a block of ``sequence``: numbers are shared again. A number armed
        offline meanwhile is given back (void, never sent) and a shared one armed."""
        self.health.clear("numbers")
        armed = self._armed.get(sequence)
        if armed is None or armed.numbering != "offline":
            return
        del self._armed[sequence]

        async def rearm() -> None:
            try:
                await asyncio.to_thread(self.journal.void, armed.row_id)
            except StoreError as exc:  # the next start's recovery voids it
                log.warning("number %s armed offline not given back: %s", armed.ticket_id,
                            exc)
            self._arm_next(sequence)
        asyncio.get_running_loop().create_task(rearm())

    async def settle(self) -> None:
        """Wait until the background work of earlier taps (arming numbers) is done."""
        for task in list(self._arming.values()):
            await task

    async def aclose(self) -> None:
        """Wait for numbers being armed, and give back the armed ones (never sent)."""
        await self.settle()
        for row in self._armed.values():
            try:
                await asyncio.to_thread(self.journal.void, row.row_id)
            except StoreError as exc:  # the next start's recovery voids it
                log.warning("armed number %s not given back: %s", row.ticket_id, exc)
        self._armed.clear()

    # ----------------------------------------------------------------- issuing

    async def issue(
        self,
        queue_id: str,
        *,
        language: str | None = None,
        integration_data: dict[str, Any] | None = None,
        form: str | None = None,
        print_ticket: bool = True,
        wait_print: bool = True,
        priority: str | None = None,
    ) -> IssueResult:
        """Issue one ticket for ``queue_id`` (an id or integrationId) and print it.

        ``wait_print=False`` returns as soon as the API answered, with printing under way in
        ``result.printing`` (the UI shows the number at once, the paper follows).
        ``priority``: a priority ticket, for this reason id (``""`` where no reason is
        asked): numbered with ``numbering.priority_format``, sent to the queue's
        ``priority_queue`` (else the queue), ``integrationData.priority`` set.
        :class:`~kiosk.errors.NotOffered` (nothing sent) for a reason not offered here.
        """
        if priority is not None and not self.config.priority.offered(priority):
            raise NotOffered(not_offered(self.config, priority))
        async with self.busy:
            return await self._issue(queue_id, language, integration_data, form, print_ticket,
                                     wait_print, priority)

    async def _issue(self, queue_id: str, language: str | None,
                     integration_data: dict[str, Any] | None, form: str | None,
                     print_ticket: bool, wait_print: bool,
                     priority: str | None = None) -> IssueResult:
        lang = language or self.config.kiosk.language
        view = self.view(queue_id, lang, priority=priority is not None)
        try:
            row = await self._take_number(view, lang, priority)
        except StoreError as exc:  # nothing was sent: out of service, and staff told why
            return self._not_numbered(view, lang, exc)
        if self.health.faults().get("clock"):
            self.health.clear("clock")
        data = {**(integration_data or {}),  # ours last: a caller cannot override them
                "source": "kiosk", "kiosk": self.config.kiosk.id, "day": row.day, "lang": lang}
        segment = queue_id
        if priority is not None:
            data["priority"] = priority_value(priority)
            segment = priority_segment(self.config, queue_id)

        videsk_id: str | None = None
        uncertain = False
        detail = ""
        try:
            answer = await self.api.enqueue(self.config.branch, segment, row.ticket_id,
                                            integration_data=data, form=form)
            outcome, videsk_id = Outcome.ISSUED, answer.id
        except AcceptedUnreadable as exc:
            outcome, detail = Outcome.ISSUED, f"provider fault: {exc}"
            log.warning("ticket %s: enqueue answered %s with an unreadable body; the ticket is "
                        "in the queue, its provider id is unknown (%s)", row.ticket_id,
                        exc.status_code, exc.snippet)
        except ApiError as exc:
            outcome, detail = outcome_for(exc), f"{exc.__class__.__name__}: {exc}"
            uncertain = isinstance(exc, ApiTimeout | ConnectionLost)
        issued_at = self._clock()
        journal_outcome = "uncertain" if uncertain else outcome.value
        wait = view.wait_minutes if view.api_name else None
        phone = self.phone_token() if outcome is Outcome.ISSUED or uncertain else None
        report = self._report(row, view, lang, issued_at, journal_outcome, priority)
        if report is not None:
            report["phone"], report["wait_min"] = phone, wait
        self._record(row.ticket_id, f"outcome {journal_outcome} videsk id {videsk_id}",
                     lambda: self.journal.finish(row.row_id, journal_outcome,
                                                 videsk_id=videsk_id, detail=detail,
                                                 wait_min=wait, report=report, phone=phone))
        if report is not None and self.reports is not None:
            self.reports.notify()
        log.info("ticket %s queue=%s%s outcome=%s%s", row.ticket_id, queue_id,
                 "" if priority is None else f" priority={priority or 'yes'} segment={segment}",
                 journal_outcome, f" ({detail})" if detail else "")

        alternatives: tuple[QueueView, ...] = ()
        if outcome is Outcome.NO_AGENTS:
            alternatives = await self._alternatives(queue_id, lang, priority is not None)
            if self.monitor:
                self.monitor.poll_soon()

        if self.leases is not None:  # after the answer: the keeper's work is off this tap
            self.leases.used(sequence_of(view.prefix, priority))
        if priority is None:
            self._arm_next(view.prefix)
        printed: bool | None = None
        print_error = ""
        printing: asyncio.Future[tuple[bool, str]] | None = None
        ticket = TicketData(
            ticket_id=row.ticket_id, queue_id=view.id, queue_name=view.name,
            issued_at=issued_at, language=lang, branch_label=self.branch_label,
            wait_minutes=wait, videsk_id=videsk_id, priority=priority is not None,
            phone_url=self.phone_link(phone))
        if outcome is Outcome.ISSUED and ticket.phone_url and self.on_phone_link is not None:
            self.on_phone_link(row.ticket_id, ticket.phone_url)
        if outcome is Outcome.ISSUED and print_ticket:
            printing = asyncio.ensure_future(self.print(ticket, row.row_id))
            if wait_print:
                printed, print_error = await printing

        return IssueResult(
            outcome=outcome, ticket_id=row.ticket_id, queue=view, language=lang,
            message=customer_message(outcome, lang, ticket=row.ticket_id, queue=view.name,
                                     printed=printed, uncertain=uncertain),
            videsk_id=videsk_id, printed=printed, print_error=print_error,
            alternatives=alternatives, uncertain=uncertain, detail=detail,
            issued_at=issued_at if outcome is Outcome.ISSUED else None, row_id=row.row_id,
            qr=qr_content(self.config.ticket.qr, ticket) if outcome is Outcome.ISSUED else None,
            qr_phone=outcome is Outcome.ISSUED and ticket.phone_url is not None,
            printing=printing if not wait_print else None, priority=priority)

    def _report(self, row: TicketRow, view: QueueView, lang: str, issued_at: datetime,
                outcome: str, priority: str | None) -> dict[str, Any] | None:
        """The ticket's report for the hub (docs/hub.md), when there is a hub and the
        customer may be queued (``issued``, ``uncertain``); None otherwise."""
        if self.config.hub is None or outcome not in ("issued", "uncertain"):
            return None
        local = issued_at.astimezone(self.journal.tz)
        return {"ticketId": row.ticket_id,
                "queue": {"id": view.id, "name": (view.api_name or view.name)[:200]},
                "lang": lang, "issuedAt": local.isoformat(timespec="milliseconds"),
                "outcome": outcome, "device": self.config.kiosk.id,
                "priority": priority_value(priority), "phone": None}

    def _not_numbered(self, view: QueueView, lang: str, exc: StoreError) -> IssueResult:
        """No number could be taken: nothing was sent, the tap is out of service."""
        if not self.journal.fault:  # an unopened journal was reported at start
            self.health.set("clock" if isinstance(exc, ClockBehind) else "journal", str(exc))
        log.error("no ticket for queue %s: %s", view.id, exc)
        return IssueResult(
            outcome=Outcome.UNAVAILABLE, ticket_id="", queue=view, language=lang,
            message=customer_message(Outcome.UNAVAILABLE, lang, queue=view.name),
            detail=f"{exc.__class__.__name__}: {exc}")

    def _record(self, ticket_id: str, what: str, write: Callable[[], None]) -> None:
        """Write to the journal after the API answered; a failure never reaches the
        customer: the record is logged whole, the fault reported, the write tried again
        at the next record."""
        self._unrecorded.append((f"{ticket_id}: {what}", write))
        while self._unrecorded:
            label, pending = self._unrecorded[0]
            try:
                pending()
            except StoreError as exc:
                log.error("journal write failed, kept to try again: ticket %s (%s)",
                          label, exc)
                self.health.set("journal", f"{len(self._unrecorded)} record(s) not written "
                                f"(first: ticket {label}): {exc}")
                return
            self._unrecorded.pop(0)
        if not self.journal.fault:
            self.health.clear("journal")

    async def print(self, ticket: TicketData, row_id: int | None) -> tuple[bool, str]:
        """Print off the event loop; record the result in the journal."""
        if self.printer is None:
            return False, "no printer configured"
        try:
            await asyncio.wrap_future(self.printer.submit(ticket))
            printed, error = True, ""
        except PrinterError as exc:
            printed, error = False, f"{exc.__class__.__name__}: {exc}"
        if row_id is not None:
            self._record(ticket.ticket_id, f"printed {printed}",
                         lambda: self.journal.set_printed(row_id, printed, error))
        return printed, error

    async def reprint(self, ticket_id: str) -> tuple[bool, str]:
        """Print an issued ticket again (today's, else the latest with that number)."""
        row = await asyncio.to_thread(self.journal.find, ticket_id)
        row = row or await asyncio.to_thread(self.journal.find, ticket_id, "any")
        if row is None or row.outcome != "issued":
            state = "was not issued" if row else "is not in the journal"
            raise TicketNotFound(f"ticket {ticket_id} {state}")
        view = self.view(row.queue_id, row.language or self.config.kiosk.language)
        ticket = TicketData(
            ticket_id=row.ticket_id, queue_id=row.queue_id,
            queue_name=view.name if view.api_name else (row.queue_name or view.name),
            issued_at=datetime.fromisoformat(row.answered_at or row.updated_at),
            language=row.language,
            branch_label=self.branch_label, wait_minutes=row.wait_min, videsk_id=row.videsk_id,
            priority=row.priority is not None,
            phone_url=self.phone_link(await asyncio.to_thread(self.journal.phone_token,
                                                              row.ticket_id, row.day)))
        return await self.print(ticket, row.row_id)

    def phone_token(self) -> str | None:
        """A new phone token for a ticket (128 random bits), or None without a hub."""
        return secrets.token_urlsafe(PHONE_TOKEN_BYTES) if self.config.hub is not None else None

    def phone_link(self, token: str | None) -> str | None:
        """The phone page's link for ``token`` (what the QR holds), or None."""
        if token is None or self.config.hub is None:
            return None
        return f"{self.config.hub.phone_url.rstrip('/')}/t/{token}"


def not_offered(config: Config, priority: str) -> str:
    """Why ``priority`` is refused here, naming it and what is offered."""
    p = config.priority
    if not p.enabled:
        return "priority tickets are not offered here (priority.enabled is false)"
    if not p.ask_reason:
        return (f"priority reason {priority!r} is not offered: this kiosk asks no reason "
                "(priority.ask_reason is false)")
    offered = ", ".join(r.id for r in p.reasons)
    return f"priority reason {priority!r} is not offered (offered: {offered})"
