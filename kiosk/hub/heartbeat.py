"""The heartbeat: this device's state to the hub, every ``hub.heartbeat_s`` and at once
on a change (docs/hub.md, "Heartbeats").

Only the latest counts: a heartbeat the hub did not take is never sent again, nor kept
(the next one carries the state as it is then), and one is in flight at a time. The body
is :meth:`~kiosk.view.devicestate.DeviceState.heartbeat`: words, counts and times, never
a secret, a customer value or a form field. Kiosks, tablets and calling screens alike:
the caller says how to compose the state and what to watch for a change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from kiosk.errors import HubError
from kiosk.tasks import cancel
from kiosk.view.devicestate import DeviceState

log = logging.getLogger(__name__)

CHECK_S = 1.0
"""How often the watched words are compared (cheap: nothing is asked of the printer)."""

Put = Callable[[dict[str, Any]], Awaitable[None]]
"""Sends one body (``PUT /v1/devices/{id}/state``: :meth:`HubClient.put_state
<kiosk.hub.client.HubClient.put_state>`); raises :class:`~kiosk.errors.HubError` when
the hub did not take it."""


class Heartbeat:
    """Sends ``state()``'s heartbeat with ``put`` every ``every_s`` seconds, and within
    ``check_s`` of a change of ``watch()``; ``answered(word)`` hears how each went
    (``ok``, ``unreachable``, ``refused``)."""

    def __init__(self, state: Callable[[], Awaitable[DeviceState]],
                 watch: Callable[[], Hashable], put: Put, *, every_s: float,
                 check_s: float = CHECK_S,
                 answered: Callable[[str], None] = lambda word: None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._state = state
        self._watch = watch
        self._put = put
        self.every_s = every_s
        self.check_s = check_s
        self._answered = answered
        self._monotonic = monotonic
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._seen: Hashable = object()
        self.sent = 0
        """Heartbeats the hub took."""
        self.failed = 0
        """Heartbeats the hub did not take (dropped, never sent again)."""
        self.word = "none"
        """How the last one went: ``ok``, ``unreachable``, ``refused`` (``none``: not yet)."""

    def start(self) -> None:
        """Start sending on the running loop (the first one at once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeat")

    def poke(self) -> None:
        """Send one now (the state changed in a way the watched words do not show)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop sending (one in flight is cancelled: the hub keeps the one before)."""
        await cancel(self._task)
        self._task = None

    async def beat(self) -> bool:
        """Compose the state now and send it once; whether the hub took it."""
        body = (await self._state()).heartbeat()
        # what the body shows (the printer was just asked): a change while it is in
        # flight is a change, sent at once after it
        self._seen = self._watch()
        try:
            async with asyncio.timeout(max(self.every_s, 1.0)):
                await self._put(body)
        except HubError as exc:  # this one is dropped: the next says the state then
            self._answer("refused" if exc.status in (401, 403) else "unreachable", exc)
            return False
        except Exception as exc:  # a timeout, or a sender that maps no error: not taken
            self._answer("unreachable", exc)
            return False
        self._answer("ok", None)
        return True

    def _answer(self, word: str, exc: BaseException | None) -> None:
        if exc is None:
            self.sent += 1
        else:
            self.failed += 1
        if word != self.word:  # logged when it changes, not every 30 s
            level = logging.INFO if word == "ok" else logging.WARNING
            log.log(level, "heartbeat to the hub: %s%s", word,
                    f" ({exc.__class__.__name__}: {exc})" if exc is not None else "")
        self.word = word
        self._answered(word)

    async def _run(self) -> None:
        due = self._monotonic()
        while True:
            try:
                if self._watch() != self._seen or self._monotonic() >= due \
                        or self._wake.is_set():
                    self._wake.clear()
                    await self.beat()
                    due = self._monotonic() + self.every_s
            except Exception:  # a state that cannot be composed: said, and on we go
                log.exception("heartbeat: the state could not be composed")
                due = self._monotonic() + self.every_s
            try:
                async with asyncio.timeout(self.check_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
