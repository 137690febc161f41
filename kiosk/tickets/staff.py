"""What the core trusts the UI with: the staff PIN, the staff session, the PIN lockout,
and the checks on a customer's request.

The UI process shows screens; it is not trusted with decisions. The core keeps:

- the **PIN**: never stored; ``ui.admin_pin_hash`` holds ``pbkdf2_sha256$<iterations>$
  <salt>$<hash>`` (``kiosk hash-pin`` prints one), checked in constant time;
- the **staff session**: opened by a correct PIN, closed when the UI leaves the staff
  screen (its idle reset, "Back"), and by itself after ``ui.idle_timeout_s`` without a
  staff action. Staff actions over the link (test print, reprint, reload, refresh) are
  refused without one;
- the **lockout**: after :data:`MAX_FAILURES` wrong PINs in a row, no PIN is checked for
  :data:`FIRST_LOCKOUT_S`, doubling with every further wrong PIN up to
  :data:`MAX_LOCKOUT_S`. Kept in ``admin-lockout.json`` in the data folder, so a restart
  does not reset it. The PIN is hashed on a worker thread (200k PBKDF2 rounds would stop
  the event loop, and with it the queues and the watchdog);
- the **customer's request**: only a queue this kiosk offers (its configured queues, or
  the branch's when none are configured), a language of ours, a priority reason it
  offers, and ``integrationData`` whose own keys (``source``, ``kiosk``, ``day``,
  ``lang``, ``priority``) the UI cannot set.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiosk.errors import ConfigError
from kiosk.i18n import LANGUAGES

if TYPE_CHECKING:
    from kiosk.config import Config
    from kiosk.tickets.queues import QueueMonitor

log = logging.getLogger(__name__)

MAX_FAILURES = 5
"""Wrong PINs in a row before the PIN pad locks."""
FIRST_LOCKOUT_S = 30.0
MAX_LOCKOUT_S = 15 * 60.0
LOCKOUT_FILE = "admin-lockout.json"
RESERVED_DATA_KEYS = frozenset({"source", "kiosk", "day", "lang", "priority"})
"""``integrationData`` keys the core sets itself (the UI's values are refused)."""


class NotAllowed(Exception):
    """A request the core refuses (no staff session, a queue it does not offer...)."""


@dataclass(frozen=True)
class PinAnswer:
    """What a PIN came to."""

    ok: bool
    locked_s: float = 0.0
    """Seconds until another PIN is checked (0: not locked)."""


class StaffAccess:
    """The staff session and the PIN lockout of one kiosk (see the module's docstring)."""

    def __init__(self, data_dir: Path, *, idle_s: float = 30.0,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(data_dir) / LOCKOUT_FILE
        self.idle_s = idle_s
        self._clock = clock
        self._monotonic = monotonic
        self._failures = 0
        self._locked_until = 0.0  # wall clock: it must survive a restart
        self._session_used: float | None = None  # monotonic time of the last staff action
        self._checking = asyncio.Lock()
        self._load()

    # ----------------------------------------------------------------- the session

    @property
    def session_open(self) -> bool:
        """Whether staff are in (a correct PIN, and a staff action within ``idle_s``)."""
        used = self._session_used
        if used is None:
            return False
        if self._monotonic() - used > self.idle_s:
            self._session_used = None
            log.info("staff session closed (idle)")
            return False
        return True

    def require_session(self) -> None:
        """Raise :class:`NotAllowed` unless staff are in; keeps the session alive."""
        if not self.session_open:
            log.warning("staff action refused: no staff session (PIN not entered)")
            raise NotAllowed("no staff session: enter the PIN first")
        self._session_used = self._monotonic()

    def close(self) -> None:
        """Staff left the staff screen (or the kiosk went back home by itself)."""
        if self._session_used is not None:
            log.info("staff session closed")
        self._session_used = None

    # ----------------------------------------------------------------- the PIN

    def locked_for(self) -> float:
        """Seconds until the next PIN is checked (0: now)."""
        return max(0.0, self._locked_until - self._clock())

    async def check_pin(self, pin: str, stored: str | None) -> PinAnswer:
        """Check ``pin`` against ``stored`` (``ui.admin_pin_hash``) on a worker thread,
        unless the pad is locked; opens the session on success."""
        async with self._checking:  # one at a time: no racing past the count
            locked = self.locked_for()
            if locked > 0:
                log.warning("admin PIN refused unchecked: locked for %.0f s", locked)
                return PinAnswer(False, locked)
            ok = stored is not None and await asyncio.to_thread(verify_pin, pin, stored)
            if ok:
                self._failures, self._locked_until = 0, 0.0
                self._session_used = self._monotonic()
                self._save()
                log.info("admin screen opened")
                return PinAnswer(True)
            self._failures += 1
            if self._failures >= MAX_FAILURES:
                wait = min(MAX_LOCKOUT_S,
                           FIRST_LOCKOUT_S * 2.0 ** (self._failures - MAX_FAILURES))
                self._locked_until = self._clock() + wait
                log.warning("wrong admin PIN (%d in a row): PIN pad locked for %.0f s",
                            self._failures, wait)
            else:
                log.warning("wrong admin PIN entered (%d in a row)", self._failures)
            self._save()
            return PinAnswer(False, self.locked_for())

    # ----------------------------------------------------------------- the file

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            failures, until = int(data["failures"]), float(data["locked_until"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable: locked
            log.warning("%s unreadable (%s): the PIN pad starts locked", self.path, exc)
            failures, until = MAX_FAILURES, self._clock() + FIRST_LOCKOUT_S
        self._failures = max(0, failures)
        # a clock set back (no RTC) must not lock staff out for longer than the maximum
        self._locked_until = min(until, self._clock() + MAX_LOCKOUT_S)

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"failures": self._failures, "locked_until": self._locked_until}, f)
            tmp.replace(self.path)
        except OSError as exc:  # the count still holds in memory
            log.error("could not save the PIN lockout in %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()


# --------------------------------------------------------------------------- the PIN


ITERATIONS = 200_000
SCHEME = "pbkdf2_sha256"
MIN_DIGITS = 6
"""Shortest PIN: 10^6 guesses, against :data:`MAX_FAILURES` tries before the pad locks."""


def hash_pin(pin: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """A storable hash of ``pin`` (:data:`MIN_DIGITS` to 12 digits)."""
    if not (pin.isdigit() and MIN_DIGITS <= len(pin) <= 12):
        raise ValueError(f"a PIN is {MIN_DIGITS} to 12 digits (0-9)")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    b64 = base64.urlsafe_b64encode
    return f"{SCHEME}${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_pin(pin: str, stored: str) -> bool:
    """Whether ``pin`` matches ``stored`` (a :func:`hash_pin` result)."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != SCHEME:
            raise ValueError(scheme)
        want = base64.urlsafe_b64decode(digest)
        got = hashlib.pbkdf2_hmac("sha256", pin.encode(), base64.urlsafe_b64decode(salt),
                                  int(iterations))
    except (ValueError, TypeError) as exc:
        raise ConfigError("(config)", "ui.admin_pin_hash",
                          "a hash printed by `kiosk hash-pin`") from exc
    return hmac.compare_digest(got, want)


# --------------------------------------------------------------------------- requests


def offered_queue_ids(config: Config, monitor: QueueMonitor) -> set[str]:
    """The queues a customer may pick here: the configured ones, else the branch's as
    last polled (the alternatives after a 406 come from the same set)."""
    if config.queues:
        return {q.id for q in config.queues}
    return {q.id for q in monitor.snapshot.queues}


def check_priority(config: Config, priority: Any) -> str | None:
    """The UI's priority reason, checked against the config's (:class:`NotAllowed`
    naming it otherwise): None for a regular ticket."""
    if priority is None:
        return None
    if not isinstance(priority, str) or not config.priority.offered(priority):
        from kiosk.tickets.issuing import not_offered
        why = not_offered(config, str(priority)[:40])
        log.warning("ticket request refused: %s", why)
        raise NotAllowed(why)
    return priority


def check_request(offered: set[str], queue_id: Any, language: Any,
                  integration_data: Any) -> tuple[str, str, dict[str, Any] | None]:
    """The UI's ticket request, checked: (queue id, language, integrationData without our
    own keys). :class:`NotAllowed` for a queue not ``offered`` here, a language that is
    not ours, or data that is not an object."""
    if not isinstance(queue_id, str) or queue_id not in offered:
        log.warning("ticket request refused: queue %r is not offered at this kiosk",
                    str(queue_id)[:60])
        raise NotAllowed("that queue is not offered at this kiosk")
    if language not in LANGUAGES:
        raise NotAllowed(f"language must be one of {', '.join(LANGUAGES)}")
    if integration_data is None:
        return queue_id, language, None
    if not isinstance(integration_data, dict):
        raise NotAllowed("integration_data must be an object")
    reserved = RESERVED_DATA_KEYS & integration_data.keys()
    if reserved:
        log.warning("ticket request: the UI may not set integrationData %s (dropped)",
                    ", ".join(sorted(reserved)))
    return queue_id, language, {k: v for k, v in integration_data.items()
                                if k not in RESERVED_DATA_KEYS}
