"""A day's tickets as staff and auditors read them: ``kiosk tickets [--date] [--json]``
(this device's, from its journal) and ``kiosk tickets --branch`` (every device's, from the
hub's ledger: :func:`branch_table`).

Read from the journal opened read-only, so it never disturbs a running kiosk. Each
attempt that was sent to the API (never an armed or void number) becomes one record:
``ticketId``, ``queue`` (``id``, ``name``), ``outcome`` (as ``kiosk ticket`` says it, or
``uncertain`` / ``unknown`` when the ticket's fate is not known: a timeout, a crash, or
an attempt still waiting for its answer), ``printed``, ``videskId``, ``time`` (when the
number was taken, in the branch's time zone), ``priority`` (the reason's id, ``true``
when no reason is asked, null for a regular ticket) and ``detail`` for staff.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.store import TicketRow
from kiosk.view.outcomes import Outcome, priority_value

KNOWN = {o.value for o in Outcome} | {"uncertain", "unknown"}


def outcome_of(row: TicketRow) -> str:
    """The row's outcome as reported: ``pending`` (in flight, or a crash before its
    recovery) and anything unexpected read ``unknown``."""
    return row.outcome if row.outcome in KNOWN else "unknown"


def record(row: TicketRow, timezone: str) -> dict[str, Any]:
    """One ticket for ``--json``."""
    taken = datetime.fromisoformat(row.created_at).astimezone(ZoneInfo(timezone))
    return {"ticketId": row.ticket_id, "queue": {"id": row.queue_id, "name": row.queue_name},
            "outcome": outcome_of(row), "printed": row.printed, "videskId": row.videsk_id,
            "time": taken.isoformat(timespec="seconds"), "day": row.day,
            "priority": priority_value(row.priority), "detail": row.detail or row.print_error}


def table(records: list[dict[str, Any]]) -> list[str]:
    """The same records as lines of a table for people."""
    lines = [f"{'time':<9}{'ticket':<12}{'outcome':<15}{'printed':<9}{'priority':<12}"
             f"{'queue':<28}videsk id"]
    for r in records:
        priority = r["priority"]
        shown = "-" if priority is None else "yes" if priority is True else str(priority)
        lines.append(f"{r['time'][11:19]:<9}{r['ticketId'][:11]:<12}{r['outcome']:<15}"
                     f"{'yes' if r['printed'] else 'no':<9}{shown[:11]:<12}"
                     f"{r['queue']['name'][:27]:<28}{r['videskId'] or '-'}")
    return lines


def _clock_time(value: Any, timezone: str) -> str:
    """``HH:MM:SS`` of an ISO time in the branch's zone ("-" when it is not one)."""
    try:
        return datetime.fromisoformat(str(value)).astimezone(ZoneInfo(timezone)).strftime(
            "%H:%M:%S")
    except (ValueError, TypeError):
        return "-"


def _text(value: Any, width: int) -> str:
    """``value`` as a cell: printable, cut to ``width`` (the hub's data, shown as data)."""
    shown = "-" if value is None else "yes" if value is True else str(value)
    return "".join(c if c.isprintable() else "?" for c in shown)[:width]


def branch_table(ledger: dict[str, Any], timezone: str) -> list[str]:
    """The hub's ledger of a branch's day (docs/hub.md) as lines for people: each
    ticket, the device that issued it, and its call (booth, time) once called. A number
    two devices reported (a fault: numbers never repeat in a branch) is marked ``!`` on
    each of its lines."""
    tickets = [t for t in ledger.get("tickets", []) if isinstance(t, dict)]
    lines = [f"Branch {_text(ledger.get('branch'), 40)}, {_text(ledger.get('date'), 10)}",
             f"{'time':<9}{'ticket':<14}{'device':<12}{'outcome':<11}{'priority':<10}"
             f"{'queue':<24}called"]
    for t in tickets:
        queue = t.get("queue")
        queue = queue if isinstance(queue, dict) else {}
        call = t.get("call")
        called = "-" if not isinstance(call, dict) else (
            f"{_clock_time(call.get('at'), timezone)} {_text(call.get('booth'), 24)}"
            + (" (again)" if call.get("recall") else ""))
        lines.append(f"{_clock_time(t.get('issuedAt'), timezone):<9}"
                     f"{_text(t.get('ticketId'), 12) + ('!' if t.get('conflict') else ''):<14}"
                     f"{_text(t.get('device'), 11):<12}"
                     f"{_text(t.get('outcome'), 10):<11}{_text(t.get('priority'), 9):<10}"
                     f"{_text(queue.get('name'), 23):<24}{called}")
    called_count = sum(1 for t in tickets if isinstance(t.get("call"), dict))
    lines.append(f"{len(tickets)} ticket(s), {called_count} called")
    repeated = len({str(t.get("ticketId")) for t in tickets if t.get("conflict")})
    if repeated:
        lines.append(f"! {repeated} number(s) reported by more than one device: a fault "
                     "(the relay's log names the devices)")
    return lines


def priority_summary(counts: dict[str, int]) -> str:
    """Issued priority tickets by reason, for staff: "senior 3, pregnant 1" ("no reason"
    where none is asked); "none" when there are none."""
    if not counts:
        return "none"
    return ", ".join(f"{reason or 'no reason'} {n}" for reason, n in counts.items())
