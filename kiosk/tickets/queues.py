"""The branch's queues as the kiosk shows them, and the monitor that keeps them live.

:class:`QueueMonitor` polls ``GET /branches/:branch/queues`` every ``period_s`` seconds,
one request per poll (no client-side retries), backs off on errors (doubling, capped;
at a slow pace at once when the key is refused), and always exposes the last good state
with its age, so a screen can say "updated 40 s ago" rather than go blank.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from kiosk.api import QmsClient, Queue
from kiosk.api.client import DEFAULT_RETRY, RetryPolicy
from kiosk.config import Config, QueueConfig
from kiosk.errors import ApiError, Forbidden, Unauthorized
from kiosk.i18n import wait_in_minutes
from kiosk.store import derive_prefix
from kiosk.tasks import cancel
from kiosk.view.outcomes import QueueSnapshot, QueueView

if TYPE_CHECKING:
    import httpx
    from pydantic import SecretStr

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
AUTH_BACKOFF_S = 60.0
KEEP_MISSING_S = 600.0
"""A queue missing from an answer (its item was unreadable, or it is gone) keeps its last
good data this long, its card saying how old it is; then it is dropped."""


def _name(qc: QueueConfig | None, lang: str, default: str) -> str:
    names: dict[str, str] = {str(k): v for k, v in qc.names.items()} if qc else {}
    return names.get(lang) or default


def _prefix(qc: QueueConfig | None, name: str) -> str:
    return (qc.prefix if qc else None) or derive_prefix(name)


def queue_views(config: Config, queues: list[Queue], lang: str,
                ages: dict[str, float] | None = None, *, priority: bool = False
                ) -> list[QueueView]:
    """The queues to show, in config order (or the API's when none are configured);
    ``ages``: how old each queue's data is (seconds). ``priority``: as a priority customer
    sees them: a queue with a ``priority_queue`` shows that segment's agents and wait
    (when the API lists it), under the queue's own name and prefix."""
    ages = ages or {}
    by_id = {q.id: q for q in queues}
    pairs: list[tuple[QueueConfig | None, Queue]]
    if config.queues:
        pairs = [(qc, by_id[qc.id]) for qc in config.queues if qc.id in by_id]
    else:
        pairs = [(None, q) for q in queues]
    views = []
    for qc, q in pairs:
        live = q
        if priority and qc is not None and qc.priority_queue in by_id:
            live = by_id[qc.priority_queue]
        views.append(QueueView(
            id=q.id, name=_name(qc, lang, q.name), api_name=q.name, users=live.users,
            avg_waiting_time=live.avg_waiting_time,
            wait_minutes=wait_in_minutes(live.avg_waiting_time, config.api.wait_unit),
            prefix=_prefix(qc, q.name), age_s=ages.get(live.id, ages.get(q.id))))
    return views


def priority_segment(config: Config, queue_id: str) -> str:
    """Where a priority ticket for ``queue_id`` goes: its ``priority_queue``, else itself."""
    qc = config.queue(queue_id)
    return (qc.priority_queue if qc is not None else None) or queue_id


def unknown_queue_view(config: Config, queue_id: str, lang: str) -> QueueView:
    """A view of a queue the API has not listed (yet): its config, or just its id."""
    qc = config.queue(queue_id)
    name = _name(qc, lang, queue_id)
    return QueueView(id=queue_id, name=name, api_name="", users=0, avg_waiting_time=0.0,
                     wait_minutes=0.0, prefix=_prefix(qc, name))


class QueueMonitor:
    """Polls the branch's queues and keeps the last good state."""

    def __init__(self, api: QmsClient, branch: str, *, period_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self._branch = branch
        self.period_s = period_s
        self._clock = clock
        self.snapshot: QueueSnapshot[Queue] = QueueSnapshot()
        self._listeners: list[Callable[[QueueSnapshot[Queue]], None]] = []
        self._wake = asyncio.Event()
        self._polled = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, listener: Callable[[QueueSnapshot[Queue]], None]) -> None:
        """Call ``listener(snapshot)`` after every poll."""
        self._listeners.append(listener)

    def next_delay(self) -> float:
        """Seconds until the next poll given how the last ones went."""
        snap = self.snapshot
        if snap.failures == 0:
            return self.period_s
        if isinstance(snap.error, Unauthorized | Forbidden):
            return AUTH_BACKOFF_S
        return min(MAX_BACKOFF_S, self.period_s * 2.0 ** min(snap.failures, 8))

    async def poll_once(self) -> QueueSnapshot[Queue]:
        """One request; update and publish the snapshot."""
        try:
            queues = await self.api.list_queues(self._branch, retries=0)
        except ApiError as exc:
            prev = self.snapshot
            self.snapshot = QueueSnapshot(prev.queues, prev.fetched_at, exc, prev.failures + 1,
                                          prev.seen)
            log.warning("queue poll failed (%d in a row): %s", self.snapshot.failures, exc)
        else:
            if self.snapshot.failures:
                log.info("queue poll recovered after %d failures", self.snapshot.failures)
            self.snapshot = self._merged(queues)
        for listener in self._listeners:
            try:
                listener(self.snapshot)
            except Exception:
                log.exception("queue listener failed")
        self._polled.set()
        return self.snapshot

    def ages(self) -> dict[str, float]:
        """How old each queue's data is now (seconds)."""
        snap, now = self.snapshot, self._clock()
        return {q.id: age for q in snap.queues if (age := snap.queue_age(q.id, now)) is not None}

    def _merged(self, queues: list[Queue]) -> QueueSnapshot[Queue]:
        """This answer's queues, plus those of the last ones missing from it (for
        :data:`KEEP_MISSING_S`), each with the time its data was read."""
        now = self._clock()
        prev = self.snapshot
        seen = {q.id: now for q in queues}
        kept = list(queues)
        for q in prev.queues:
            last = prev.seen.get(q.id, prev.fetched_at)
            if q.id not in seen and last is not None and now - last <= KEEP_MISSING_S:
                kept.append(q)
                seen[q.id] = last
        return QueueSnapshot(tuple(kept), now, None, 0, seen)

    async def polled(self) -> None:
        """Return once a poll has answered (or failed) since this monitor was made."""
        await self._polled.wait()

    def unsubscribe(self, listener: Callable[[QueueSnapshot[Queue]], None]) -> None:
        """Stop calling ``listener``."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def poll_soon(self) -> None:
        """Ask for a poll now (e.g. after a 406, or when the admin asks)."""
        self._wake.set()

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await self.poll_once()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.next_delay())

    def start(self) -> asyncio.Task[None]:
        """Run in the background on the current loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="queue-monitor")
        return self._task

    async def stop(self) -> None:
        """Stop polling."""
        await cancel(self._task)
        self._task = None


def open_monitor(config: Config, api_key: SecretStr | str, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 retry: RetryPolicy = DEFAULT_RETRY) -> QueueMonitor:
    """The API client and the queue monitor alone: what the first poll needs (the core
    process polls with it before it opens the journal and the printer)."""
    api = QmsClient(config.api.base_url, api_key, timeout_s=config.api.timeout_s,
                    transport=transport, retry=retry)
    return QueueMonitor(api, config.branch, period_s=config.ui.refresh_s)
