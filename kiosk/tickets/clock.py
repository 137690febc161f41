"""The time tickets are numbered and stamped by, with the API's clock as a second opinion.

A Raspberry Pi has no battery clock: it boots with the time it shut down at until NTP
answers (or for ever, where UDP 123 is blocked). Numbered on that clock, today's tickets
would go under yesterday and the numbers would start again at 001 after the sync, so one
ticketId would reach Videsk twice in one real day.

Every answer of the API carries a ``Date`` header (:attr:`kiosk.api.QmsClient.server_date`).
When the local clock and the API's disagree by more than :data:`SKEW_TOLERANCE`,
:class:`TicketClock` numbers and stamps tickets on the API's time (the local clock plus the
measured difference) and says so (:meth:`TicketClock.note`: staff screen, ``kiosk check``,
status file, log). The journal's own guard comes after it: the day never goes back
behind the latest day it has numbered on (:class:`~kiosk.errors.ClockBehind`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

SKEW_TOLERANCE = timedelta(minutes=5)
"""Beyond this difference between the local clock and the API's, the API's time is used."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def describe(delta: timedelta) -> str:
    """``3 h 02 min`` / ``12 min`` / ``2 d 1 h``: the size of a clock difference."""
    minutes = round(abs(delta.total_seconds()) / 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {mins:02d} min" if hours else f"{mins} min"


class TicketClock:
    """The local wall clock, corrected to the API's ``Date`` when they disagree.

    ``server_date`` returns the API's last ``Date`` and the monotonic time it arrived at
    (None before any answer); the API's "now" is that date plus the monotonic time since,
    so it stays right across the local clock's jumps.
    """

    def __init__(self, local: Callable[[], datetime] = _utcnow,
                 server_date: Callable[[], tuple[datetime, float] | None] = lambda: None,
                 *, monotonic: Callable[[], float] = time.monotonic,
                 tolerance: timedelta = SKEW_TOLERANCE) -> None:
        self._local = local
        self._server_date = server_date
        self._monotonic = monotonic
        self.tolerance = tolerance
        self._lock = threading.Lock()
        self._logged = timedelta(0)

    def skew(self) -> timedelta | None:
        """The API's time minus the local time (None before the API's first answer)."""
        seen = self._server_date()
        if seen is None:
            return None
        date, at = seen
        api_now = date + timedelta(seconds=self._monotonic() - at)
        return api_now - self._local()

    def offset(self) -> timedelta:
        """What is added to the local clock: the skew when beyond the tolerance, else 0."""
        skew = self.skew()
        if skew is None or abs(skew) <= self.tolerance:
            return timedelta(0)
        return skew

    def __call__(self) -> datetime:
        """Now, on the clock tickets go by."""
        offset = self.offset()
        self._log_change(offset)
        return self._local() + offset

    def note(self) -> str:
        """For staff: empty while the clocks agree, else what is wrong and what is done."""
        skew = self.offset()
        if not skew:
            return ""
        way = "behind" if skew > timedelta(0) else "ahead of"
        return (f"the local clock is {describe(skew)} {way} the API's: tickets are numbered "
                f"and stamped on the API's time ({(self._local() + skew):%Y-%m-%d %H:%M} "
                "UTC); set the clock right (NTP)")

    def _log_change(self, offset: timedelta) -> None:
        """Log when the correction starts, ends or moves by more than the tolerance."""
        with self._lock:
            if bool(offset) == bool(self._logged) \
                    and abs(offset - self._logged) <= self.tolerance:
                return
            self._logged = offset
        if offset:
            log.warning("clock: %s", self.note())
        else:
            log.info("clock: the local clock agrees with the API's again")
