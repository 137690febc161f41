"""Start the UI beside the kiosk's core and run it until it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from kiosk.link.client import STOP_WAIT_S, CoreFailed, CoreProcess, RemoteCore
from kiosk.link.watchdog import Watchdog
from kiosk.ui import boot

log = logging.getLogger(__name__)

FIRST_POLL_WAIT_S = 0.3
"""How long the window waits for the first queue data before it draws without it."""
PID_FILE = "ui.pid"
"""In systemd's RuntimeDirectory: the unit's ExecReload sends SIGHUP to this pid."""


def write_pid_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """Under systemd (``$RUNTIME_DIRECTORY`` set), write this process's pid there, so that
    ``systemctl reload kiosk`` reaches the app and not cage, the unit's main process (cage
    ends on SIGHUP). Returns the file written, if any."""
    env = os.environ if environ is None else environ
    folder = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if not folder:
        return None
    path = Path(folder) / PID_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n", encoding="ascii")
    tmp.replace(path)  # never half a number for a reload to read
    return path


def remove_pid_file(path: Path | None) -> None:
    """Remove our pid file (if it is still ours)."""
    with contextlib.suppress(OSError):
        if path is not None and path.read_text(encoding="ascii").strip() == str(os.getpid()):
            path.unlink()


async def first_frame_then_stop(app: Any, echo: Callable[[str], None] = print) -> None:
    """For smoke tests of a build: stop once the first frame with live queues is drawn
    (a calling screen: once it shows its first call, through the demo's relay)."""
    started = time.monotonic()
    if app.mode == "display":
        while not (app.root is not None and app.screen("home").ticket):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        home = app.screen("home")
        echo(f"first call on screen after {time.monotonic() - started:.2f} s: "
             f"{home.ticket} → {home.poc}")
        app.stop()
        return
    # Three conditions on two objects, for a smoke test: polling them is the simple way.
    while not (app.root is not None and app.core.snapshot.fetched_at  # noqa: ASYNC110
               is not None and app.screen("home").cards):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # let that frame be drawn
    echo(f"first frame with live queue data after {time.monotonic() - started:.2f} s "
         f"({len(app.screen('home').cards)} queues)")
    app.stop()


async def run_ui(core: CoreProcess | RemoteCore, *, mode: str | None = None,
                 fullscreen: bool | None = None, size: tuple[int, int] | None = None,
                 on_app: Callable[[Any], Awaitable[None] | None] | None = None,
                 echo: Callable[[str], None] | None = None, fit_display: bool = False) -> int:
    """Run the app until it stops (admin exit, SIGTERM, or the core ending); returns the
    exit status: 0, the core's status if it could not start, 1 if it stopped under us.

    ``core`` is a :class:`CoreProcess` just started (Kivy loads here while the core starts
    up beside it) or a connected :class:`RemoteCore` (tests serve one in-process).
    ``on_app(app)`` is called once the app exists (tests drive it from there).
    """
    process: CoreProcess | None = None
    if isinstance(core, CoreProcess):
        process, link = core, await core.connect()
    else:
        link = core
    boot.prepare()  # Kivy loads (not its window) while the core reads its config
    try:
        settings = await link.ready()
    except CoreFailed as exc:  # it said why on stderr
        await link.aclose()
        if process is not None:
            await process.wait()
        return exc.status
    if echo is not None and link.note:
        echo(link.note)
    mode = mode or settings.mode
    full = settings.fullscreen if fullscreen is None else fullscreen
    if settings.audio_device:  # audio guidance's output: ALSA's device, read by SDL
        os.environ["AUDIODEV"] = settings.audio_device
    boot.configure(mode, size=size, fullscreen=full, touchscreen=settings.touchscreen,
                   fit_display=fit_display)  # a window on a developer's screen: fits it
    # imports Kivy's window: after configure()
    if mode == "display":
        from kiosk.ui.display import CallingApp as app_class
    else:
        from kiosk.ui.app import KioskApp as app_class

    boot.apply_scale(mode)  # a window smaller than designed: the same layout, smaller

    app = app_class(link, mode=mode, fullscreen=full)
    app.preload()
    # The core polls the queues as soon as it has its config; the first frame waits a
    # moment for them, so that it shows the queues rather than cards that fill in later.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(FIRST_POLL_WAIT_S):
            await link.polled()
    watchdog = Watchdog(check=link.ping)  # fed only while the core answers too
    tasks: set[asyncio.Future[Any]] = set()
    status = 0

    def started(*_: Any) -> None:  # the window is up and the loop runs: tell systemd
        watchdog.start(f"kiosk {settings.kiosk_id} running ({mode} mode)")

    def reloaded(task: asyncio.Future[str]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is None:
            log.info("SIGHUP: %s", task.result())

    def reload() -> None:  # SIGHUP: the core reads the config again, mid-ticket or not
        task = asyncio.ensure_future(link.reload())
        tasks.add(task)
        task.add_done_callback(reloaded)

    def core_gone(_: asyncio.Future[None]) -> None:
        nonlocal status
        if not app.stopping:
            log.error("the kiosk core stopped: the kiosk stops too (to be started again)")
            status = 1
            app.stop()

    app.bind(on_start=started)
    link.closed.add_done_callback(core_gone)
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
    pid_file = None
    try:
        pid_file = write_pid_file()
    except OSError as exc:
        log.warning("no pid file for reload: %s", exc)
    try:
        await app.async_run(async_lib="asyncio")
    finally:
        remove_pid_file(pid_file)
        for sig in handlers:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        link.closed.remove_done_callback(core_gone)
        await watchdog.stop()
        await link.aclose()
        if process is not None and (code := await process.wait(
                link.settings.stop_wait_s if link.settings else STOP_WAIT_S)) != 0:
            log.warning("the kiosk core exited with status %s", code)
    if driver is not None and not driver.done():
        driver.cancel()
    return status
