"""systemd's notify protocol, spoken directly (no dependency): READY, WATCHDOG, STATUS.

systemd gives the socket in ``NOTIFY_SOCKET`` and the watchdog period in
``WATCHDOG_USEC``. :class:`Watchdog` pings from a task on the UI's own asyncio loop, and
only after the core answered a ping over the link (``check``): so when either process is
stuck or gone (a frozen UI, a core whose loop is blocked) the pings stop and systemd
restarts the kiosk. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

from kiosk.tasks import cancel

log = logging.getLogger(__name__)


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one notify message; False when not run by systemd (or the send failed)."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(target)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify %r failed: %s", message.split("=", 1)[0], exc)
        return False
    return True


def watchdog_period(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of systemd's WatchdogSec), or None if there is none."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    # WATCHDOG_PID is not checked: under cage the service's main PID is the compositor,
    # and the unit lets its child (us) notify (NotifyAccess=all).
    if not usec:
        return None
    try:
        return max(0.5, int(usec) / 1e6 / 2)
    except ValueError:
        return None


class Watchdog:
    """READY=1 once, then WATCHDOG=1 every half period while the loop runs and
    ``check(deadline_s)`` says yes within ``deadline_s`` (the core answers)."""

    def __init__(self, environ: Mapping[str, str] | None = None, *,
                 check: Callable[[float], Awaitable[bool]] | None = None) -> None:
        self._env = os.environ if environ is None else environ
        self._check = check
        self._task: asyncio.Task[None] | None = None
        self.pings = 0
        self.missed = 0
        """Periods in which the check failed (nothing was sent to systemd)."""

    def start(self, status: str = "") -> None:
        notify("READY=1" + (f"\nSTATUS={status}" if status else ""), self._env)
        period = watchdog_period(self._env)
        if period is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(period),
                                                                name="watchdog")

    async def _alive(self, deadline_s: float) -> bool:
        if self._check is None:
            return True
        try:
            async with asyncio.timeout(deadline_s):
                return await self._check(deadline_s)
        except TimeoutError:
            return False
        except Exception:
            log.exception("the watchdog's check failed")
            return False

    async def _run(self, period: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            if await self._alive(period * 0.8):
                self.missed = 0
                if notify("WATCHDOG=1", self._env):
                    self.pings += 1
            else:
                self.missed += 1
                log.error("the kiosk core did not answer the watchdog's ping: systemd is not "
                          "told the kiosk is alive (%d period(s) in a row)", self.missed)
            await asyncio.sleep(max(0.0, period - (loop.time() - started)))

    def status(self, text: str) -> None:
        """A one-line status for ``systemctl status kiosk``."""
        notify(f"STATUS={text}", self._env)

    async def stop(self) -> None:
        notify("STOPPING=1", self._env)
        await cancel(self._task)
        self._task = None
