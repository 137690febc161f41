"""What the staff screen does and shows: a test print, the last ticket again, and the
device's state in a few lines (API, printer, today's counts, forms, calls, faults).

Each action runs only inside a staff session (:class:`~kiosk.tickets.staff.StaffAccess`,
checked by the server before it gets here). Nothing here ever shows a secret or what a
customer typed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from kiosk import __version__
from kiosk.errors import PrinterError, StoreError

if TYPE_CHECKING:
    from kiosk.core.runtime import Runtime
    from kiosk.printing import PrinterStatus


async def printer_status(rt: Runtime) -> PrinterStatus:
    """Ask the printer now (on its own thread)."""
    return await asyncio.wrap_future(rt.printer.submit_status())


async def test_print(rt: Runtime, lang: str) -> tuple[bool, str]:
    """Print the sample ticket (every element and special letter)."""
    try:
        await asyncio.wrap_future(rt.printer.submit(rt.printer.sample_layout(lang),
                                                    "print-test"))
    except PrinterError as exc:
        return False, f"{exc.__class__.__name__}: {exc}"
    return True, ""


async def reprint_last(rt: Runtime) -> tuple[str | None, bool, str]:
    """Print the last issued ticket again: (its number, printed, error)."""
    row = await asyncio.to_thread(rt.journal.last_issued)
    if row is None:
        return None, False, "no ticket issued yet"
    printed, error = await rt.service.reprint(row.ticket_id)
    return row.ticket_id, printed, error


def summary(rt: Runtime, printer: PrinterStatus) -> str:
    """API, printer and today's counts, in a few lines for staff (never the key)."""
    snap = rt.monitor.snapshot
    age = snap.age()
    api = (f"ok, {len(snap.queues)} queues, updated {age:.0f} s ago" if snap.error is None
           and age is not None else f"{snap.error or 'not reached yet'}")
    counts = rt.counts()
    today = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    if rt.config.priority.enabled:
        from kiosk.tickets.ledger import priority_summary
        try:
            today += f"\nPriority today: {priority_summary(rt.journal.priority_counts())}"
        except StoreError:  # reported among the faults below
            today += "\nPriority today: unknown"
    faults = "".join(f"\n{what.upper()} FAULT: {problem}"
                     for what, problem in rt.faults().items())
    text = (f"Kiosk {rt.config.kiosk.id} · kiosk {__version__}\n"
            f"API {rt.config.api.base_url}: {api}\n"
            f"Printer ({rt.config.printer.type}): {printer}\n"
            f"Today: {today}" + _forms_summary(rt))
    if rt.config.hub is not None:
        text += "\n" + numbers_summary(rt)
    if rt.demo_phone_link is not None:  # the demo's newcomer opens it in a browser
        number, link = rt.demo_phone_link
        text += f"\nDemo: {number}'s phone page: {link}"
    if rt.calls is not None:
        from kiosk.calls.feed import call_wait_summary, relay_summary
        try:
            waits = call_wait_summary(rt.journal.call_waits())
        except StoreError:  # reported among the faults below
            waits = "unknown"
        text += f"\n{relay_summary(rt.calls)}\nCalls today: {waits}"
    return text + faults


def numbers_summary(rt: Runtime) -> str:
    """Where numbers come from, in one line for staff (never the token)."""
    state = rt.numbers()
    block = rt.config.numbering.block
    keeper = rt.leases
    note = f"; the hub: {keeper.error}" if keeper is not None and keeper.error else ""
    text = ("Numbers: OFFLINE (numbered on this device until the hub answers)"
            if state == "offline" else
            f"Numbers: shared through the hub (blocks of {block}){note}")
    if rt.reports is not None:
        try:
            waiting, refused = rt.journal.outbox_size(), rt.journal.outbox_size(refused=True)
        except StoreError:  # reported among the faults
            return text
        text += (f"\nReports to the hub: {waiting} waiting"
                 + (f" ({rt.reports.error})" if waiting and rt.reports.error else "")
                 + (f", {refused} REFUSED (see the journal's outbox)" if refused else ""))
    return text


def _forms_summary(rt: Runtime) -> str:
    """Forms since start, as counts (what customers typed never reaches staff)."""
    forms = rt.forms
    if forms is None or not any(forms.forms.values()):
        return ""
    return f"\nForms: {forms.sent} sent, {forms.refused} sent back to the customer"
