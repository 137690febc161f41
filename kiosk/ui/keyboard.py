"""The lobby's on-screen keyboard: large keys, Spanish and Portuguese letters, ``@`` and
``.com`` for an email, a keypad for a number (the form screen, ``kv/form.kv``, places it).

Drawn as one picture (an Fbo): a keystroke's frame redraws only the text box, never the
keyboard (what a frame costs without a GPU: :mod:`kiosk.ui.drawing`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kivy.event import EventDispatcher
from kivy.graphics import (
    Canvas,
    ClearBuffers,
    ClearColor,
    Color,
    Fbo,
    PopMatrix,
    PushMatrix,
    Rectangle,
    Translate,
)
from kivy.metrics import dp
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from kiosk.ui.drawing import RoundedBox


class KeyButton(ButtonBehavior, Label):
    """One key of the on-screen keyboard."""

    key = StringProperty("")
    wide = NumericProperty(1.0)
    special = BooleanProperty(False)
    on = BooleanProperty(False)


class SpaceKey(KeyButton):
    """The space bar: a key with a mark of its own (a key with nothing to draw draws
    nothing: see kiosk/ui/drawing.py)."""


ACCENTS = "á é í ó ú ü ã õ â ê ô à"
LAYOUTS: dict[str, list[str]] = {
    "text": ["1 2 3 4 5 6 7 8 9 0", "q w e r t y u i o p", "a s d f g h j k l ñ",
             "⇧ z x c v b n m ç ⌫", ACCENTS, ", . - ' space ⏎"],
    "email": ["1 2 3 4 5 6 7 8 9 0", "q w e r t y u i o p", "a s d f g h j k l ñ",
              "⇧ z x c v b n m _ ⌫", "@ . - .com .cl .es .pt", "⏎"],
    "url": ["1 2 3 4 5 6 7 8 9 0", "q w e r t y u i o p", "a s d f g h j k l /",
            "⇧ z x c v b n m : ⌫", "https:// www. . - .com", "⏎"],
    "number": ["7 8 9", "4 5 6", "1 2 3", "- 0 ⌫", ". ⏎"],
}
WIDE = {"space": 4.0, "⏎": 2.0, ".com": 1.6, "https://": 2.2, "www.": 1.4, "⌫": 1.5,
        "⇧": 1.5}


class OnScreenKeyboard(BoxLayout, EventDispatcher):
    """A large keyboard for a lobby: Spanish and Portuguese letters, ``@`` and ``.com``
    for an email, digits only for a number. Dispatches ``on_key(text)``, where text is a
    character or string to type, or one of ``⌫`` (erase) and ``⏎`` (next / send).

    Drawn as one picture: its panel and keys are drawn into a texture (an Fbo), drawn again
    only when a key changes (its label, the layout, the size), so a frame draws one
    rectangle for the whole keyboard; a keystroke's frame is the text box's. A pressed key
    is a shade drawn over the picture, and the capitals go back to small letters a frame
    after the letter shows, so neither redraws it in that frame (kiosk/ui/drawing.py says
    what a frame costs without a GPU)."""

    layout = StringProperty("text")
    shift = BooleanProperty(False)
    enter_text = StringProperty("⏎")
    """What the enter key says: "Next", or "Get my number" on the last field."""
    panel = ListProperty([0.03, 0.10, 0.22, 1])
    page = ListProperty([0, 0, 0, 1])
    """The screen's colour behind the panel's rounded corners (the picture is opaque)."""
    keys: list[KeyButton] = []  # noqa: RUF012 - replaced per instance

    __events__ = ("on_key",)

    def __init__(self, **kw: Any) -> None:
        self.canvas = Canvas()  # before Widget.__init__, which would make its own
        with self.canvas:
            self._fbo = Fbo(size=(1, 1))
            Color(1, 1, 1, 1)
            self._picture = Rectangle(size=(1, 1), texture=self._fbo.texture)
            self._shade_colour = Color(0, 0, 0, 0)
            self._shade = RoundedBox(size=(0, 0), radius=[dp(10)])
        with self._fbo.before:
            self._page_colour = ClearColor(0, 0, 0, 1)
            ClearBuffers()
            PushMatrix()
            self._origin = Translate(0, 0)  # the keys are placed in the screen's coordinates
            self._panel_colour = Color(*self.panel)
            self._panel = RoundedBox(size=(0, 0), radius=[dp(18)])
        with self._fbo.after:
            PopMatrix()
        self._shaded: KeyButton | None = None
        self._relabel_due = False
        super().__init__(**kw)
        self._built = ""
        self._rows: dict[str, tuple[list[BoxLayout], list[KeyButton]]] = {}
        self.bind(layout=lambda *_: self._build(), shift=lambda *_: self._relabel_later(),
                  enter_text=lambda *_: self._relabel(), pos=self._place, size=self._place,
                  panel=self._paint, page=self._paint)
        self._paint()
        self._build()

    # the keys' canvases go into the picture, not the screen
    @contextmanager
    def _into_picture(self) -> Iterator[None]:
        canvas, self.canvas = self.canvas, self._fbo
        try:
            yield
        finally:
            self.canvas = canvas

    def add_widget(self, widget: Widget, *args: Any, **kw: Any) -> None:
        with self._into_picture():
            super().add_widget(widget, *args, **kw)

    def remove_widget(self, widget: Widget, *args: Any, **kw: Any) -> None:
        with self._into_picture():
            super().remove_widget(widget, *args, **kw)

    def _paint(self, *_: Any) -> None:
        self._page_colour.rgba = [*self.page[:3], 1]
        self._panel_colour.rgba = list(self.panel)
        self._shade_colour.rgba = [*self.panel[:3], 0.2]  # a pressed key: a shade of it

    def _place(self, *_: Any) -> None:
        x, y = round(self.x), round(self.y)  # whole pixels: the picture is not resampled
        w, h = max(1, round(self.width)), max(1, round(self.height))
        if tuple(self._fbo.size) != (w, h):
            self._fbo.size = (w, h)
            self._fbo.texture.mag_filter = self._fbo.texture.min_filter = "nearest"
            self._picture.texture = self._fbo.texture
        self._picture.pos, self._picture.size = (x, y), (w, h)
        self._origin.xy = (-x, -y)
        self._panel.pos, self._panel.size = (x, y), (w, h)
        if self._shaded is not None:
            self._shade_key(self._shaded, self._shaded.state)

    def _shade_key(self, b: KeyButton, state: str) -> None:
        if state == "down":
            self._shaded = b
            self._shade.pos, self._shade.size = b.pos, b.size  # keys share our coordinates
        elif b is self._shaded:
            self._shaded = None
            self._shade.size = (0, 0)

    def on_key(self, text: str) -> None:
        return None

    def _build(self) -> None:
        if self._built == self.layout:
            return
        self._built = self.layout
        self.clear_widgets()
        if self.layout not in self._rows:  # each layout's keys are made once
            lines: list[BoxLayout] = []
            keys: list[KeyButton] = []
            for row in LAYOUTS.get(self.layout, []):
                line = BoxLayout(spacing=dp(8))
                for key in row.split(" "):
                    cls = SpaceKey if key == "space" else KeyButton
                    b = cls(key=key, wide=WIDE.get(key, 1.0),
                            special=key in ("⇧", "⌫", "⏎", "space"))
                    b.size_hint_x = b.wide
                    b.bind(on_release=self._pressed, state=self._shade_key)
                    line.add_widget(b)
                    keys.append(b)
                lines.append(line)
            self._rows[self.layout] = (lines, keys)
        lines, self.keys = self._rows[self.layout]
        for line in lines:
            self.add_widget(line)
        self._relabel()

    def _relabel_later(self) -> None:
        """The keys' new labels (after Shift), once the frame with the typed letter is
        on screen: drawing the keyboard again is not that frame's work."""
        if self._relabel_due:
            return
        self._relabel_due = True
        from kivy.core.window import Window

        def after(*_: Any) -> None:
            Window.unbind(on_flip=after)
            self._relabel()

        Window.bind(on_flip=after)

    def _relabel(self) -> None:
        self._relabel_due = False
        for b in self.keys:
            b.on = b.key == "⇧" and self.shift
            b.text = self.label(b.key)

    def label(self, key: str) -> str:
        if key == "space":
            return ""
        if key == "⏎":
            return str(self.enter_text)
        return key.upper() if self.shift and len(key) == 1 else key

    def _pressed(self, b: KeyButton) -> None:
        key = b.key
        if key == "⇧":
            self.shift = not self.shift
            return
        if key == "space":
            key = " "
        elif len(key) == 1 and self.shift:
            key = key.upper()
            self.shift = False
        self.dispatch("on_key", key)


# --------------------------------------------------------------------------- the screen
