"""Numbers leased ahead, in blocks (the hi/lo way; docs/hub.md "Numbers").

:class:`LeaseKeeper` runs in the core, in the background: for every sequence the device
offers (a queue's prefix, ``priority:A`` for its priority tickets) it keeps a block of
today's numbers ahead, recorded (fsynced) in the journal before a number of it is used
(:meth:`kiosk.store.journal.Journal.record_lease`), and asks the hub for the next block
as soon as half of one is used (:meth:`LeaseKeeper.used` wakes it). A tap never waits for
it: the journal takes the number from the blocks already on disk
(:meth:`~kiosk.store.journal.Journal.reserve`), and with none left (the hub away) from
the device's own offline sequence, read with ``numbering.offline_format``.

Back to shared numbers when the hub answers: the keeper's ``on_lease`` callback tells
the ticket service, which clears the ``numbers`` fault staff saw and re-arms a number
armed offline. A block is leased for the branch-local day the journal numbers on; the
hub refuses another day (409), and the journal never uses a block of another day.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from kiosk.errors import HubError, StoreError
from kiosk.hub.client import DEFAULT_RETRY, HubClient, RetryWait
from kiosk.store import Journal
from kiosk.tasks import cancel

log = logging.getLogger(__name__)

PERIOD_S = 30.0
"""With nothing to do, the keeper looks again this often (and at the local midnight)."""
UNKNOWN_S = 1.0
"""How soon the keeper looks again while it knows no sequence yet (the queues not yet
read from the API)."""


class LeaseKeeper:
    """Keeps a block of numbers ahead per sequence; start with :meth:`start`."""

    def __init__(self, journal: Journal, hub: HubClient, block: int,
                 sequences: Callable[[], list[str]], *,
                 on_lease: Callable[[str], None] | None = None,
                 retry: RetryWait = DEFAULT_RETRY, period_s: float = PERIOD_S) -> None:
        self.journal = journal
        self.hub = hub
        self.block = block
        self.sequences = sequences
        """The sequences the device offers now (asked at every round)."""
        self.on_lease = on_lease
        self.retry = retry
        self.period_s = period_s
        self.failures = 0
        """Rounds in a row in which the hub gave no block."""
        self.error = ""
        """Why the hub gave no block last time (empty once it did)."""
        self.leases = 0
        """Blocks recorded since start."""
        self._wanted: set[str] = set()
        self._left: dict[tuple[str, str], int] = {}
        """(day, sequence) -> numbers left in its blocks, as last read from the journal,
        less those :meth:`used` since: a tap wakes the keeper only when a block is due,
        so the keeper's own work stays off the taps in between."""
        self._known = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start keeping blocks ahead (in the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="leases")

    def used(self, sequence: str) -> None:
        """A number of ``sequence`` was taken: wake the keeper when its next block is due
        (at half a block left, as far as the keeper knows)."""
        self._wanted.add(sequence)
        key = (self.journal.today(), sequence)
        left = self._left.get(key, 0) - 1
        self._left[key] = left
        if left * 2 <= self.block and not self.failures:  # the hub away: its growing wait
            self._wake.set()                              # goes on, taps or not

    async def aclose(self) -> None:
        """Stop (a request under way is abandoned: its block is never used)."""
        await cancel(self._task)
        self._task = None

    async def top_up(self) -> int:
        """One round: for each sequence offered (or used) with half a block or less left
        today, lease the next block and record it. Returns the blocks recorded;
        :class:`HubError` when the hub gave none that was due (the rest are kept)."""
        recorded = 0
        failed: HubError | None = None
        wanted = {*self.sequences(), *self._wanted}
        self._known = bool(wanted)
        for sequence in sorted(wanted):
            day = self.journal.today()
            left = await asyncio.to_thread(self.journal.lease_left, sequence, day)
            self._left[(day, sequence)] = left
            if left * 2 > self.block:
                continue
            try:
                lease = await self.hub.lease(sequence, day, self.block)
            except HubError as exc:
                failed = failed or exc
                continue
            if await asyncio.to_thread(self.journal.record_lease, lease.sequence, lease.day,
                                       lease.first, lease.last):
                self._left[(day, sequence)] = left + lease.last - lease.first + 1
                recorded += 1
                self.leases += 1
                log.debug("numbers %s %d-%d leased for %s", sequence, lease.first,
                          lease.last, day)
                if self.on_lease is not None:
                    self.on_lease(sequence)
        if failed is not None:
            raise failed
        return recorded

    def _until_midnight(self) -> float:
        """Seconds to the branch's next local midnight (a new day: new blocks)."""
        now = datetime.now(self.journal.tz)
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                      microsecond=0)
        return max(0.5, (midnight - now).total_seconds() + 0.5)

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before the round: a tap during it wakes the next one
            try:
                await self.top_up()
                if self.failures:
                    log.warning("numbers: the hub leases again (after %d failed round(s))",
                                self.failures)
                self.failures, self.error = 0, ""
            except HubError as exc:
                self.failures += 1
                self.error = str(exc)
                log.log(logging.WARNING if self.failures in (1, 10) else logging.DEBUG,
                        "numbers: no block from the hub (%s); asking again", exc)
            except StoreError as exc:  # the journal's fault is reported where it is used
                self.failures += 1
                self.error = f"the journal: {exc}"
                log.error("numbers: a leased block not recorded: %s", exc)
            wait = self.retry.delay(self.failures) if self.failures else (
                self.period_s if self._known else min(self.period_s, UNKNOWN_S))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(wait, self._until_midnight()))
