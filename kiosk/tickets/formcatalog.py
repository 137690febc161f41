"""Which queues of the branch need a form, learned ahead of time and kept fresh.

:class:`FormCatalog` asks ``GET /forms/:queue?version=base`` for every queue of the branch
once the first queues are known, again every :data:`REFRESH_S` seconds, and at once for a
queue that answered 428 or whose form the provider refused. A 404 means "no form"; any
other failure keeps what was known (a card is never unmarked because the network
blinked). Listeners hear every change (the link sends the forms to the UI).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from kiosk.errors import ApiError, NotFound
from kiosk.tasks import cancel
from kiosk.view.forms import FormDef

if TYPE_CHECKING:
    from kiosk.api import QmsClient

log = logging.getLogger(__name__)

REFRESH_S = 60.0
"""How often every queue's form is asked for again (forms change rarely)."""


class FormCatalog:
    """The forms of the branch's queues: ``forms[queue_id]`` is a :class:`FormDef`, or
    None when the queue needs none; a queue not in it has not been asked yet."""

    def __init__(self, api: QmsClient, queue_ids: Callable[[], list[str]], *,
                 refresh_s: float = REFRESH_S) -> None:
        self.api = api
        self._queue_ids = queue_ids
        self.refresh_s = refresh_s
        self.forms: dict[str, FormDef | None] = {}
        self._listeners: list[Callable[[dict[str, FormDef | None]], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.sent = 0
        """Forms the provider accepted since start (counts for staff, never values)."""
        self.refused = 0
        """Forms refused: locally before sending, or by the provider's 400."""
        self._day: str | None = None
        self._base = (0, 0)

    def today(self, day: str) -> tuple[int, int]:
        """Forms sent and refused on ``day`` (the branch's today), counted since start."""
        if self._day is None:
            self._day = day
        elif self._day != day:  # a new day: count from here
            self._day, self._base = day, (self.sent, self.refused)
        return self.sent - self._base[0], self.refused - self._base[1]

    def subscribe(self, listener: Callable[[dict[str, FormDef | None]], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[dict[str, FormDef | None]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def needs(self, queue_id: str) -> bool:
        """Whether the queue is known to need a form."""
        return self.forms.get(queue_id) is not None

    def _publish(self) -> None:
        for listener in list(self._listeners):
            try:
                listener(dict(self.forms))
            except Exception:
                log.exception("forms listener failed")

    async def fetch(self, queue_id: str) -> FormDef | None:
        """Ask the API for the queue's form now; None if it has none. Raises ApiError
        when the API cannot say (what was known is kept)."""
        try:
            form = await self.api.get_form(queue_id)
        except NotFound:
            fd = None
        else:
            fd = FormDef.from_api(queue_id, form.model_dump(by_alias=True))
        before = self.forms.get(queue_id, ...)
        self.forms[queue_id] = fd
        if before != fd:
            if fd is not None:
                log.info("queue %s needs a form (%d fields, version %s)", queue_id,
                         len(fd.shown), fd.version)
            self._publish()
        return fd

    async def refresh(self) -> None:
        """Ask for every queue's form (one failure does not stop the others)."""
        for queue_id in self._queue_ids():
            try:
                await self.fetch(queue_id)
            except ApiError as exc:
                log.info("could not refresh the form of queue %s: %s", queue_id, exc)

    def refresh_soon(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self.refresh()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.refresh_s)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="forms")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def form_for(self, queue_id: str) -> FormDef | None:
        """The queue's form, from the cache, else asked for now."""
        if queue_id in self.forms:
            return self.forms[queue_id]
        return await self.fetch(queue_id)
