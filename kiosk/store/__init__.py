"""Local storage: the SQLite journal of ticket attempts, and the ticket numbers.

- ``journal.py``  :class:`Journal`: every number reserved, claimed and answered, fsynced

May import only the foundation (and SQLite, from the standard library).
"""

from __future__ import annotations

from kiosk.store.journal import Journal, TicketRow, derive_prefix

__all__ = ["Journal", "TicketRow", "derive_prefix"]
