"""Local storage: the SQLite journal of ticket attempts and the ticket numbers."""

from __future__ import annotations

from kiosk.store.journal import Journal, TicketRow, derive_prefix

__all__ = ["Journal", "TicketRow", "derive_prefix"]
