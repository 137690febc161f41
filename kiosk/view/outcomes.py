"""What issuing a ticket can come to, and the views the use cases return."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, TypeVar

from kiosk.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    FormRequired,
    NoAgents,
    NotFound,
    RequestInvalid,
    Unauthorized,
    Unprocessable,
)

if TYPE_CHECKING:  # this module stays light: `kiosk run` imports it before anything else
    import asyncio

Q = TypeVar("Q")
"""What a snapshot's queues are: the API's models in the core, nothing in the UI."""


class Outcome(StrEnum):
    """The result of one attempt to issue a ticket."""

    ISSUED = "issued"
    """The API answered 201: the customer is in the queue (printed or not)."""
    NO_AGENTS = "no_agents"
    """406: nobody in that queue can take a call now; ``alternatives`` lists who can."""
    FORM_REQUIRED = "form_required"
    """428: the queue needs a form first."""
    NOT_FOUND = "not_found"
    """The branch or queue is wrong (a config problem)."""
    UNAUTHORIZED = "unauthorized"
    """401/403: the API key is wrong, expired or revoked."""
    REJECTED = "rejected"
    """422 after retries, or a request the API (or we) refused as invalid."""
    UNAVAILABLE = "unavailable"
    """Network, timeout, 5xx, 429 or a malformed answer."""


@dataclass(frozen=True, slots=True)
class QueueView:
    """A queue as the kiosk shows it."""

    id: str
    name: str
    """Display name in the requested language (config override, else the API's)."""
    api_name: str
    users: int
    """Agents available now."""
    avg_waiting_time: float
    """As the API gave it."""
    wait_minutes: float
    """``avg_waiting_time`` converted to minutes."""
    prefix: str
    needs_form: bool = False
    """The queue asks for a few details (a form) before a number is given."""
    age_s: float | None = None
    """Seconds since this queue's data came from the API, when the view was made (a queue
    whose item in the list was unreadable keeps its last good data, growing older)."""


@dataclass(frozen=True, slots=True)
class IssueResult:
    """What one tap (or one ``kiosk ticket``) came to."""

    outcome: Outcome
    ticket_id: str
    """The number reserved for this attempt, exactly as sent to the API."""
    queue: QueueView
    message: str
    """For the customer, in their language."""
    language: str
    videsk_id: str | None = None
    printed: bool | None = None
    """True/False once printing was tried; None when nothing was to be printed."""
    print_error: str = ""
    alternatives: tuple[QueueView, ...] = ()
    """For ``no_agents``: the queues that have agents now."""
    uncertain: bool = False
    """The API may have taken the ticket (timeout, dropped connection): staff must check."""
    detail: str = ""
    """For logs and the admin screen; never shown to customers."""
    issued_at: datetime | None = None
    row_id: int | None = field(default=None, repr=False)
    qr: str | None = field(default=None, repr=False)
    """What the ticket's QR code says (the phone page's link, or from ``ticket.qr``), for
    the screen too."""
    qr_phone: bool = False
    """The QR opens the phone page: the screen says "follow your turn on your phone"."""
    printing: asyncio.Future[tuple[bool, str]] | None = field(default=None, repr=False,
                                                              compare=False)
    """With ``issue(wait_print=False)``: resolves to (printed, error) when the paper is out."""
    priority: str | None = None
    """A priority ticket: its reason id (``""`` when no reason is asked); None: regular."""

    def as_json(self) -> dict[str, object]:
        """The ``kiosk ticket --json`` object."""
        out: dict[str, object] = {
            "outcome": self.outcome.value,
            "ticketId": self.ticket_id,
            "queue": {"id": self.queue.id, "name": self.queue.name},
            "videskId": self.videsk_id,
            "printed": bool(self.printed),
            "message": self.message,
            "priority": priority_value(self.priority),
            "qr": self.qr,
        }
        if self.outcome is Outcome.NO_AGENTS:
            out["alternatives"] = [{"id": q.id, "name": q.name, "users": q.users}
                                   for q in self.alternatives]
        if self.uncertain:
            out["uncertain"] = True
        return out


def priority_value(priority: str | None) -> str | bool | None:
    """A ticket's priority as JSON says it (``integrationData.priority``, ``kiosk ticket
    --json``, ``kiosk tickets --json``): the reason's id, ``true`` when no reason was
    asked, null for a regular ticket."""
    if priority is None:
        return None
    return priority or True


def outcome_for(exc: ApiError) -> Outcome:
    """What an API error comes to for the customer."""
    if isinstance(exc, NoAgents):
        return Outcome.NO_AGENTS
    if isinstance(exc, FormRequired):
        return Outcome.FORM_REQUIRED
    if isinstance(exc, NotFound):
        return Outcome.NOT_FOUND
    if isinstance(exc, Unauthorized | Forbidden):
        return Outcome.UNAUTHORIZED
    if isinstance(exc, Unprocessable | BadRequest | RequestInvalid):
        return Outcome.REJECTED
    return Outcome.UNAVAILABLE


@dataclass(frozen=True, slots=True)
class QueueSnapshot(Generic[Q]):
    """The last good list of queues, and how the last poll went. The core's holds the
    API's queues (``QueueSnapshot[Queue]``); the UI's copy holds none, only the age and
    the error (:mod:`kiosk.link.codec`)."""

    queues: tuple[Q, ...] = ()
    fetched_at: float | None = None
    """Monotonic time of the last good poll (None: never)."""
    error: ApiError | None = None
    """The last poll's error, if the last poll failed."""
    failures: int = 0
    """Consecutive failed polls."""
    seen: dict[str, float] = field(default_factory=dict, compare=False)
    """Monotonic time each queue's data was last read (a queue missing from the last
    answer keeps its last good data, for a while: see :mod:`kiosk.tickets.queues`)."""

    def queue_age(self, queue_id: str, now: float | None = None) -> float | None:
        """Seconds since ``queue_id``'s data was read (None: never)."""
        seen = self.seen.get(queue_id, self.fetched_at)
        if seen is None:
            return None
        current: float = time.monotonic() if now is None else now
        return current - seen

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the last good poll."""
        if self.fetched_at is None:
            return None
        current: float = time.monotonic() if now is None else now
        return current - self.fetched_at

    def is_stale(self, period_s: float, now: float | None = None) -> bool:
        """No good data, or none in the last three periods."""
        age = self.age(now)
        return age is None or age > 3 * period_s
