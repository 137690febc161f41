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


KIOSK_SIZE = (1080, 1920)
TABLET_SIZE = (1280, 800)


def configure(mode: str, *, size: tuple[int, int] | None = None, fullscreen: bool = False,
              kivy_home: Path | None = None, touchscreen: bool = False) -> tuple[int, int]:
    """Set up Kivy for ``mode`` (kiosk or tablet); returns the window size."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    # Without a GPU, Mesa's llvmpipe renders on worker threads; on a small machine they
    # fight the app's threads, and a texture upload (a new ticket number) then waits
    # 0.2 s to 3 s for them (measured on 2 cores). Rendering on the calling thread
    # removed those stalls. Only Mesa's software renderer reads this variable.
    os.environ.setdefault("LP_NUM_THREADS", "0")
    home = kivy_home or Path(tempfile.gettempdir()) / f"kiosk-kivy-{os.getuid()}"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KIVY_HOME", str(home))

    if not touchscreen:  # Kivy probes mtdev at import and logs a traceback where it lacks it
        logging.getLogger("kivy").addFilter(_NoMtdevProbeError())

    from kivy.config import Config

    width, height = size or (KIOSK_SIZE if mode == "kiosk" else TABLET_SIZE)
    Config.set("graphics", "width", str(width))
    Config.set("graphics", "height", str(height))
    Config.set("graphics", "resizable", "0" if fullscreen else "1")
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
