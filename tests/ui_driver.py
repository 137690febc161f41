"""Drive the real Kivy app in tests: simulated touches, key presses, frames, screenshots.

Kivy runs on SDL's offscreen driver (no X server needed) or under Xvfb; the app runs on
the test's asyncio loop through :func:`kiosk.ui.run.run_ui`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


def in_a_window_of_its_own(test_file: str, test_id: str, window: str) -> bool:
    """Kivy makes one window per process, and SDL's offscreen window cannot be resized:
    a test that needs another size (the tablet's 1280x800, the display's 1920x1080) runs
    again in a new process. True in the parent (after checking the child passed), False in
    the child, which runs the test's body."""
    if os.environ.get("KIOSK_TEST_WINDOW") == window:
        return False
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"{test_file}::{test_id}"], capture_output=True, text=True,
                       timeout=300, cwd=Path(__file__).resolve().parent.parent,
                       env=dict(os.environ, KIOSK_TEST_WINDOW=window))
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    return True


async def frames(n: int = 3) -> None:
    """Let Kivy draw ``n`` frames."""
    from kivy.clock import Clock
    for _ in range(n):
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def drawn(dt: float, fut: asyncio.Future[None] = done) -> None:
            if not fut.done():
                fut.set_result(None)

        Clock.schedule_once(drawn, 0)
        await asyncio.wait_for(done, 5)
        await asyncio.sleep(0.02)


async def until(predicate: Any, timeout: float = 10.0, what: str = "") -> None:
    """Wait (drawing frames) until ``predicate()`` is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await frames(1)


def _touch(x: float, y: float) -> Any:
    from kivy.tests.common import UnitTestTouch
    return UnitTestTouch(x, y)


async def tap(widget: Any, after: bool = True) -> None:
    """Press and release in the middle of ``widget``, like a finger: where it is once its
    screen is shown and laid out (a screen just made current may not be laid out yet: its
    widgets still at their default place, a tap there missed, now and then)."""
    await screen_settled()
    await frames(1)
    x, y = widget.to_window(*widget.center)
    await tap_at(x, y, after=after)


async def tap_at(x: float, y: float, hold: float = 0.05, after: bool = True) -> None:
    """A finger's tap at window coordinates; ``after``: then a frame (not for a tap that
    stops the app: no frame comes after that)."""
    await screen_settled()
    touch = _touch(x, y)
    touch.touch_down()
    await asyncio.sleep(hold)
    await frames(1)
    touch.touch_up()
    if after:
        await frames(1)


async def staff_screen(app: Any, pin: str = "123456") -> Any:
    """The staff screen, reached as staff reach it: hold the hidden corner, type the PIN
    (from the home screen)."""
    from kivy.core.window import Window
    await tap_at(10, Window.height - 10, hold=2.3)
    await until(lambda: app.sm.current == "pin", what="PIN screen")
    pad = app.screen("pin")
    for k in pin:
        pad.press(k)
    pad.press("OK")
    await until(lambda: app.sm.current == "admin", what="admin screen")
    return app.screen("admin")


async def screen_settled() -> None:
    """Wait until the screen manager is not between two screens: Kivy's ScreenManager
    drops touches while a transition runs, even NoTransition's (done at the next Clock
    tick), and a finger cannot tap a screen that is not shown yet either."""
    from kivy.app import App
    sm = getattr(App.get_running_app(), "root", None)
    transition = getattr(sm, "transition", None)
    if transition is not None:
        await until(lambda: not transition.is_active, what="the screen change")


async def key(code: int, modifiers: list[str] | None = None, codepoint: str = "") -> bool:
    """A key press as SDL delivers it to the window (Kivy's window_sdl2): on_key_down,
    then on_keyboard unless a handler took the key. Returns whether one did."""
    from kivy.core.window import Window
    taken = bool(Window.dispatch("on_key_down", code, 0, codepoint, modifiers or []))
    if not taken:
        taken = bool(Window.dispatch("on_keyboard", code, 0, codepoint, modifiers or []))
    Window.dispatch("on_key_up", code, 0)
    await frames(1)
    return taken


async def screenshot(name: str) -> Path:
    """Save the window as ``artifacts/screenshots/<name>.png``."""
    from kivy.core.window import Window
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await frames(2)
    saved = Path(Window.screenshot(name=str(ARTIFACTS / f"{name}.png")))
    target = ARTIFACTS / f"{name}.png"
    saved.replace(target)
    return target


def costly_drawing(widget: Any) -> list[str]:
    """What in ``widget``'s drawing a software renderer pays for at every frame
    (kiosk/ui/drawing.py): a stencil, a SmoothRoundedRectangle, a Line wider than 1 px
    drawn in a see-through colour (Kivy clears and draws a stencil for it). The
    instructions are walked in the order they are drawn, the colour followed as GL does."""
    from kivy.graphics import Canvas, Color, InstructionGroup, Line, SmoothRoundedRectangle
    from kivy.graphics.stencil_instructions import StencilPush
    from kivy.uix.widget import Widget

    roots = getattr(widget, "children", []) if not isinstance(widget, Widget) else [widget]
    owners = {id(w.canvas): type(w).__name__ for root in roots  # a widget, or the window
              for w in root.walk(restrict=False)}
    found: list[str] = []
    alpha = 1.0

    def walk(ins: Any, owner: str) -> None:
        nonlocal alpha
        if isinstance(ins, Color):
            alpha = ins.rgba[3]
        elif isinstance(ins, StencilPush):
            found.append(f"a stencil in {owner}")
        elif isinstance(ins, SmoothRoundedRectangle):
            found.append(f"a SmoothRoundedRectangle in {owner}")
        elif isinstance(ins, Line) and ins.width != 1 and alpha < 1:
            found.append(f"a {ins.width:g} px line at alpha {alpha:g} in {owner}")
        if isinstance(ins, Canvas):
            owner = owners.get(id(ins), owner)
            for part in (ins.before.children, ins.children, ins.after.children):
                for child in part:
                    walk(child, owner)
        elif isinstance(ins, InstructionGroup):
            for child in ins.children:
                walk(child, owner)

    walk(widget.canvas, type(widget).__name__)
    return found
