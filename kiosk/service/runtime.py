"""Everything one kiosk process needs, built from its config in one place.

The CLI, the UI and the demo all start from :func:`open_runtime`, so they issue tickets
through the same objects and the same use case.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr

from kiosk.api import QmsClient
from kiosk.api.client import DEFAULT_RETRY, RetryPolicy
from kiosk.config import Config
from kiosk.errors import ApiError
from kiosk.printing import TicketPrinter
from kiosk.service.issuing import TicketService
from kiosk.service.queues import QueueMonitor
from kiosk.store import Journal

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """The wired objects of one kiosk."""

    config: Config
    api: QmsClient
    journal: Journal
    printer: TicketPrinter
    monitor: QueueMonitor
    service: TicketService

    async def branch_label(self) -> str:
        """The branch's label from config, else from the API (empty if unreachable)."""
        if self.config.ticket.branch_label:
            return self.config.ticket.branch_label
        try:
            branches = await self.api.list_branches()
        except ApiError as exc:
            log.info("branch label unavailable: %s", exc)
            return ""
        for b in branches:
            if self.config.branch in (b.id, getattr(b, "integrationId", None)):
                return b.label or b.name
        return ""

    async def aclose(self) -> None:
        """Stop polling, close the HTTP pool and the journal."""
        await self.monitor.stop()
        await self.service.aclose()
        await self.api.aclose()
        await asyncio.to_thread(self.printer.close)
        await asyncio.to_thread(self.journal.close)


def open_runtime(
    config: Config,
    api_key: SecretStr | str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    clock: Callable[[], datetime] | None = None,
    printer: TicketPrinter | None = None,
) -> Runtime:
    """Wire a kiosk from ``config``; recovers attempts a crash left pending."""
    api = QmsClient(config.api.base_url, api_key, timeout_s=config.api.timeout_s,
                    transport=transport, retry=retry)
    journal = Journal(config.kiosk.data_dir, kiosk_id=config.kiosk.id,
                      timezone=config.kiosk.timezone, clock=clock or _utcnow)
    recovered = journal.recover()
    if recovered:
        log.warning("%d ticket attempt(s) were interrupted by a crash; marked 'unknown' in %s",
                    recovered, journal.path)
    printer = printer or TicketPrinter(config.printer, config.ticket,
                                       timezone=config.kiosk.timezone)
    monitor = QueueMonitor(api, config.branch, period_s=config.ui.refresh_s)
    service = TicketService(config, api, journal, printer, monitor=monitor,
                            clock=clock or _utcnow)
    return Runtime(config, api, journal, printer, monitor, service)
