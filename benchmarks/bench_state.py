"""The device's state (issue 19): what composing it costs, and what the heartbeat's
once-a-second watch for a change costs, with a day's journal of N tickets.

A kiosk's runtime against the mock API (in-process), its journal filled with N issued
tickets today (one in ten a priority one). Measured in the same run:

- ``compose()``: the whole state (journal counts, priority, call waits, last ticket),
  what status.json (every 5 s), the staff screen and each heartbeat (every 30 s) compose;
- ``watched()``: the words the heartbeat compares every second (nothing read from disk).

Goal (a ratio in one run): at 2,000 tickets, ``watched()`` is at least 50 x cheaper than
``compose()``: watching for a change every second costs next to nothing.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_state.py [--tickets 100 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.core.runtime import Runtime, open_runtime
from kiosk.core.state import compose, watched
from kiosk.mock import MockState, create_app, default_scenario_path, load_scenario
from tests.conftest import ATENCION, FAST_RETRY, KEY, make_config


def per_call_ms(f: Callable[[Runtime], Any], rt: Runtime, rounds: int) -> float:
    """The mean time of one call, in ms."""
    t0 = time.perf_counter()
    for _ in range(rounds):
        f(rt)
    return 1000 * (time.perf_counter() - t0) / rounds


async def measure(n: int) -> tuple[float, float]:
    """(compose ms, watched ms) with ``n`` tickets today."""
    state = MockState(load_scenario(default_scenario_path()))
    rt = open_runtime(make_config(Path(tempfile.mkdtemp(prefix="bench-state-"))), KEY,
                      retry=FAST_RETRY, transport=httpx.ASGITransport(app=create_app(state)))
    try:
        await rt.monitor.poll_once()
        for i in range(n):
            row = rt.journal.reserve(queue_id=ATENCION, queue_name="Caja", prefix="A",
                                     fmt="{prefix}-{seq:04d}",
                                     priority="senior" if i % 10 == 0 else None)
            rt.journal.finish(row.row_id, "issued", videsk_id=f"v{i}")
        return per_call_ms(compose, rt, 50), per_call_ms(watched, rt, 2000)
    finally:
        await rt.aclose()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--tickets", type=int, nargs="+", default=[100, 2000])
    args = p.parse_args()
    ratio = 0.0
    for n in args.tickets:
        full, watch = asyncio.run(measure(n))
        ratio = full / watch
        print(f"{n:>6} tickets today: compose() {full:.3f} ms, watched() {watch:.4f} ms "
              f"({ratio:.0f} x cheaper)")
    ok = ratio >= 50
    print(f"goal (watched at least 50 x cheaper at {args.tickets[-1]} tickets): "
          f"{'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
