"""Refusals logged at most once a period per kind, every one of them counted.

Anyone on the internet can make the relay refuse something (a bad signature, a flood of
connections), so a refusal must not cost a log line each: :class:`RateLimitedLog` logs
the first refusal of a kind at once, then stays quiet for ``period_s``; the next refusal
of that kind after the period is logged with how many were not
(``"...; 41 more refused since 10:02:13"``). Every refusal, logged or not, increments a
Prometheus counter labelled by its kind, so ``/metrics`` has the exact counts::

    refusals = RateLimitedLog(log, 60, counter=metrics.webhooks, labels=("rejected",))
    refusals.warning("bad_signature", "relay: webhook refused (401): branch %r", branch)

Kinds are a small fixed set chosen by the caller (never outside data: each is a label
value and a slot here). Outside data belongs in ``args`` with ``%r`` in ``msg`` (it then
cannot forge a log line). Standard library only besides the counter it is handed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class _CounterChild(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class LabelledCounter(Protocol):
    """What :class:`RateLimitedLog` needs of a ``prometheus_client.Counter``."""

    def labels(self, *labelvalues: str) -> _CounterChild: ...


@dataclass
class _Kind:
    next_log: float
    """When a refusal of this kind may be logged again (monotonic seconds)."""
    quiet: int = 0
    """Refusals not logged since the last line."""
    since: float = 0.0
    """Wall-clock time of the last line (said in the next one)."""
    word: str = "refused"
    """What the quiet ones were (``"; 41 more refused since ..."``)."""
    level: int = logging.WARNING
    """The level of the kind's lines (a summary line too)."""


class RateLimitedLog:
    """A logger's warnings, at most one per ``period_s`` per kind, all of them counted.

    ``counter`` (optional) is a labelled Prometheus counter: each refusal increments
    ``counter.labels(*labels, kind)``, so pass ``labels`` for any label before the kind.
    """

    def __init__(self, logger: logging.Logger, period_s: float = 60.0, *,
                 counter: LabelledCounter | None = None, labels: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        if period_s <= 0:
            raise ValueError("period_s must be positive")
        self.logger = logger
        self.period_s = period_s
        self.counter = counter
        self.labels = labels
        self._clock = clock
        self._wall = wall
        self._kinds: dict[str, _Kind] = {}

    def warning(self, kind: str, msg: str, *args: object) -> bool:
        """Count a refusal of ``kind``; log ``msg % args`` at WARNING unless one of this
        kind was logged less than ``period_s`` ago. True when this one was logged."""
        return self.log(logging.WARNING, kind, msg, *args)

    def log(self, level: int, kind: str, msg: str, *args: object,
            more: str = "refused") -> bool:
        """As :meth:`warning`, at ``level``; ``more`` says what the ones not logged were
        (``"like it"`` for what is not a refusal)."""
        if self.counter is not None:
            self.counter.labels(*self.labels, kind).inc()
        moment = self._clock()
        state = self._kinds.get(kind)
        if state is not None and moment < state.next_log:
            state.quiet += 1
            return False
        if state is None:
            state = self._kinds[kind] = _Kind(next_log=0.0)
        quiet, state.quiet = state.quiet, 0
        if quiet:
            msg += "; %d more %s since %s"
            args = (*args, quiet, state.word,
                    time.strftime("%H:%M:%S", time.localtime(state.since)))
        state.word, state.level = more, level
        state.next_log = moment + self.period_s
        state.since = self._wall()
        self.logger.log(level, msg, *args)
        return True

    def pending(self, kind: str) -> int:
        """Refusals of ``kind`` counted but not logged yet."""
        state = self._kinds.get(kind)
        return state.quiet if state is not None else 0

    def flush(self) -> None:
        """Log one summary line per kind whose period is over and that has refusals not
        logged yet (call it now and then if a burst may be followed by silence)."""
        moment = self._clock()
        for kind, state in self._kinds.items():
            if state.quiet and moment >= state.next_log:
                more, state.quiet = state.quiet, 0
                self.logger.log(state.level, "%d more %s (%s) since %s", more, state.word,
                                kind, time.strftime("%H:%M:%S", time.localtime(state.since)))
                state.next_log = moment + self.period_s
                state.since = self._wall()
