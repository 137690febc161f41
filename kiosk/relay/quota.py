"""How many numbers one device may lease, and how many tickets it may report: budgets per
device that fill back by the hour.

A device leases numbers in blocks ahead of its taps (docs/hub.md "Numbers"): a kiosk
printing a ticket every few seconds all hour asks for well under a thousand. A device
stuck in a loop (a bug, a journal that cannot record its blocks, a stolen token) could
otherwise burn the branch's counter into the millions in minutes, and every other
device's tickets would carry those numbers for the rest of the day.

So each device has a reserve of ``per_hour`` numbers, full at start and refilled at
``per_hour`` an hour (so at most about twice that in the first hour, then that an hour);
a lease larger than what is left is refused (429) with the seconds until it fits, and
the device numbers from its blocks, then offline, as when the hub is away. A device's
first block of each sequence each day is not charged: what it leases at start and at
each midnight, a block per sequence it offers, whatever ``numbering.block`` and however
many queues (for up to :data:`FREE_FIRSTS` sequences a day: a token that makes names up
gets no more).

**Reports** (:class:`ReportQuota`) have a budget of the same kind: a device's reports of
its tickets are kept for 14 days and listed in one answer (``GET .../tickets``), so a
device reporting tickets as fast as the relay takes them (about 375 a second) made that
answer 181 MB in a minute. A kiosk sends one or two reports a ticket; a report over the
budget is answered 429 with ``Retry-After`` and the device's outbox sends it again later:
delayed, never lost.

Per relay process (like ``max_streams_per_token``): with Redis and N replicas a device
may lease or report up to N times this much. Standard library only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_COUNT = 1000
"""The largest block a lease may ask for (a budget is at least this)."""
FREE_FIRSTS = 32
"""A device's first blocks of the day not charged, one per sequence, at most this many."""


class OverBudget(Exception):
    """A lease beyond the device's budget; ``wait_s``: whole seconds until it fits."""

    def __init__(self, wait_s: int) -> None:
        super().__init__(f"over budget: fits in {wait_s} s")
        self.wait_s = wait_s


@dataclass(frozen=True, slots=True)
class Taken:
    """Numbers taken for one lease: what :meth:`NumberQuota.take` returns, and
    :meth:`NumberQuota.give_back` undoes."""

    device: str
    day: str
    sequence: str
    count: int
    free: bool
    """The device's first block of the sequence that day: charged nothing."""


class _Reserve:
    """A reserve per device: ``per_hour`` at most, full at first, refilled at ``per_hour``
    an hour."""

    def __init__(self, per_hour: int, clock: Callable[[], float]) -> None:
        self.per_hour = per_hour
        self._rate = per_hour / 3600.0
        self._clock = clock
        self._left: dict[str, tuple[float, float]] = {}
        """Device id -> (what is left, when that was reckoned). One entry per device that
        asked (device ids are the configured ones: bounded)."""

    def _now_left(self, device: str) -> tuple[float, float]:
        now = self._clock()
        left, at = self._left.get(device, (float(self.per_hour), now))
        return min(float(self.per_hour), left + max(0.0, now - at) * self._rate), now

    def check(self, device: str, count: int) -> None:
        """:class:`OverBudget` unless ``count`` is left in ``device``'s reserve (nothing
        taken)."""
        left, now = self._now_left(device)
        self._left[device] = (left, now)
        if count > left:
            raise OverBudget(max(1, math.ceil((count - left) / self._rate)))

    def take(self, device: str, count: int) -> None:
        """Take ``count`` from ``device``'s reserve; :class:`OverBudget` when it is not
        there (nothing taken)."""
        self.check(device, count)
        left, now = self._left[device]
        self._left[device] = (left - count, now)

    def charge(self, device: str, count: int) -> None:
        """Take ``count`` from ``device``'s reserve whatever is left (below zero: what was
        checked before, then used by requests at once)."""
        left, now = self._now_left(device)
        self._left[device] = (left - count, now)

    def give_back(self, device: str, count: int) -> None:
        left, at = self._left.get(device, (0.0, self._clock()))
        self._left[device] = (min(float(self.per_hour), left + count), at)


class NumberQuota:
    """Numbers each device may still lease, by device id."""

    def __init__(self, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_hour < MAX_COUNT:
            raise ValueError(f"per_hour must be at least {MAX_COUNT} (one largest lease)")
        self.per_hour = per_hour
        self._reserve = _Reserve(per_hour, clock)
        self._firsts: dict[str, tuple[str, set[str]]] = {}
        """Device id -> (day, the sequences whose first block it leased that day)."""

    def take(self, device: str, day: str, sequence: str, count: int) -> Taken:
        """Take ``count`` numbers of ``sequence`` on ``day`` from ``device``'s budget (none
        for its first block of the sequence that day); :class:`OverBudget` when they are
        not there (nothing taken)."""
        seen, firsts = self._firsts.get(device, ("", set()))
        if seen != day:
            firsts = set()
            self._firsts[device] = (day, firsts)
        if sequence not in firsts and len(firsts) < FREE_FIRSTS:
            firsts.add(sequence)
            return Taken(device, day, sequence, count, free=True)
        self._reserve.take(device, count)
        return Taken(device, day, sequence, count, free=False)

    def give_back(self, taken: Taken) -> None:
        """Undo ``taken``: its lease was not handed out after all (the store failed)."""
        if taken.free:
            seen, firsts = self._firsts.get(taken.device, ("", set()))
            if seen == taken.day:
                firsts.discard(taken.sequence)
            return
        self._reserve.give_back(taken.device, taken.count)


MIN_REPORTS = 100
"""The smallest report budget an hour (``relay.max_reports_per_hour``)."""


class ReportQuota:
    """Reports each device may still send, by device id: one a report that changed the
    ledger (a new report, one kept beside another, a new outcome). A report the ledger
    knew already costs nothing: replaying one cannot spend a device's budget and block its
    real reports."""

    def __init__(self, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_hour < MIN_REPORTS:
            raise ValueError(f"per_hour must be at least {MIN_REPORTS}")
        self.per_hour = per_hour
        self._reserve = _Reserve(per_hour, clock)

    def check(self, device: str) -> None:
        """:class:`OverBudget` when ``device``'s budget is spent (nothing taken)."""
        self._reserve.check(device, 1)

    def charge(self, device: str) -> None:
        """A report of ``device`` changed the ledger."""
        self._reserve.charge(device, 1)
