"""The calling screen: webhook → call on screen, and the frame loop while calls are said.

A relay on loopback (its own thread, as in the demo), the calling screen in a real Kivy
window (1920x1080, SDL offscreen; sound to SDL's dummy device) with its core in this
process over a real link. Each round posts one signed webhook and measures:

- webhook → screen: from the POST to the first frame drawn with the call on it;
- the frame loop while the call is announced: the longest gap between two turns of
  Kivy's clock in the 4 s after the call (the flash redraws, the chime plays, espeak-ng
  synthesises on its worker thread, the words play). Rounds alternate speech on and off,
  so both carry the same drawing; the difference is what speech costs the main thread.

Goal (a ratio in one run, never an absolute): the median longest gap with speech is at
most 1.5 x the median without: speech never blocks a frame.

    .venv/bin/python benchmarks/bench_display.py [--calls 8]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from kiosk.calls.feed import CallFeed  # noqa: E402
from kiosk.config import config_from_mapping  # noqa: E402
from kiosk.core.server import serve_display_in_process  # noqa: E402
from kiosk.relay import RelayServer, RelaySettings  # noqa: E402

BRANCH = "652720d479497a1b62df288b"
SECRET = b"bench-secret-0123456789abcdef0123"
TOKEN = "bench-display-token-0123456789abcdef"
GOAL_GAP_RATIO = 1.5


def post(url: str, n: int) -> None:
    body = json.dumps({"event": "qms.ticket.assigned", "ticketId": f"A-{n:03d}",
                       "callId": f"bench-{n}", "branch": {"id": BRANCH, "label": "Bench"},
                       "queue": {"id": "q", "name": "Caja"}, "poc": {"id": "p", "label":
                       f"Cabina {n % 6 + 1}"}, "integrationData": {"lang": "es"}}).encode()
    sig = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    r = httpx.post(url + "/webhooks/videsk", content=body, timeout=10, headers={
        "Content-Type": "application/json", "X-Kiosk-Signature": f"sha256={sig}"})
    r.raise_for_status()


async def bench(calls: int, tmp: Path) -> int:
    from kiosk.ui.run import run_ui
    token = tmp / "token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    config = config_from_mapping({
        "branch": BRANCH, "kiosk": {"id": "bench-tv", "mode": "display",
                                    "data_dir": str(tmp / "d")},
        "calls": {"url": "http://127.0.0.1:1", "token_file": str(token)},
        "ticket": {"branch_label": "Bench"}, "ui": {"fullscreen": False}}, "(bench)")
    latencies: list[float] = []
    idle_gaps: list[float] = []
    busy_gaps: list[float] = []
    spoken: list[object] = []
    arrived: list[float] = []
    settings = RelaySettings(secrets=(SECRET,), displays={TOKEN: BRANCH},
                             sqlite_path=tmp / "relay.sqlite3")
    with RelayServer(settings) as relay:
        config = config.model_copy(update={"calls": config.calls.model_copy(  # type: ignore[union-attr]
            update={"url": relay.url})})
        feed = CallFeed.from_config(config, SecretStr(TOKEN))
        core, served = await serve_display_in_process(config, feed)

        async def until(predicate: object, step: float = 0.001) -> None:
            while not predicate():  # type: ignore[operator]  # noqa: ASYNC110 - a bench polls
                await asyncio.sleep(step)

        async def drive(app: object) -> None:
            from kivy.clock import Clock
            from kivy.core.window import Window
            flips: list[float] = []
            ticks: list[float] = []
            Window.bind(on_flip=lambda *_: flips.append(time.perf_counter()))
            ev = Clock.schedule_interval(lambda dt: ticks.append(time.perf_counter()), 0)
            try:
                await until(lambda: app.root is not None  # type: ignore[attr-defined]
                            and app.core.calls_connected, 0.05)  # type: ignore[attr-defined]
                await asyncio.sleep(1.0)
                announcer = app.announcer  # type: ignore[attr-defined]
                for n in range(1, calls + 1):
                    speech = n % 2 == 1
                    announcer.speech_on = speech
                    screen = app.screen("home")  # type: ignore[attr-defined]
                    t0 = time.perf_counter()
                    await asyncio.to_thread(post, relay.url, n)
                    await until(lambda: screen.ticket == f"A-{n:03d}")  # noqa: B023
                    arrived.append((time.perf_counter() - t0) * 1000)
                    seen = len(flips)
                    await until(lambda: len(flips) > seen)  # noqa: B023
                    latencies.append((flips[seen] - t0) * 1000)
                    await asyncio.sleep(max(0.0, t0 + 4.0 - time.perf_counter()))
                    window = [t for t in ticks if t >= t0]
                    gap = max(b - a for a, b in itertools.pairwise(window))
                    (busy_gaps if speech else idle_gaps).append(gap)
                    await until(lambda: announcer.idle, 0.05)  # the words end first
                    await asyncio.sleep(0.5)
                spoken.extend(announcer.spoken)
            finally:
                ev.cancel()
                app.stop()  # type: ignore[attr-defined]

        try:
            await run_ui(core, mode="display", fullscreen=False, on_app=drive)
            await asyncio.wait_for(served, 10)
        finally:
            await feed.aclose()
    quiet, said = statistics.median(idle_gaps), statistics.median(busy_gaps)
    ok = said <= GOAL_GAP_RATIO * quiet and len(spoken) == len(busy_gaps)
    print(f"calling screen, {calls} calls through a loopback relay (1920x1080, offscreen)")
    print(f"  webhook -> call on screen: median {statistics.median(latencies):.0f} ms, "
          f"max {max(latencies):.0f} ms (the call in the UI process: median "
          f"{statistics.median(arrived):.0f} ms; the rest is drawing the frame)")
    print(f"  longest frame-loop gap in the 4 s after a call (median of rounds): "
          f"flash + chime {quiet * 1000:.0f} ms, flash + chime + speech {said * 1000:.0f} ms "
          f"({len(spoken)} announcements, espeak-ng on its worker thread)")
    print(f"  ratio {said / quiet:.2f}x (goal <= {GOAL_GAP_RATIO}x) {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("KIVY_HOME", str(Path(tmp) / "kivy"))
        return asyncio.run(bench(args.calls, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
