"""The relay's garbage collection, with thousands of streams open (docs/hub.md "The phone").

Each open stream (a screen, a customer's phone page) holds about a hundred objects that
CPython's cyclic collector tracks: coroutines, their frames, futures, the connection's
parser. With 10,000 phone pages that is over a million objects, and each of CPython's
full (generation 2) collections walks all of them with the event loop stopped: 0.4 to
1.6 s measured (``benchmarks/bench_phone.py``), every screen and page waiting. It runs
whenever the objects that lived long enough to be promoted grew by a quarter: pages
opening, and the state each call gives every page of its branch (twice in 14 s of calls
in the benchmark).

The :class:`Collector` moves the survivors out of the collector's way: every
``relay.gc_freeze_s`` it calls :func:`gc.freeze` (constant time: the collector's lists are
spliced onto its permanent one), so a full collection walks only what was made since.
Objects frozen are still freed by reference counting the moment they are no longer used;
only reference *cycles* among them wait for the full pass that every
``relay.gc_full_pass_s`` unfreezes everything and collects it all, logged with its pause
and what it freed. Measured: about 5 such objects for each phone page opened and closed
(8,000 pages: 42,342 freed by a full pass of 94 ms); a busy hour of pages keeps a few MB
waiting for it. ``relay.gc_freeze_s: 0`` leaves CPython's default collection alone.

Only ``kiosk relay`` runs one: the collector is the process's, and a relay embedded in
another program (the tests' :class:`~kiosk.relay.server.RelayServer`) leaves that
program's collection to it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge

from kiosk.tasks import cancel

log = logging.getLogger("kiosk.relay")

FREEZE_S = 5.0
"""Seconds between two freezes (``relay.gc_freeze_s``)."""
FULL_PASS_S = 3600.0
"""Seconds between two full passes (``relay.gc_full_pass_s``)."""
SLOW_PASS_S = 0.25
"""A full pass stopping the relay longer than this is logged as a warning."""


class Collector:
    """The relay process's garbage-collection policy; :meth:`start` it in the relay's loop."""

    def __init__(self, freeze_s: float = FREEZE_S, full_pass_s: float = FULL_PASS_S,
                 registry: CollectorRegistry | None = None) -> None:
        self.freeze_s = freeze_s
        self.full_pass_s = full_pass_s
        self._last_full = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self.passes = Counter("relay_gc_full_passes", "Full garbage-collection passes "
                              "(everything unfrozen and collected; relay.gc_full_pass_s)",
                              registry=registry)
        self.pause = Gauge("relay_gc_full_pass_seconds", "How long the last full pass "
                           "stopped the relay", registry=registry)
        self.freed = Gauge("relay_gc_full_pass_freed_objects", "Objects the last full pass "
                           "found unreachable (reference cycles kept while frozen)",
                           registry=registry)
        Gauge("relay_gc_frozen_objects", "Objects frozen out of the collector's way "
              "(gc.get_freeze_count())", registry=registry).set_function(gc.get_freeze_count)

    def start(self) -> None:
        """Freeze what start-up made, and keep freezing (in the running loop)."""
        if self.freeze_s <= 0 or self._task is not None:
            return
        gc.collect()
        gc.freeze()
        self._last_full = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="relay-gc")

    async def stop(self) -> None:
        """Stop, and give every object back to the collector."""
        if self._task is None:
            return
        await cancel(self._task)
        self._task = None
        gc.unfreeze()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.freeze_s)
            self.step()

    def step(self) -> None:
        """One turn: a full pass when one is due, else a freeze."""
        if time.monotonic() - self._last_full >= self.full_pass_s:
            self.full_pass()
        else:
            gc.freeze()

    def full_pass(self) -> int:
        """Unfreeze everything, collect it all, freeze the survivors; the objects freed."""
        began = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        gc.freeze()
        pause = time.perf_counter() - began
        self._last_full = time.monotonic()
        self.passes.inc()
        self.pause.set(pause)
        self.freed.set(freed)
        log.log(logging.WARNING if pause > SLOW_PASS_S else logging.INFO,
                "relay: full garbage collection: %d objects freed, %d kept, %.0f ms",
                freed, gc.get_freeze_count(), pause * 1000)
        return freed
