"""A kiosk's own tickets, called: when and to which booth each was called goes into its
journal (``kiosk check`` and the staff screen show today's time from ticket to call)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiosk.calls.feed import CallFeed
    from kiosk.store import Journal
    from kiosk.view.calling import Call

log = logging.getLogger(__name__)


class CallRecorder:
    """Journals each call of one of this kiosk's tickets (off the event loop); subscribe it
    to a :class:`~kiosk.calls.feed.CallFeed`."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._tasks: set[asyncio.Task[Any]] = set()

    def __call__(self, feed: CallFeed, received: list[Call]) -> None:
        for call in received:
            task = asyncio.ensure_future(self._record(call))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _record(self, call: Call) -> None:
        moment = call.moment()
        if moment is None:
            return
        try:
            ours = await asyncio.to_thread(self.journal.record_call, call.ticket_id, call.poc,
                                           moment)
        except Exception:  # a full disk must not stop the calls on screen
            log.exception("the call of %s could not be journalled", call.ticket_id)
            return
        if ours:
            log.info("ticket %s called to %s", call.ticket_id, call.poc)

    async def drain(self) -> None:
        """Wait for the calls being written."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
