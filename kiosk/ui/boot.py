"""Kivy's settings, applied before any Kivy window module is imported.

A kiosk offers no way out through Kivy: Kivy reads and writes no config file of its own
(``KIVY_NO_CONFIG``: its settings are ours, set here at every start, so nothing changed
at run time survives a restart), takes no settings from the environment or the command
line, loads no modules (inspector, screenshot, monitor...), and keeps its home in a
private folder (:func:`kivy_home`). The app swallows every key it does not use and never
opens Kivy's settings panel (see :mod:`kiosk.ui.app`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)


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
DISPLAY_SIZE = (1920, 1080)


def kivy_home(environ: Mapping[str, str] | None = None) -> Path:
    """Kivy's home folder: ``$KIVY_HOME`` if given; under systemd, ``kivy`` in the unit's
    private RuntimeDirectory (emptied at every stop); else a private folder of this user's
    (in ``$XDG_RUNTIME_DIR``, else ``~/.cache``). Never a predictable path in a shared
    folder such as /tmp, where another user could prepare it."""
    env = os.environ if environ is None else environ
    if env.get("KIVY_HOME"):
        return Path(env["KIVY_HOME"])
    if runtime := env.get("RUNTIME_DIRECTORY", "").split(":")[0]:
        return Path(runtime) / "kivy"
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg and _private(Path(xdg)):
        return Path(xdg) / "kiosk-kivy"
    return Path(env.get("HOME") or Path.home()) / ".cache" / "kiosk" / "kivy"


def _private(folder: Path) -> bool:
    """Whether ``folder`` is a real folder of ours that only we can enter."""
    try:
        st = folder.lstat()
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()
            and stat.S_IMODE(st.st_mode) & 0o077 == 0)


def make_private(folder: Path) -> Path:
    """Create ``folder`` (0700) or make it private; a symlink or someone else's folder
    there is refused (OSError)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise OSError(f"{folder} is not a folder of this user's: refusing it as Kivy's home")
    os.chmod(folder, 0o700)
    return folder


def prepare(kivy_home_dir: Path | None = None) -> None:
    """Load Kivy, but not its window (which needs :func:`configure` first): the slow part
    of starting Kivy, done while the core process starts up beside it."""
    os.environ["KIVY_NO_ARGS"] = "1"
    os.environ["KIVY_NO_CONFIG"] = "1"  # no config.ini read or written: ours, every start
    os.environ["KIVY_NO_ENV_CONFIG"] = "1"  # no KCFG_* overrides from the environment
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    # Without a GPU, Mesa's llvmpipe renders on worker threads that compete with the
    # app's own (the asyncio loop, the printer) on a small machine; rendering on the
    # calling thread measured at least as fast here (benchmarks/bench_ui.py: tap to
    # ticket on screen, median 50 ms vs 68 ms on 2 cores). Only Mesa's software
    # renderer reads this variable.
    os.environ.setdefault("LP_NUM_THREADS", "0")
    home = make_private(kivy_home_dir or kivy_home())
    os.environ["KIVY_HOME"] = str(home)
    with contextlib.suppress(FileNotFoundError):  # an older version's: never read again
        (home / "config.ini").unlink()
    # Kivy probes mtdev as it loads and logs a traceback where it lacks it; the kiosk
    # reads a touchscreen through mtdev only when configured to (then its own error shows).
    kivy_log = logging.getLogger("kivy")
    if not any(isinstance(f, _NoMtdevProbeError) for f in kivy_log.filters):
        kivy_log.addFilter(_NoMtdevProbeError())
    if not any(isinstance(f, _NoConfigUpgradeNote) for f in kivy_log.filters):
        kivy_log.addFilter(_NoConfigUpgradeNote())
    import kivy.app  # noqa: F401


def display_size() -> tuple[int, int] | None:
    """The usable area of the first display (without panels and docks), asked of the
    SDL library Kivy uses; None where it cannot tell."""
    import ctypes
    import ctypes.util
    import glob

    import kivy
    libs = sorted(glob.glob(str(Path(kivy.__file__).resolve().parent.parent / "Kivy.libs"
                                / "libSDL2-2*.so*")))
    name = libs[0] if libs else ctypes.util.find_library("SDL2-2.0") or \
        ctypes.util.find_library("SDL2")
    if not name:
        return None

    class Rect(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("w", ctypes.c_int),
                    ("h", ctypes.c_int)]
    try:
        sdl = ctypes.CDLL(name)
        video = 0x20  # SDL_INIT_VIDEO
        if sdl.SDL_InitSubSystem(video) != 0:
            return None
        try:
            rect = Rect()
            if sdl.SDL_GetDisplayUsableBounds(0, ctypes.byref(rect)) != 0:
                return None
        finally:
            sdl.SDL_QuitSubSystem(video)
    except (OSError, AttributeError) as exc:
        log.info("display size unknown: %s", exc)
        return None
    return (rect.w, rect.h) if rect.w > 0 and rect.h > 0 else None


