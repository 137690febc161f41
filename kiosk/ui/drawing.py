"""Drawing that a kiosk without a GPU can afford.

Kivy redraws the whole window at every frame that changes anything. On a GPU that is
nothing; on Mesa's software renderer (llvmpipe: a Raspberry Pi or a mini PC without a
working GPU driver, and CI) every pixel and every stencil operation of a frame is paid by
the CPU, at every keystroke. The form screen took 55-75 ms to draw at 1080x1920 (to
``glFinish``), so a key of the on-screen keyboard took 75-90 ms to show its character
(``benchmarks/bench_ui.py``). What cost the most, and what replaces it here:

- **Stencils.** Kivy clips a ScreenManager and every ScrollView with the stencil buffer:
  the ``<StencilView>`` rule draws the widget's whole rectangle into the stencil before
  its children and again after them, and every pixel between is tested against it.
  :class:`Screens` does not clip (its screens fill it and never slide: NoTransition), and
  :class:`ClipScrollView` clips with a scissor rectangle (``glScissor``: a bounds test the
  rasterizer makes before it shades a pixel, with no buffer to draw or read).
- **Wide lines in a see-through colour.** A ``Line`` wider than 1 px drawn while the
  colour's alpha is below 1 clears the whole stencil buffer and draws its bounding box
  into it, at every frame (so that overlapping segments do not blend twice). The kv files
  draw none: the keyboard had 59 invisible ones, one per key but the space bar.
- **Smooth rounded rectangles.** ``SmoothRoundedRectangle`` is a fan of thin triangles and
  an antialiasing line around it. :class:`RoundedBox` is nine quads over a small texture
  of the corner (antialiased once, when made): the same look at a fraction of the cost.
- **The keyboard's sixty keys,** drawn once into a picture (``OnScreenKeyboard`` in
  kiosk/ui/form.py) and then as one rectangle.

A test (``tests/test_ui_drawing.py``) walks every screen's instructions and fails on a
stencil, a see-through wide line or a SmoothRoundedRectangle.
"""

from __future__ import annotations

import math
from typing import Any

from kivy.factory import Factory
from kivy.graphics import BorderImage, Rectangle
from kivy.graphics.scissor_instructions import ScissorPop, ScissorPush
from kivy.graphics.stencil_instructions import (
    StencilPop,
    StencilPush,
    StencilUnUse,
    StencilUse,
)
from kivy.graphics.texture import Texture
from kivy.uix.screenmanager import ScreenManager
from kivy.uix.scrollview import ScrollView
from kivy.uix.widget import Widget

STENCIL = (StencilPush, StencilUse, StencilUnUse, StencilPop)


def drop_stencil(widget: Widget) -> int:
    """Take out what Kivy's ``<StencilView>`` rule put in ``widget``'s canvas: StencilPush,
    its mask Rectangle and StencilUse before the children; StencilUnUse, its Rectangle and
    StencilPop after them. Anything else (a ScrollView's bars) stays. Returns how many
    instructions went (a Rectangle takes its BindTexture with it)."""
    dropped = 0
    for group in (widget.canvas.before, widget.canvas.after):
        mask = False
        for ins in list(group.children):
            if isinstance(ins, STENCIL):
                mask = isinstance(ins, (StencilPush, StencilUnUse))  # then its Rectangle
            elif mask and isinstance(ins, Rectangle):
                mask = False
            else:
                continue
            group.remove(ins)
            dropped += 1
    return dropped


_CORNERS: dict[int, Texture] = {}


def corner_texture(radius: int) -> Texture:
    """A white rounded square of ``radius`` px corners, alpha antialiased by coverage (made
    once per radius): stretched by :class:`RoundedBox` to any size, tinted by its Color."""
    tex = _CORNERS.get(radius)
    if tex is not None:
        return tex
    r, n = radius, 2 * radius + 2  # two stretchable texels in the middle
    rows: list[bytes] = []
    for y in range(r):  # the top rows; the bottom ones mirror them
        dy = r - (y + 0.5)  # how far above the corner's centre
        left = [round(min(1.0, max(0.0, r + 0.5 - math.hypot(r - (x + 0.5), dy))) * 255)
                for x in range(r)]
        rows.append(bytes(v for a in [*left, 255, 255, *reversed(left)]
                          for v in (255, 255, 255, a)))
    middle = b"\xff" * (n * 4)
    buf = b"".join([*rows, middle, middle, *reversed(rows)])
    tex = Texture.create(size=(n, n), colorfmt="rgba")
    tex.blit_buffer(buf, colorfmt="rgba", bufferfmt="ubyte")
    _CORNERS[radius] = tex
    return tex


