"""The ticket printer the service talks to: one worker thread, one job at a time.

A job: open a fresh connection → ask the printer's status (``DLE EOT``) → if it can print,
send the whole ticket in one write → ask again, which tells a ticket that came out from
one cut short (paper ran out, cover opened, connection lost) → close. Nothing is ever
re-sent automatically, so a retry can never print a ticket twice; a job that broke off is
reported as failed (:class:`~kiosk.errors.PrintFailed`), and the ticket counts as unprinted.

All work runs on the printer's own thread (:meth:`TicketPrinter.submit`), never on the UI
or the asyncio loop; :attr:`TicketPrinter.last_status` is what the last job or status query
found, for the UI, the admin screen and ``kiosk check``.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kiosk.config import PrinterConfig, TicketConfig
from kiosk.errors import (
    ConfigError,
    PrinterError,
    PrinterNotReady,
    PrinterUnavailable,
    PrintFailed,
)
from kiosk.printing import status as st
from kiosk.printing.backends import Backend, Channel, VirtualBackend, make_backend
from kiosk.printing.model import TicketData, TicketLayout, build_layout

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

SPECIAL_LETTERS = "áéíóú ü ñ Ñ ç ã õ â ê ô à ¿ ¡ º €"
"""Every letter a Spanish or Portuguese ticket needs; the test ticket prints them all."""


def sample_ticket(lang: str = "es") -> TicketData:
    """A ticket with every element, for ``kiosk print-test``."""
    return TicketData(ticket_id="A-042", queue_id="sample", queue_name="Atención a clientes",
                      issued_at=datetime.now(UTC), language=lang,
                      branch_label="Sucursal Providencia", wait_minutes=4.4,
                      videsk_id="652a1ae848880e168884e49b")


class TicketPrinter:
    """Prints tickets; thread-safe."""

    def __init__(self, printer: PrinterConfig, ticket: TicketConfig, *, timezone: str = "UTC",
                 backend: Backend | None = None) -> None:
        self.cfg = printer
        self.ticket_cfg = ticket
        self.timezone = timezone
        self.backend = backend or make_backend(printer)
        self._logo: Image.Image | None = None
        self._logo_raster: bytes | None = None
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="printer")
        self._prepared: Future[None] | None = None
        self.last_status = st.PrinterStatus(
            st.State.NONE if printer.type == "none"
            else st.State.UNKNOWN if self.backend.can_query and printer.status_query
            else st.State.NOT_QUERIED)

    def _prepare(self) -> None:
        # Rendering (Pillow, python-escpos) loads here, on the printer's thread, and not
        # at import: a kiosk shows its first frame before it needs to print.
        from kiosk.printing.render import codepage_number, logo_image, raster
        codepage_number(self.cfg.profile, self.cfg.codepage)
        if self.ticket_cfg.logo is not None:  # rasterised once, pasted into every job
            self._logo = logo_image(self.ticket_cfg.logo, self.cfg.paper_mm)
            self._logo_raster = raster(self._logo, self.cfg.profile)

    def warm_up(self) -> Future[None]:
        """Check the profile and code page and rasterise the logo, once, on the printer's
        thread (python-escpos loads its printer database then: ~0.4 s of CPU)."""
        with self._lock:
            if self._prepared is None:
                try:
                    self._prepared = self._worker.submit(self._prepare)
                except RuntimeError:  # closed: nothing will print any more
                    done: Future[None] = Future()
                    done.set_exception(PrinterUnavailable("the printer was closed"))
                    return done
            return self._prepared

    def ready(self) -> None:
        """Wait for the printer's set-up; ConfigError for a bad profile, code page or logo."""
        prepared = self.warm_up()
        if threading.current_thread().name.startswith("printer"):
            if not prepared.done():  # called from a job on the printer's own thread
                self._prepare()
            return
        prepared.result()

    # ----------------------------------------------------------------- rendering

    def layout(self, data: TicketData) -> TicketLayout:
        """What ``data`` looks like on this printer's paper."""
        return build_layout(data, self.ticket_cfg, paper_mm=self.cfg.paper_mm,
                            timezone=self.timezone, logo=self._logo is not None)

    def render(self, data: TicketData | TicketLayout) -> bytes:
        """The ESC/POS bytes for a ticket."""
        from kiosk.printing.render import render
        self.ready()
        layout = data if isinstance(data, TicketLayout) else self.layout(data)
        return render(layout, profile=self.cfg.profile, codepage=self.cfg.codepage,
                      logo=self._logo_raster)

    def preview(self, data: TicketData | TicketLayout) -> Image.Image:
        """The ticket as it will look on paper."""
        from kiosk.printing.preview import render_preview
        self.ready()
        layout = data if isinstance(data, TicketLayout) else self.layout(data)
        return render_preview(layout, codepage=self.cfg.codepage, logo=self._logo)

    def sample_layout(self, lang: str = "es") -> TicketLayout:
        """The test ticket: every element, and every special letter in the footer."""
        layout = self.layout(sample_ticket(lang))
        qr = layout.qr or "https://example.com/t/A-042"
        return replace(layout, qr=qr, footer=(*layout.footer, SPECIAL_LETTERS))

    # ----------------------------------------------------------------- jobs

    def submit(self, data: TicketData | TicketLayout, job: str | None = None) -> Future[None]:
        """Print on the printer's thread; the future fails with a PrinterError."""
        return self._worker.submit(self.print_ticket, data, job)

    def submit_status(self) -> Future[st.PrinterStatus]:
        """Ask the printer's status on the printer's thread."""
        return self._worker.submit(self.status)

    def print_ticket(self, data: TicketData | TicketLayout, job: str | None = None) -> None:
        """Print one ticket now (on the calling thread), or raise PrinterError."""
        layout = data if isinstance(data, TicketLayout) else self.layout(data)
        name = job or layout.number
        try:
            payload = self.render(layout)
        except ConfigError as exc:  # reported at start-up by `kiosk check`; here: unprinted
            raise PrinterUnavailable(f"printer config: {exc}") from exc
        with self._lock:
            try:
                self._job(payload, name)
            except PrinterError as exc:
                log.warning("ticket %s not printed: %s: %s", name, exc.__class__.__name__, exc)
                raise
            if isinstance(self.backend, VirtualBackend):
                from kiosk.printing.preview import save_preview
                save_preview(layout, self.backend.path_for(name, ".png"),
                             codepage=self.cfg.codepage, logo=self._logo)
        log.info("ticket %s printed (%d bytes, %s)", name, len(payload), self.backend.name)

    def status(self) -> st.PrinterStatus:
        """Ask the printer now (on the calling thread)."""
        if self.cfg.type == "none":
            return st.PrinterStatus(st.State.NONE)
        if not (self.backend.can_query and self.cfg.status_query):
            return st.PrinterStatus(st.State.NOT_QUERIED)
        with self._lock:
            try:
                ch = self.backend.open("status")
            except PrinterUnavailable as exc:
                self.last_status = st.PrinterStatus(st.State.UNREACHABLE, detail=str(exc))
                return self.last_status
            try:
                self.last_status = self._query(ch, self.cfg.timeout_s)
            except PrintFailed as exc:
                self.last_status = st.PrinterStatus(st.State.UNREACHABLE, detail=str(exc))
            finally:
                ch.close()
        return self.last_status

    def close(self) -> None:
        """Finish queued jobs and stop the worker thread."""
        self._worker.shutdown(wait=True)

    # ----------------------------------------------------------------- protocol

    def _query(self, ch: Channel, timeout: float) -> st.PrinterStatus:
        replies: list[int | None] = []
        for n in st.QUERIES:
            ch.write(st.DLE_EOT + bytes([n]))
            got = ch.read(1, timeout)
            replies.append(got[0] if got else None)
            if not got:
                break  # a printer that does not answer once will not answer the next
        replies += [None] * (len(st.QUERIES) - len(replies))
        return st.parse(*replies)

    def _job(self, payload: bytes, name: str) -> None:
        try:
            ch = self.backend.open(name)
        except PrinterUnavailable as exc:
            self.last_status = st.PrinterStatus(st.State.UNREACHABLE, detail=str(exc))
            raise
        query = self.backend.can_query and self.cfg.status_query
        try:
            if query:
                before = self._query(ch, self.cfg.timeout_s)
                self.last_status = before
                if not before.can_print:
                    raise PrinterNotReady(f"printer {before}")
            ch.write(payload)
            ch.finish()
            if query:
                after = self._query(ch, self.cfg.timeout_s)
                self.last_status = after
                if not after.can_print:
                    raise PrintFailed(f"the printer stopped during the ticket: {after}")
        except PrintFailed:
            if not query:
                self.last_status = st.PrinterStatus(st.State.NOT_QUERIED, detail="last job failed")
            raise
        finally:
            ch.close()
