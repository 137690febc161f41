"""Tickets on paper: a layout model, ESC/POS rendering, a PNG preview, backends, status.

- ``model.py``     :class:`TicketData` (the facts) → :class:`TicketLayout` (what is drawn)
- ``render.py``    the layout as ESC/POS bytes (python-escpos), in one pinned code page
- ``preview.py``   the layout as a PNG that looks like the paper
- ``text.py``      encoding with the closest-ASCII fallback
- ``backends.py``  network, serial, usb, file, cups, virtual, none
- ``status.py``    ``DLE EOT`` replies parsed into a :class:`PrinterStatus`
- ``printer.py``   :class:`TicketPrinter`: the worker that runs jobs one at a time

May import :mod:`kiosk.config` (the printer's and ticket's sections) and the foundation.
"""

from __future__ import annotations

from kiosk.printing.backends import make_backend
from kiosk.printing.model import TicketData, TicketLayout, build_layout
from kiosk.printing.printer import TicketPrinter, sample_ticket
from kiosk.printing.status import Paper, PrinterStatus, State

__all__ = ["Paper", "PrinterStatus", "State", "TicketData", "TicketLayout", "TicketPrinter",
           "build_layout", "make_backend", "sample_ticket"]
