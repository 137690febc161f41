"""Start the UI and the core on one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kiosk.service.runtime import Runtime
from kiosk.service.status import StatusWriter
from kiosk.service.watchdog import Watchdog
from kiosk.ui import boot

log = logging.getLogger(__name__)

FIRST_POLL_WAIT_S = 0.3
"""How long the window waits for the first queue data before it draws without it."""


async def first_frame_then_stop(app: Any, echo: Callable[[str], None] = print) -> None:
    """For smoke tests of a build: stop once the first frame with live queues is drawn."""
    started = time.monotonic()
    # Three conditions on two objects, for a smoke test: polling them is the simple way.
    while not (app.root is not None and app.rt.monitor.snapshot.fetched_at  # noqa: ASYNC110
               is not None and app.screen("home").cards):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # let that frame be drawn
    echo(f"first frame with live queue data after {time.monotonic() - started:.2f} s "
         f"({len(app.screen('home').cards)} queues)")
    app.stop()


async def run_ui(runtime: Runtime, *, mode: str | None = None, fullscreen: bool | None = None,
                 size: tuple[int, int] | None = None, config_path: str | None = None,
                 on_app: Callable[[Any], Awaitable[None] | None] | None = None) -> None:
    """Run the app until it stops (admin exit, or the process is told to stop).

    ``on_app(app)`` is called once the app exists (tests drive it from there).
    """
    cfg = runtime.config
    mode = mode or cfg.kiosk.mode
    full = cfg.ui.fullscreen if fullscreen is None else fullscreen
    # The first queue poll connects before Kivy loads (the network works while Kivy's
    # import blocks the loop), and the app waits a moment for its answer: the first frame
    # then shows the queues, not empty cards that fill in a frame later.
    runtime.monitor.start()
    await asyncio.sleep(0)
    boot.configure(mode, size=size, fullscreen=full, touchscreen=cfg.ui.touchscreen)
    from kiosk.ui.app import KioskApp  # imports Kivy's window: after configure()

    app = KioskApp(runtime, mode=mode, fullscreen=full, config_path=config_path)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(FIRST_POLL_WAIT_S):
            await runtime.monitor.polled()
    watchdog = Watchdog()
    status = StatusWriter(runtime)
    tasks: set[asyncio.Task[str]] = set()

    def started(*_: Any) -> None:  # the window is up and the loop runs: tell systemd
        watchdog.start(f"kiosk {cfg.kiosk.id} running ({mode} mode)")
        status.start()

    def reloaded(task: asyncio.Task[str]) -> None:
        tasks.discard(task)
        log.info("SIGHUP: %s", task.result())

    def reload() -> None:  # SIGHUP: a new config, without dropping a ticket in flight
        task = asyncio.ensure_future(runtime.reload_from(config_path))
        tasks.add(task)
        task.add_done_callback(reloaded)

    app.bind(on_start=started)
    driver = None
    if on_app is not None:
        maybe = on_app(app)
        if asyncio.iscoroutine(maybe):
            driver = asyncio.ensure_future(maybe)
    loop = asyncio.get_running_loop()
    handlers = {signal.SIGTERM: app.stop, signal.SIGINT: app.stop, signal.SIGHUP: reload}
    for sig, handler in handlers.items():  # systemd's stop and reload, Ctrl+C
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)
    try:
        await app.async_run(async_lib="asyncio")
    finally:
        for sig in handlers:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await watchdog.stop()
        await status.stop()
    if driver is not None and not driver.done():
        driver.cancel()
