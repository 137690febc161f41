"""Fan-out of stored calls to the screens connected to this relay.

Each screen is a :class:`Screen` with a bounded queue. Publishing never waits: a screen
whose queue is full (it reads too slowly, or its network stalls) is disconnected, and
resumes with ``Last-Event-ID`` when it reconnects, missing nothing; the others never
notice it. Events are encoded once and the same bytes go to every screen of a branch.

The customers' phone pages (:mod:`kiosk.relay.phone`) are :class:`Page` streams of the same
kind (a bounded queue, dropped when slow: the page reconnects and gets its whole state).
They learn of a branch's calls after its screens got them (``Relay.publish``), and are
updated in a task of their own: pages never delay a screen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kiosk.relay.store import Event

log = logging.getLogger(__name__)

T = TypeVar("T")


SLOW = "slow"
"""Why a stream ended: it fell ``client_buffer`` calls behind."""
GONE = "gone"
"""Why a stream ended: the screen disconnected."""
SHUTDOWN = "shutdown"
"""Why a stream ended: the relay is stopping."""


class Stream(Generic[T]):
    """One connected SSE stream with a bounded queue of what it has still to send (a
    ``None`` in the queue ends it)."""

    def __init__(self, branch: str, buffer: int) -> None:
        self.branch = branch
        self.queue: asyncio.Queue[T | None] = asyncio.Queue(maxsize=buffer)
        self.dropped = False
        self.reason = ""
        """Why the stream ends (:data:`SLOW`, :data:`GONE`, :data:`SHUTDOWN`) once dropped."""

    def offer(self, item: T) -> bool:
        """Queue ``item``; False (and the stream is closed) when it is too far behind."""
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.drop()
            return False
        return True

    def drop(self, reason: str = SLOW) -> None:
        """Disconnect this stream (it ends at its next read)."""
        if self.dropped:
            return
        self.dropped = True
        self.reason = reason
        while True:  # make room for the sentinel
            try:
                self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
        self.queue.put_nowait(None)


class Screen(Stream[Event]):
    """A calling screen's stream of its branch's calls."""

    def __init__(self, branch: str, buffer: int) -> None:
        super().__init__(branch, buffer)
        self.last_id = 0


class Page(Stream[bytes]):
    """One customer's phone page stream (its ``subject``: the ticket it follows); each
    frame is the page's whole state."""

    def __init__(self, branch: str, buffer: int, subject: Any) -> None:
        super().__init__(branch, buffer)
        self.subject = subject
        self.last = b""
        """The frame last queued for the page (bytes: not one more object for the garbage
        collector to follow, for each page and each update)."""
        self.ended = False
        """The state last queued is ``expired``: the stream ends after sending it."""


class Hub:
    """Screens and phone pages by branch."""

    def __init__(self, on_change: Callable[[str, int], None] | None = None) -> None:
        self.screens: dict[str, set[Screen]] = {}
        self.pages: dict[str, set[Page]] = {}
        self._on_change = on_change

    def add_page(self, page: Page) -> None:
        """Register a phone page."""
        self.pages.setdefault(page.branch, set()).add(page)

    def remove_page(self, page: Page) -> None:
        """Unregister a phone page."""
        group = self.pages.get(page.branch)
        if group is not None:
            group.discard(page)
            if not group:
                del self.pages[page.branch]

    def add(self, screen: Screen) -> int:
        """Register ``screen``; the branch's new count."""
        group = self.screens.setdefault(screen.branch, set())
        group.add(screen)
        if self._on_change:
            self._on_change(screen.branch, len(group))
        return len(group)

    def remove(self, screen: Screen) -> int:
        """Unregister ``screen``; the branch's remaining count."""
        group = self.screens.get(screen.branch, set())
        group.discard(screen)
        if not group:
            self.screens.pop(screen.branch, None)
        if self._on_change:
            self._on_change(screen.branch, len(group))
        return len(group)

    def publish(self, branch: str, events: list[Event]) -> None:
        """Hand ``events`` (in id order) to every screen of ``branch``; never blocks."""
        for screen in list(self.screens.get(branch, ())):
            if screen.dropped:  # its stream is ending (or never started): forget it
                self.remove(screen)
                continue
            for ev in events:
                if not screen.offer(ev):
                    log.warning("relay: a screen of branch %s fell %d calls behind: "
                                "disconnected (it resumes from its last call)",
                                branch, screen.queue.maxsize)
                    break

    def close_all(self) -> None:
        """End every stream (shutdown)."""
        for group in list(self.screens.values()):
            for screen in list(group):
                screen.drop(SHUTDOWN)
        for pages in list(self.pages.values()):
            for page in list(pages):
                page.drop(SHUTDOWN)
