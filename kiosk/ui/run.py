"""Start the UI and the core on one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from kiosk.service.runtime import Runtime
from kiosk.ui import boot

log = logging.getLogger(__name__)


async def run_ui(runtime: Runtime, *, mode: str | None = None, fullscreen: bool | None = None,
                 size: tuple[int, int] | None = None, config_path: str | None = None,
                 on_app: Callable[[Any], Awaitable[None] | None] | None = None) -> None:
    """Run the app until it stops (admin exit, or the process is told to stop).

    ``on_app(app)`` is called once the app exists (tests drive it from there).
    """
    cfg = runtime.config
    mode = mode or cfg.kiosk.mode
    full = cfg.ui.fullscreen if fullscreen is None else fullscreen
    # The first queue poll goes out before the window opens, so the first frame has data.
    runtime.monitor.start()
    await asyncio.sleep(0)
    boot.configure(mode, size=size, fullscreen=full, touchscreen=cfg.ui.touchscreen)
    from kiosk.ui.app import KioskApp  # imports Kivy's window: after configure()

    app = KioskApp(runtime, mode=mode, fullscreen=full, config_path=config_path)
    driver = None
    if on_app is not None:
        maybe = on_app(app)
        if asyncio.iscoroutine(maybe):
            driver = asyncio.ensure_future(maybe)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # systemd's stop, Ctrl+C: a clean exit
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, app.stop)
    try:
        await app.async_run(async_lib="asyncio")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    if driver is not None and not driver.done():
        driver.cancel()
