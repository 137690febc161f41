"""What a frame costs without a GPU (kiosk/ui/drawing.py), in a real window: no screen
draws a stencil, a smooth rounded rectangle or a see-through wide line; the scissor-clipped
scroll view and the rounded boxes draw what they should, where they should; the on-screen
keyboard is one picture that a keystroke does not draw again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kiosk.core.runtime import Runtime

from . import ui_driver as d
from .test_ui import ATENCION, SEGUROS, card, run
from .test_ui_forms import box, forms_known, on_form

pytestmark = pytest.mark.slow


def pixels(path: Path) -> Any:
    """The screenshot's pixels, addressed as Kivy places things (y up from the bottom)."""
    img = Image.open(path).convert("RGB")
    return lambda x, y: img.getpixel((int(x), img.height - 1 - int(y)))


def white(p: tuple[int, int, int]) -> bool:
    return min(p) > 240


async def test_no_screen_draws_what_a_software_renderer_pays_for(tmp_path: Path) -> None:
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        from kivy.core.window import Window

        from kiosk.ui.app import KioskApp
        await forms_known(app)
        await d.tap(card(app, SEGUROS))  # the form, its fields and keyboard live
        await on_form(app)
        assert d.costly_drawing(Window) == []  # the whole frame as it is drawn
        await d.tap(app.screen("form").ids.back)
        await d.tap(card(app, ATENCION))
        await d.until(lambda: app.sm.current == "ticket", what="ticket screen")
        assert d.costly_drawing(Window) == []
        for name in ["home", *KioskApp.SCREENS]:
            assert d.costly_drawing(app.screen(name)) == [], name
    await run(tmp_path, scenario)


async def test_the_scissor_clips_and_the_rounded_boxes_fit(tmp_path: Path) -> None:
    """A scroll view inside a shifted RelativeLayout (as a Screen is) shows its content
    only inside itself; a rounded box has round corners, straight sides, and stays inside
    its size when that is smaller than two radii."""
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        from kivy.core.window import Window
        from kivy.graphics import Color, Rectangle
        from kivy.uix.relativelayout import RelativeLayout
        from kivy.uix.widget import Widget

        from kiosk.ui.drawing import ClipScrollView, RoundedBox
        outer = RelativeLayout(pos=(20, 10), size=(900, 900), size_hint=(None, None))
        layer = RelativeLayout(pos=(40, 40), size=(500, 700), size_hint=(None, None))
        view = ClipScrollView(pos=(40, 100), size=(200, 200), size_hint=(None, None),
                              do_scroll_x=False)
        content = Widget(size_hint=(1, None), height=1000)
        with content.canvas:
            Color(1, 1, 1, 1)
            fill = Rectangle(size=(200, 1000))
        content.bind(pos=lambda w, p: setattr(fill, "pos", p))
        view.add_widget(content)
        layer.add_widget(view)
        outer.add_widget(layer)  # after: as a screen joins the window once it is built
        boxes = Widget()
        with boxes.canvas:
            Color(1, 1, 1, 1)
            RoundedBox(pos=(700, 300), size=(200, 100), radius=[30])
            RoundedBox(pos=(700, 500), size=(20, 10), radius=[30])
        from kivy.graphics import InstructionGroup
        test = InstructionGroup()  # over the app, taken away after
        test.add(Color(0, 0, 0, 1))  # a black page, to see every pixel drawn
        test.add(Rectangle(size=Window.size))
        test.add(outer.canvas)
        test.add(boxes.canvas)
        Window.canvas.after.add(test)
        view.scroll_y = 0.5  # content above and below the view
        try:
            await d.frames(4)
            px = pixels(await d.screenshot("drawing-clip-and-boxes"))
        finally:
            Window.canvas.after.remove(test)
        left, bottom = 20 + 40 + 40, 10 + 40 + 100  # the view in window coordinates
        assert white(px(left + 100, bottom + 100)) and white(px(left + 2, bottom + 2))
        assert white(px(left + 197, bottom + 197))
        for x, y in [(left + 100, bottom + 204), (left + 100, bottom - 5),
                     (left - 5, bottom + 100), (left + 205, bottom + 100)]:
            assert px(x, y) == (0, 0, 0), (x, y)  # outside the view: nothing drawn
        assert white(px(800, 350)) and white(px(701, 350)) and white(px(800, 398))
        assert px(701, 301) == (0, 0, 0) and px(898, 398) == (0, 0, 0)  # round corners
        assert white(px(710, 505))
        assert px(722, 505) == (0, 0, 0) and px(710, 512) == (0, 0, 0)  # a small one fits
    await run(tmp_path, scenario)


async def test_the_keyboard_is_one_picture(tmp_path: Path) -> None:
    """The keys are drawn into a picture once: a pressed key is shaded over it, and only a
    change of the keys (Shift, a layout) draws it again. What is seen stays the same."""
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        from kivy.tests.common import UnitTestTouch
        await forms_known(app)
        await d.tap(card(app, SEGUROS))
        await on_form(app)
        kb = app.screen("form").ids.keyboard
        keys = {b.key: b for b in kb.keys}
        assert kb.shift  # an empty name starts with a capital
        q = keys["q"]
        px = pixels(await d.screenshot("drawing-keyboard"))
        x, y = q.to_window(q.x + 6, q.center_y)  # beside its letter
        assert white(px(x, y)) and px(x, y + q.height / 2 + 4) == (8, 26, 56)  # the panel
        assert not kb._fbo.needs_redraw
        touch = UnitTestTouch(*q.to_window(*q.center))
        touch.touch_down()
        assert q.state == "down" and not kb._fbo.needs_redraw  # shaded, not redrawn
        await d.frames(2)
        pressed = px2 = pixels(await d.screenshot("drawing-keyboard-pressed"))(x, y)
        assert 150 < px2[0] < 240, pressed  # darker than a key, lighter than the panel
        touch.touch_up()
        await d.frames(2)
        assert box(app, "60f652f1cfa34fc3157ef5c6").text == "Q"
        await d.until(lambda: q.text == "q", what="small letters again")  # after Shift
        px = pixels(await d.screenshot("drawing-keyboard-released"))
        assert white(px(x, y))
        kb.layout = "number"
        assert kb._fbo.needs_redraw  # a new layout is drawn again
        await d.frames(2)
        assert not kb._fbo.needs_redraw
    await run(tmp_path, scenario)