def fit(size: tuple[int, int], display: tuple[int, int], *, margin: float = 0.92
        ) -> float:
    """The scale (at most 1) at which a window of ``size`` fits within ``margin`` of
    ``display``, proportions kept."""
    return min(1.0, display[0] * margin / size[0], display[1] * margin / size[1])


def ui_scale(mode: str, window: tuple[int, int]) -> float:
    """How much smaller than designed to draw in ``window``: the screens are laid out for
    the mode's size (kiosk 1080x1920, tablet 1280x800...) in either orientation, and a
    smaller window gets the same layout scaled down (at most 1: a larger one just has
    more room)."""
    design = {"kiosk": KIOSK_SIZE, "display": DISPLAY_SIZE}.get(mode, TABLET_SIZE)
    if (window[0] > window[1]) != (design[0] > design[1]):
        design = (design[1], design[0])
    return min(1.0, window[0] / design[0], window[1] / design[1])


def apply_scale(mode: str) -> float:
    """Scale everything drawn (Kivy's density) to the window's size (see :func:`ui_scale`):
    called once the window exists (setting the density earlier would open the window at
    Kivy's default size) and before any widget is built. Returns the scale."""
    from kivy.core.window import Window
    from kivy.metrics import Metrics
    scale = ui_scale(mode, (int(Window.width), int(Window.height)))
    if scale != 1.0:
        Metrics.density = float(os.environ.get("KIVY_METRICS_DENSITY") or 1.0) * scale
    return scale


def configure(mode: str, *, size: tuple[int, int] | None = None, fullscreen: bool = False,
              kivy_home_dir: Path | None = None, touchscreen: bool = False,
              fit_display: bool = False) -> tuple[int, int]:
    """Set up Kivy's window for ``mode`` (kiosk, tablet or display); returns its size.

    ``fit_display`` (the demo's window): a window of the mode's size that does not fit
    the display is scaled down to fit, proportions kept, and everything in it with it
    (Kivy's density): the same layout, smaller, never cut off by the screen's edge.
    """
    prepare(kivy_home_dir)
    from kivy.config import Config

    width, height = size or {"kiosk": KIOSK_SIZE, "display": DISPLAY_SIZE}.get(mode, TABLET_SIZE)
    if fit_display and not fullscreen and (display := display_size()) is not None \
            and (scale := fit((width, height), display)) < 1.0:
        # a width in whole 4-pixel steps (rows of pixels read back stay aligned); what
        # is drawn in it is scaled to match once it exists (apply_scale)
        width, height = int(width * scale) // 4 * 4, round(height * int(width * scale)
                                                           // 4 * 4 / width)
    Config.set("graphics", "width", str(width))
    Config.set("graphics", "height", str(height))
    Config.set("graphics", "resizable", "0" if fullscreen else "1")
    # No multisampling: at 1080x1920 Mesa's software renderer spends ~80 MB on the
    # multisample buffers (idle RSS 247 MB -> 186 MB) and draws each frame in less than
    # half the time (the home screen: 180 ms -> 80 ms on 2 cores, measured to glFinish);
    # GPUs like the Pi's pay for it in bandwidth. The rounded shapes draw their own
    # smooth edges (RoundedBox in the kv files, kiosk/ui/drawing.py), so nothing looks
    # jagged.
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
    Config.set("kivy", "keyboard_mode", "system")  # no on-screen keyboard to dock or move
    for option in list(Config.options("modules")):  # no inspector, screenshot, monitor...
        Config.remove_option("modules", option)
    # One input provider: the mouse (which SDL also feeds touchscreens through), with
    # multitouch emulation off, so a tap counts once and no red dots appear.
    for option in list(Config.options("input")):
        Config.remove_option("input", option)
    Config.set("input", "mouse", "mouse,disable_multitouch")
    if touchscreen:  # a Linux touchscreen read directly (see packaging/README.md)
        Config.set("input", "touch", "mtdev,/dev/input/touchscreen")
    return width, height
