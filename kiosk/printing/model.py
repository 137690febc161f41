"""What a ticket says, independent of how it is printed or previewed.

:class:`TicketData` is what the service hands over (the facts of one issued ticket);
:func:`build_layout` turns it and the config into a :class:`TicketLayout`, the one model
that both the ESC/POS renderer and the PNG preview draw, so paper and preview agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from kiosk.config import TicketConfig
from kiosk.i18n import MONTHS, format_wait, t

# Printable dots per line and characters per line (Font A, 12 dots wide) per paper width.
PAPER_DOTS = {58: 384, 80: 576}
PAPER_COLUMNS = {58: 32, 80: 48}
DOTS_PER_MM = 8  # 203 dpi


@dataclass(frozen=True, slots=True)
class TicketData:
    """The facts of one issued ticket."""

    ticket_id: str
    """The number exactly as sent to the API (and read by the agent and the screens)."""
    queue_id: str
    queue_name: str
    """In the customer's language (config override) or as the API names it."""
    issued_at: datetime
    """Aware datetime of the API's acceptance."""
    language: str = "es"
    branch_label: str = ""
    wait_minutes: float | None = None
    """Estimated wait from the queue's ``avgWaitingTime``, in minutes."""
    videsk_id: str | None = None
    priority: bool = False
    """A priority ticket: it says "Atención preferente" under the number."""
    phone_url: str | None = field(default=None, repr=False)
    """The phone page's link (``{hub.public_url}/t/{token}``): the QR holds it, and the
    ticket says "Follow your turn on your phone" under it. Never logged."""


@dataclass(frozen=True, slots=True)
class TicketLayout:
    """Everything drawn on one ticket, top to bottom (empty strings are left out)."""

    paper_mm: int
    header: tuple[str, ...]
    number_label: str
    number: str
    priority: str
    """"Atención preferente" on a priority ticket (never its reason); else empty."""
    queue: str
    branch: str
    when: str
    wait: str
    qr: str | None
    footer: tuple[str, ...]
    logo: bool = False
    qr_caption: str = ""
    """Under the QR: "Follow your turn on your phone" when it opens the phone page."""

    @property
    def columns(self) -> int:
        """Characters per line in the normal font."""
        return PAPER_COLUMNS[self.paper_mm]

    @property
    def dots(self) -> int:
        """Printable width in dots."""
        return PAPER_DOTS[self.paper_mm]


def arrival_line(moment: datetime, lang: str) -> str:
    """When the customer took the number, as the ticket says it: "Llegada 10:42 · 27 nov
    2026" (``moment`` in the branch's time zone)."""
    day = f"{moment.day} {t(MONTHS[moment.month - 1], lang)} {moment.year}"
    return t("Arrival {time}", lang, time=f"{moment.hour:02d}:{moment.minute:02d}") + \
        f" · {day}"


def qr_content(template: str | None, data: TicketData) -> str | None:
    """The QR's content: the phone page's link when the ticket has one, else from its
    template, or None for no QR."""
    if data.phone_url:
        return data.phone_url
    if not template:
        return None
    return template.format(ticketId=data.ticket_id, videskId=data.videsk_id or "",
                           queueId=data.queue_id)


def build_layout(data: TicketData, ticket: TicketConfig, *, paper_mm: int = 80,
                 timezone: str = "UTC", logo: bool = False) -> TicketLayout:
    """The ticket's layout in the customer's language."""
    lang = data.language
    when = ""
    if ticket.show_datetime:
        when = arrival_line(data.issued_at.astimezone(ZoneInfo(timezone)), lang)
    wait = ""
    if ticket.show_wait and data.wait_minutes is not None:
        wait = t("Estimated wait: {wait}", lang, wait=format_wait(data.wait_minutes, lang))
    return TicketLayout(
        paper_mm=paper_mm, header=tuple(ticket.lines("header", lang)),
        number_label=t("Your number", lang), number=data.ticket_id,
        priority=t("Priority service", lang) if data.priority else "", queue=data.queue_name,
        branch=data.branch_label if ticket.show_branch else "", when=when, wait=wait,
        qr=qr_content(ticket.qr, data), footer=tuple(ticket.lines("footer", lang)), logo=logo,
        qr_caption=t("Follow your turn on your phone", lang) if data.phone_url else "")
