"""A device's state in one value: what ``status.json``, ``kiosk check``, the staff screen
and the heartbeat to the hub all show (docs/hub.md, "Heartbeats").

The core composes it (:mod:`kiosk.core.state`); the UI gets it over the link and puts it
in the staff's words (:mod:`kiosk.view.staffwords`); the hub gets :meth:`heartbeat`.
Every field is a word of a small fixed set, a count or a time: never a secret, a
customer value or a form field. Only :attr:`DeviceState.details` holds text (the
technical detail of a fault, for staff and IT); it never leaves the device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

ROLES = ("kiosk", "tablet", "display")
PRINTER = ("ok", "paper_low", "paper_out", "cover_open", "offline", "unknown", "none")
"""The printer, as the hub knows it: ``unknown`` is a printer that did not answer (or
cannot be asked), never taken for ``ok``; ``none``: no printer (a calling screen)."""
API = ("ok", "unreachable", "refused", "none")
"""The Videsk API: answering; not answering for three polls (or never); refusing the
key or the branch; ``none``: not used (a calling screen)."""
CLOCK = ("ok", "skewed", "wrong")
"""``skewed``: more than 5 min off the API's (tickets go by the API's time: a warning);
``wrong``: behind the journal's latest day (nothing is issued)."""
JOURNAL = ("ok", "fault", "unavailable", "none")
"""``fault``: records not written (tickets still issued); ``unavailable``: the journal
cannot be used (nothing is issued)."""
NUMBERS = ("shared", "offline", "local")
"""Leases from the hub; the offline format in use; no hub configured."""
HUB = ("ok", "unreachable", "refused", "waiting", "none")
"""The heartbeat's last answer: taken; not reached; refused (token); none yet; no hub
configured (this device's own view: never sent to the hub)."""
REASONS = ("api", "printer", "clock", "journal", "numbers")
"""Why a device is out of service, in the order they are looked for."""
STOPPING_PRINTER = frozenset({"paper_out", "cover_open", "offline"})
"""A printer in one of these cannot hand out a ticket: out of service (paper low is a
warning, never a reason to stop issuing)."""


@dataclass(frozen=True)
class DeviceState:
    """One device's state now (see the module's docstring)."""

    role: str
    version: str
    printer: str = "unknown"
    api: str = "ok"
    clock: str = "ok"
    clock_skew_s: float | None = None
    """The API's time minus this device's, in seconds (None: the API not heard yet)."""
    journal: str = "ok"
    numbers: str = "local"
    hub: str = "none"
    tickets: dict[str, int] = field(default_factory=dict)
    """Today's attempts by outcome (``issued``, ``no_agents``, ...), plus ``unprinted``."""
    priority_today: dict[str, int] = field(default_factory=dict)
    """Today's issued priority tickets by reason id (``""``: no reason asked)."""
    forms_sent: int = 0
    """Forms sent to the API today (counts only: never what was typed)."""
    forms_refused: int = 0
    """Forms the API sent back to the customer today."""
    last_ticket_at: str | None = None
    """When the last ticket was issued (UTC, ISO 8601)."""
    called_today: int = 0
    call_wait_median_s: float | None = None
    """Today's median time from ticket to call (None: none called, or no relay)."""
    uptime_s: int = 0
    details: dict[str, str] = field(default_factory=dict)
    """The technical detail of each fault, by concern (``api``, ``printer``...): for staff
    and IT on this device only (never in the heartbeat)."""

    @property
    def reason(self) -> str | None:
        """Why the device is out of service (None: in service)."""
        if self.api in ("unreachable", "refused"):
            return "api"
        if self.printer in STOPPING_PRINTER:
            return "printer"
        if self.clock == "wrong":
            return "clock"
        if self.journal == "unavailable":
            return "journal"
        return None

    @property
    def in_service(self) -> bool:
        """Whether a customer can get a ticket here now."""
        return self.reason is None

    @property
    def tickets_today(self) -> int:
        """Tickets issued today (the API took them)."""
        return self.tickets.get("issued", 0)

    def words(self) -> tuple[str, ...]:
        """What a change of is told to the hub at once (not the counts)."""
        return (self.printer, self.api, self.clock, self.journal, self.numbers,
                str(self.reason))

    def heartbeat(self) -> dict[str, Any]:
        """The body of ``PUT /v1/devices/{id}/state`` (docs/hub.md): words, counts, times."""
        return {"role": self.role, "version": self.version, "in_service": self.in_service,
                "reason": self.reason, "printer": self.printer, "api": self.api,
                "clock": self.clock,
                "clock_skew_s": None if self.clock_skew_s is None
                else round(self.clock_skew_s, 1),
                "journal": self.journal, "numbers": self.numbers,
                "tickets_today": self.tickets_today, "forms_today": self.forms_sent,
                "priority_today": dict(self.priority_today),
                "last_ticket_at": self.last_ticket_at, "uptime_s": self.uptime_s}

    def to_json(self) -> dict[str, Any]:
        """Everything, with ``in_service`` and ``reason`` (status.json, the link)."""
        return {**asdict(self), "in_service": self.in_service, "reason": self.reason}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceState:
        """The state :meth:`to_json` wrote (unknown keys ignored)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
