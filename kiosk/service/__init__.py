"""Use cases: issue a ticket, keep the queues live, run the headless demo."""

from __future__ import annotations

from kiosk.service.issuing import TicketService
from kiosk.service.outcomes import IssueResult, Outcome, QueueView
from kiosk.service.queues import QueueMonitor, QueueSnapshot

__all__ = ["IssueResult", "Outcome", "QueueMonitor", "QueueSnapshot", "QueueView",
           "TicketService"]
