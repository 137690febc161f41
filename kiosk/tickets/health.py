"""Faults staff must see while the kiosk runs on: the journal, the clock.

A fault here does not stop the core (a core that exits is restarted by systemd, and fails
again, in a loop that tells nobody anything). It is logged once when it appears and once
when it clears, shown on the staff screen (:func:`kiosk.core.admin.summary`), written to the
status file (``kiosk check`` reads it) and, where it stops issuing, given as the detail
of an ``unavailable`` tap.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class Health:
    """The current faults, by what they concern (``"journal"``, ``"clock"``)."""

    def __init__(self) -> None:
        self._faults: dict[str, str] = {}
        self._lock = threading.Lock()

    def set(self, what: str, problem: str) -> None:
        """Report a fault (logged at error level when it is new or changes)."""
        with self._lock:
            if self._faults.get(what) == problem:
                return
            self._faults[what] = problem
        log.error("%s fault: %s", what, problem)

    def clear(self, what: str) -> None:
        """The fault is gone (logged if there was one)."""
        with self._lock:
            problem = self._faults.pop(what, None)
        if problem is not None:
            log.warning("%s fault cleared (was: %s)", what, problem)

    def faults(self) -> dict[str, str]:
        """What is wrong now, by what it concerns."""
        with self._lock:
            return dict(self._faults)
