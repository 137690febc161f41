"""Every time limit of the kiosk, derived in one place from ``api.timeout_s`` and the
retry policy, so that each one waits for what it must and no longer.

::

    attempt      = timeout_s                  one HTTP attempt, all of it (connect..body)
    get call     = (get_retries + 1) attempts + the backoff waits (429: Retry-After)
    enqueue call = (enqueue_retries + 1) attempts + the backoff waits
    API budget   = enqueue call + one attempt  every API call for one UI request, shared
                                               (form, enqueue, the alternatives after 406)
    tap          = API budget + JOURNAL_S      the core's answer to one UI request
    UI's tap     = tap + LINK_S                the UI's deadline for that answer
    UI's print   = printer timeout + PRINT_S + LINK_S   the paper, once the number shows
    finish       = tap + printer timeout + PRINT_S      the core finishing a ticket in flight
    stop wait    = finish + CORE_EXIT_S        the UI waiting for the core to exit
    stop         = stop wait + UI_EXIT_S       systemd's TimeoutStopSec must be >= this

This module stays light (standard library only): the UI process reads it too, with the
numbers the core sends in its hello (:class:`kiosk.link.codec.UiSettings`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GET_RETRIES = 2
"""Extra attempts for a GET after a retryable failure."""
ENQUEUE_RETRIES = 2
"""Extra attempts for an enqueue after a 422 or a connection that never opened."""
INITIAL_DELAY_S = 0.2
"""Wait before the first retry; doubles each time."""
MAX_DELAY_S = 3.0
"""No backoff wait is longer than this (before jitter)."""
JITTER = 0.25
"""Each backoff wait is scaled by a random factor in [1 - JITTER, 1 + JITTER]."""
MAX_RETRY_AFTER_S = 10.0
"""A 429's ``Retry-After`` is honoured up to this many seconds (GETs only)."""

JOURNAL_S = 1.0
"""Taking a number and writing the outcome (SQLite, fsync)."""
LINK_S = 2.0
"""The link's own delay and the core's scheduling, on a busy two-core machine."""
PRINT_S = 3.0
"""Beyond the printer's own timeout: rendering, the status query, the journal."""
CORE_EXIT_S = 3.0
"""The core closing its HTTP pool, printer and journal once the ticket is done."""
UI_EXIT_S = 3.0
"""The UI closing its window and the watchdog after the core is gone."""
DEFAULT_TIMEOUT_S = 5.0
"""``api.timeout_s`` and ``printer.timeout_s`` when the config does not set them."""


def waits_s(retries: int, *, initial_s: float = INITIAL_DELAY_S,
            max_delay_s: float = MAX_DELAY_S, jitter: float = JITTER,
            retry_after_s: float = 0.0) -> float:
    """The longest total of the waits before ``retries`` retries (doubling from
    ``initial_s``, capped, jittered up; a 429's ``Retry-After`` up to ``retry_after_s``)."""
    return sum(max(min(max_delay_s, initial_s * 2.0 ** (n - 1)) * (1 + jitter), retry_after_s)
               for n in range(1, retries + 1))


def call_s(timeout_s: float, retries: int, waits: float) -> float:
    """Seconds one API call may take: ``retries + 1`` attempts of ``timeout_s`` each and
    the ``waits`` between them."""
    return (retries + 1) * timeout_s + waits


@dataclass(frozen=True)
class Deadlines:
    """The kiosk's limits for one ``api.timeout_s`` (and printer timeout)."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    """``api.timeout_s``: one attempt, all of it."""
    printer_timeout_s: float = DEFAULT_TIMEOUT_S
    """``printer.timeout_s``."""
    get_retries: int = GET_RETRIES
    enqueue_retries: int = ENQUEUE_RETRIES

    @property
    def get_call_s(self) -> float:
        """A GET with its retries (429's Retry-After included)."""
        return call_s(self.timeout_s, self.get_retries,
                      waits_s(self.get_retries, retry_after_s=MAX_RETRY_AFTER_S))

    @property
    def enqueue_call_s(self) -> float:
        """An enqueue with its retries (after a 422 or a connection never opened)."""
        return call_s(self.timeout_s, self.enqueue_retries, waits_s(self.enqueue_retries))

    @property
    def api_budget_s(self) -> float:
        """All the API calls made for one request of the UI (a tap: a form submitted,
        the enqueue with its retries, the alternatives after a 406) share this; the
        client starts no attempt that cannot end within it."""
        return self.enqueue_call_s + self.timeout_s

    @property
    def tap_s(self) -> float:
        """The core's whole answer to a request of the UI: the API budget, the journal."""
        return self.api_budget_s + JOURNAL_S

    @property
    def ui_tap_s(self) -> float:
        """How long the UI waits for the core's answer to any request (a tap, a form, a
        staff action): then it tells the customer what to do."""
        return max(self.tap_s, self.printer_timeout_s + PRINT_S) + LINK_S

    @property
    def ui_print_s(self) -> float:
        """How long the UI waits for the paper once the number is on screen."""
        return self.printer_timeout_s + PRINT_S + LINK_S

    @property
    def finish_s(self) -> float:
        """How long the core, asked to stop, lets a ticket in flight finish (and print)."""
        return self.tap_s + self.printer_timeout_s + PRINT_S

    @property
    def stop_wait_s(self) -> float:
        """How long the UI waits for the core to exit before it kills it."""
        return self.finish_s + CORE_EXIT_S

    @property
    def stop_s(self) -> float:
        """The least ``TimeoutStopSec`` for the unit: the UI's own exit after that."""
        return self.stop_wait_s + UI_EXIT_S

    @property
    def stop_sec(self) -> int:
        """:attr:`stop_s` in whole seconds, rounded up (for the unit file)."""
        return math.ceil(self.stop_s)


DEFAULT = Deadlines()
"""The limits for the default config."""

__all__ = ["DEFAULT", "Deadlines", "call_s", "waits_s"]
