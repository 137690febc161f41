"""Tickets on paper: a layout model, ESC/POS rendering, backends, status."""

from __future__ import annotations

from kiosk.printing.model import TicketData, TicketLayout, build_layout
from kiosk.printing.printer import TicketPrinter, make_backend

__all__ = ["TicketData", "TicketLayout", "TicketPrinter", "build_layout", "make_backend"]
