"""Kivy's settings, applied before any Kivy window module is imported."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path


class _NoMtdevProbeError(logging.Filter):
    """Drops Kivy's "MTDev is not supported" error: we do not use mtdev then."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "MTDev is not supported" not in record.getMessage()


class _NoConfigUpgradeNote(logging.Filter):
    """Drops Kivy's warnings that it wrote a fresh config file (each new ``KIVY_HOME``,
    so on every boot: nothing anyone needs to act on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not message.startswith(("Config: Older configuration version detected",
                                       "Config: Upgrading configuration"))


KIOSK_SIZE = (1080, 1920)
TABLET_SIZE = (1280, 800)


def prepare(kivy_home: Path | None = None) -> None:
    """Load Kivy, but not its window (which needs :func:`configure` first): the slow part
    of starting Kivy, done while the core process starts up beside it."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    # Without a GPU, Mesa's llvmpipe renders on worker threads that compete with the
    # app's own (the asyncio loop, the printer) on a small machine; rendering on the
    # calling thread measured at least as fast here (benchmarks/bench_ui.py: tap to
    # ticket on screen, median 50 ms vs 68 ms on 2 cores). Only Mesa's software
    # renderer reads this variable.
    os.environ.setdefault("LP_NUM_THREADS", "0")
    home = kivy_home or Path(tempfile.gettempdir()) / f"kiosk-kivy-{os.getuid()}"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KIVY_HOME", str(home))
    # Kivy probes mtdev as it loads and logs a traceback where it lacks it; the kiosk
    # reads a touchscreen through mtdev only when configured to (then its own error shows).
    kivy_log = logging.getLogger("kivy")
    if not any(isinstance(f, _NoMtdevProbeError) for f in kivy_log.filters):
        kivy_log.addFilter(_NoMtdevProbeError())
    if not any(isinstance(f, _NoConfigUpgradeNote) for f in kivy_log.filters):
        kivy_log.addFilter(_NoConfigUpgradeNote())
    import kivy.app  # noqa: F401


def configure(mode: str, *, size: tuple[int, int] | None = None, fullscreen: bool = False,
              kivy_home: Path | None = None, touchscreen: bool = False) -> tuple[int, int]:
    """Set up Kivy's window for ``mode`` (kiosk or tablet); returns the window size."""
    prepare(kivy_home)
    from kivy.config import Config

    width, height = size or (KIOSK_SIZE if mode == "kiosk" else TABLET_SIZE)
    Config.set("graphics", "width", str(width))
    Config.set("graphics", "height", str(height))
    Config.set("graphics", "resizable", "0" if fullscreen else "1")
    # No multisampling: at 1080x1920 Mesa's software renderer spends ~80 MB on the
    # multisample buffers (idle RSS 247 MB -> 186 MB) and draws each frame in less than
    # half the time (the home screen: 180 ms -> 80 ms on 2 cores, measured to glFinish);
    # GPUs like the Pi's pay for it in bandwidth. The rounded shapes draw their own
    # smooth edges (SmoothRoundedRectangle in the kv files), so nothing looks jagged.
    Config.set("graphics", "multisamples", "0")
    if fullscreen:  # covers the display by itself, with or without a window manager
        Config.set("graphics", "fullscreen", "auto")
        Config.set("graphics", "borderless", "1")
        Config.set("graphics", "show_cursor", "0")
    Config.set("kivy", "exit_on_escape", "0")
    Config.set("kivy", "log_level", "warning")  # our own log says what matters
    logging.getLogger("kivy").setLevel(logging.WARNING)  # Kivy set it at import
    Config.set("kivy", "pause_on_minimize", "0")
    Config.set("kivy", "window_icon", "")
    # One input provider: the mouse (which SDL also feeds touchscreens through), with
    # multitouch emulation off, so a tap counts once and no red dots appear.
    for option in list(Config.options("input")):
        Config.remove_option("input", option)
    Config.set("input", "mouse", "mouse,disable_multitouch")
    if touchscreen:  # a Linux touchscreen read directly (see packaging/README.md)
        Config.set("input", "touch", "mtdev,/dev/input/touchscreen")
    return width, height
