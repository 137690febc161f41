"""The reports of this device's tickets, delivered to the hub from the journal's outbox
(docs/hub.md "The branch's day").

The ticket service writes a report in the same transaction as the ticket's outcome
(:meth:`kiosk.store.journal.Journal.finish`), for each ticket the customer may be queued
with (``issued``, ``uncertain``). :class:`ReportSender` delivers them in the background,
oldest first: at least once (a report leaves the outbox only once the hub answered 201 or
200, so a crash between the hub's answer and the delete sends it again, which the hub
takes as a repeat), with a growing, jittered wait while the hub is away or cannot store
it (no answer, 5xx, 401/403/404: a config staff can fix), and from start-up on (whatever
a crash left is drained first). A report the hub refuses for good (:data:`FINAL`: a 400;
a 409, which relays before 4 December 2026 gave a number another device had reported:
now kept, a 201 "conflict") is set aside in the outbox with
why, logged, never sent again, and never holds up the reports behind it. Nothing here is
on a tap's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from kiosk.errors import HubError, StoreError
from kiosk.hub.client import DEFAULT_RETRY, HubClient, RetryWait
from kiosk.store import Journal
from kiosk.tasks import cancel

log = logging.getLogger(__name__)

FINAL = frozenset({400, 409, 413, 422})
"""Answers that sending the same report again can never change (docs/hub.md)."""
BATCH = 50
"""Reports read from the outbox at a time."""
GATHER_S = 0.25
"""After a report is written, how long the sender waits before delivering: the tap it
came from finishes first (printing, its screen), and a burst goes out together."""


class ReportSender:
    """Delivers the outbox's reports to the hub; start with :meth:`start`."""

    def __init__(self, journal: Journal, hub: HubClient, *,
                 retry: RetryWait = DEFAULT_RETRY, gather_s: float = GATHER_S) -> None:
        self.journal = journal
        self.hub = hub
        self.retry = retry
        self.gather_s = gather_s
        self.failures = 0
        """Rounds in a row that ended on a failure."""
        self.error = ""
        """Why the last delivery failed (empty once one succeeded)."""
        self.sent = 0
        """Reports the hub took since start (repeats included)."""
        self.refused = 0
        """Reports the hub refused for good since start."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start delivering (in the running loop), beginning with what is there."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="reports")

    def notify(self) -> None:
        """A report was written: deliver it soon (at once unless the hub is away: its
        growing wait goes on)."""
        if not self.failures:
            self._wake.set()

    async def aclose(self) -> None:
        """Stop; what is left stays in the outbox for the next start."""
        await cancel(self._task)
        self._task = None

    async def drain(self) -> int:
        """Deliver every report in the outbox, oldest first; returns how many.
        :class:`HubError` at the first one the hub did not take (it and the rest stay)."""
        done = 0
        while batch := await asyncio.to_thread(self.journal.outbox, BATCH):
            for report_id, payload in batch:
                try:
                    await self.hub.report(payload)
                except HubError as exc:
                    if exc.status in FINAL:
                        log.error("reports: the hub refused the report of ticket %s for "
                                  "good (%s); kept in the journal's outbox, not sent again",
                                  payload.get("ticketId"), exc)
                        await asyncio.to_thread(self.journal.refused, report_id, str(exc))
                        self.refused += 1
                        continue
                    await asyncio.to_thread(self.journal.not_delivered, report_id, str(exc))
                    raise
                await asyncio.to_thread(self.journal.delivered, report_id)
                done += 1
                self.sent += 1
        return done

    async def _run(self) -> None:
        while True:
            try:
                await self.drain()
                if self.failures:
                    log.warning("reports: the hub takes them again (after %d failed "
                                "round(s))", self.failures)
                self.failures, self.error = 0, ""
            except HubError as exc:
                self.failures += 1
                self.error = str(exc)
                log.log(logging.WARNING if self.failures in (1, 10) else logging.DEBUG,
                        "reports: not delivered (%s); kept, trying again", exc)
            except StoreError as exc:
                self.failures += 1
                self.error = f"the journal: {exc}"
                log.error("reports: the outbox cannot be read or written: %s", exc)
            self._wake.clear()
            wait = self.retry.delay(self.failures) if self.failures else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            if not self.failures:
                await asyncio.sleep(self.gather_s)
