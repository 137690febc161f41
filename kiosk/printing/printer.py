"""The ticket printer the service talks to: layout, render, send, one job at a time."""

from __future__ import annotations

import logging
import threading

from kiosk.config import PrinterConfig, TicketConfig
from kiosk.printing.backends import Backend, FileBackend, NoBackend, VirtualBackend
from kiosk.printing.model import TicketData, TicketLayout, build_layout
from kiosk.printing.render import codepage_number, render

log = logging.getLogger(__name__)


def make_backend(cfg: PrinterConfig) -> Backend:
    """The backend for ``printer.type``."""
    if cfg.type == "file":
        assert cfg.path is not None
        return FileBackend(cfg.path)
    if cfg.type == "virtual":
        assert cfg.path is not None
        return VirtualBackend(cfg.path)
    return NoBackend()


class TicketPrinter:
    """Prints tickets; thread-safe (one job at a time)."""

    def __init__(self, printer: PrinterConfig, ticket: TicketConfig, *, timezone: str = "UTC",
                 backend: Backend | None = None) -> None:
        self.cfg = printer
        self.ticket_cfg = ticket
        self.timezone = timezone
        self.backend = backend or make_backend(printer)
        self._lock = threading.Lock()
        codepage_number(printer.profile, printer.codepage)  # fail at start-up, not at a ticket

    def layout(self, data: TicketData) -> TicketLayout:
        """What ``data`` looks like on this printer's paper."""
        return build_layout(data, paper_mm=self.cfg.paper_mm, timezone=self.timezone,
                            header=self.ticket_cfg.header, footer=self.ticket_cfg.footer,
                            qr_template=self.ticket_cfg.qr)

    def render(self, data: TicketData) -> bytes:
        """The ESC/POS bytes for ``data``."""
        return render(self.layout(data), profile=self.cfg.profile, codepage=self.cfg.codepage)

    def print_ticket(self, ticket: TicketData) -> None:
        """Print one ticket or raise :class:`kiosk.errors.PrinterError`."""
        payload = self.render(ticket)
        with self._lock:
            self.backend.send(payload, ticket_id=ticket.ticket_id)
        log.info("ticket %s printed (%d bytes, %s)", ticket.ticket_id, len(payload),
                 self.backend.name)
