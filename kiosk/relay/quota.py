"""How many numbers one device may lease: a budget per device that fills back by the hour.

A device leases numbers in blocks ahead of its taps (docs/hub.md "Numbers"): a kiosk
printing a ticket every few seconds all hour asks for well under a thousand. A device
stuck in a loop (a bug, a journal that cannot record its blocks, a stolen token) could
otherwise burn the branch's counter into the millions in minutes, and every other
device's tickets would carry those numbers for the rest of the day. So each device has a
budget of ``per_hour`` numbers, full at start, refilled at ``per_hour`` an hour; a lease
larger than what is left is refused (429) with the seconds until it fits, and the device
numbers from its blocks, then offline, as when the hub is away.

Per relay process (like ``max_streams_per_token``): with Redis and N replicas a device
may lease up to N times this much. Standard library only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

MAX_COUNT = 1000
"""The largest block a lease may ask for (a budget is at least this)."""


class NumberQuota:
    """Numbers each device may still lease, by device id."""

    def __init__(self, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_hour < MAX_COUNT:
            raise ValueError(f"per_hour must be at least {MAX_COUNT} (one largest lease)")
        self.per_hour = per_hour
        self._rate = per_hour / 3600.0
        self._clock = clock
        self._left: dict[str, tuple[float, float]] = {}
        """Device id -> (numbers left, when that was reckoned). One entry per device that
        leased (device ids are the configured ones: bounded)."""

    def take(self, device: str, count: int) -> int:
        """Take ``count`` numbers from ``device``'s budget: 0 when taken, else the whole
        seconds until that many are there (nothing taken)."""
        now = self._clock()
        left, at = self._left.get(device, (float(self.per_hour), now))
        left = min(float(self.per_hour), left + max(0.0, now - at) * self._rate)
        if count <= left:
            self._left[device] = (left - count, now)
            return 0
        self._left[device] = (left, now)
        return max(1, math.ceil((count - left) / self._rate))

    def give_back(self, device: str, count: int) -> None:
        """Return ``count`` numbers taken for a lease that was not handed out after all."""
        left, at = self._left.get(device, (0.0, self._clock()))
        self._left[device] = (min(float(self.per_hour), left + count), at)
