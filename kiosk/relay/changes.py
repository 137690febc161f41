"""Who wants to know when a branch's day changes: a ticket reported, a ticket called.

The phone pages (``/t/{token}``) follow their ticket's branch here rather than the call
stream: :meth:`kiosk.relay.app.Relay.follow` subscribes a callback for a branch (and makes
sure the branch's calls reach this replica). A callback runs on the event loop and must
not block or await: it should only note the change (a bounded queue, an event) and return;
one that raises is logged and the others are still told.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """A branch's day changed: ``kind`` ``report`` (a ticket reported, or its outcome
    replaced) or ``call`` (a ticket called, or called again)."""

    branch: str
    kind: Literal["report", "call"]
    ticket_id: str


Listener = Callable[[Change], None]
"""Told of each change of the branch it subscribed to."""


class Changes:
    """Subscribers by branch."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[Listener]] = {}

    def subscribe(self, branch: str, listener: Listener) -> Callable[[], None]:
        """Tell ``listener`` of ``branch``'s changes; returns the call that stops it."""
        self._listeners.setdefault(branch, set()).add(listener)

        def stop() -> None:
            group = self._listeners.get(branch)
            if group is not None:
                group.discard(listener)
                if not group:
                    del self._listeners[branch]
        return stop

    def followed(self, branch: str) -> bool:
        """Whether anyone follows ``branch``."""
        return branch in self._listeners

    def publish(self, change: Change) -> None:
        """Tell every subscriber of the change's branch (never blocks)."""
        for listener in list(self._listeners.get(change.branch, ())):
            try:
                listener(change)
            except Exception:
                log.exception("relay: a subscriber of branch %s failed", change.branch)