class RoundedBox(BorderImage):
    """A filled rounded rectangle, for kv files: ``RoundedBox: pos, size, radius: [r]``
    (one radius for the four corners). Nine quads over :func:`corner_texture`; corners
    shrink to fit a box smaller than two radii."""

    _radius = 0.0

    def __init__(self, **kw: Any) -> None:
        radius = kw.pop("radius", [0])
        super().__init__(**kw)
        self.radius = radius

    @property
    def radius(self) -> list[float]:
        return [self._radius]

    @radius.setter
    def radius(self, value: Any) -> None:
        first = value[0] if isinstance(value, (list, tuple)) and value else value
        if isinstance(first, (list, tuple)):  # Kivy's per-corner (rx, ry) form
            first = first[0]
        self._radius = max(0.0, float(first or 0))
        r = max(1, round(self._radius))
        self.texture = corner_texture(r)
        self.border = (r, r, r, r)
        self._fit()

    @property
    def size(self) -> tuple[float, float]:
        return BorderImage.size.__get__(self)  # type: ignore[no-any-return]

    @size.setter
    def size(self, value: Any) -> None:
        BorderImage.size.__set__(self, value)
        self._fit()

    def _fit(self) -> None:
        w, h = BorderImage.size.__get__(self)
        r = min(self._radius, max(0.0, w) / 2, max(0.0, h) / 2)
        self.display_border = (r, r, r, r)


Factory.register("RoundedBox", cls=RoundedBox)  # a name for the kv files' canvases


class Screens(ScreenManager):
    """The app's screens, without the stencil Kivy clips a screen manager with."""

    def on_kv_post(self, base_widget: Any) -> None:
        super().on_kv_post(base_widget)
        drop_stencil(self)


class ClipScrollView(ScrollView):
    """A ScrollView that clips its content with a scissor rectangle, not a stencil.

    A scissor is given in window coordinates: it follows this view's position and size,
    and its parents' (a Screen is a RelativeLayout: what is inside it is placed relative to
    it). Rotation or scaling would need the stencil; nothing here rotates."""

    _clip: ScissorPush | None = None

    def on_kv_post(self, base_widget: Any) -> None:
        # not in __init__: a view made by a kv rule gets its rules (the stencil) after it
        super().on_kv_post(base_widget)
        if self._clip is not None:
            return
        drop_stencil(self)
        self._clip = ScissorPush(x=0, y=0, width=0, height=0)
        self.canvas.before.insert(0, self._clip)
        self.canvas.after.insert(0, ScissorPop())
        self._watched: list[Widget] = []
        self.bind(pos=self._place, size=self._place, parent=self._watch)
        self._watch()

    def _watch(self, *_: Any) -> None:
        """Follow the position of every parent (a parent that moves moves the scissor),
        and every parent's parent (a screen is built before it joins the window)."""
        for w in self._watched:
            w.unbind(pos=self._place, parent=self._watch)
        self._watched = []
        w = self.parent
        while isinstance(w, Widget):  # up to the window
            w.bind(pos=self._place, parent=self._watch)
            self._watched.append(w)
            w = w.parent
        self._place()

    def _place(self, *_: Any) -> None:
        # x + width, not right: called on a size change, before the aliases follow it
        x0, y0 = self.to_window(self.x, self.y)
        x1, y1 = self.to_window(self.x + self.width, self.y + self.height)
        clip = self._clip
        if clip is None:
            return
        clip.x, clip.y = math.floor(x0), math.floor(y0)
        clip.width = max(0, math.ceil(x1) - clip.x)
        clip.height = max(0, math.ceil(y1) - clip.y)


__all__ = ["ClipScrollView", "RoundedBox", "Screens", "corner_texture", "drop_stencil"]
