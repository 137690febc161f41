"""Reusable widgets. Their look lives in ``kv/widgets.kv``."""

from __future__ import annotations

from typing import Any

from kivy.clock import Clock
from kivy.graphics import Color, Line, Rectangle, SmoothLine
from kivy.graphics.texture import Texture
from kivy.metrics import dp, sp
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget


class Focusable:
    """Marks a widget the keyboard can reach; ``activate()`` is what Enter/Space do."""

    focused = BooleanProperty(False)

    def activate(self) -> None:
        self.trigger_action(duration=0.05)  # type: ignore[attr-defined]


class KioskButton(Focusable, ButtonBehavior, Label):
    """A large button (at least 15 mm tall), filled with ``bg`` and focusable."""

    bg = ListProperty([0.04, 0.43, 0.31, 1])
    fg = ListProperty([1, 1, 1, 1])
    outlined = BooleanProperty(False)
    """Drawn with a border (the high-contrast theme; the kv rule follows the app)."""


class QueueCard(Focusable, ButtonBehavior, BoxLayout):
    """One queue on the home screen: name, agents now, average wait."""

    view: Any = None
    """The :class:`~kiosk.view.outcomes.QueueView` shown (what audio guidance says)."""
    queue_id = StringProperty("")
    title = StringProperty("")
    agents = StringProperty("")
    wait = StringProperty("")
    prefix = StringProperty("")
    available = BooleanProperty(True)
    busy = BooleanProperty(False)
    """True while this card's ticket is being requested."""
    compact = BooleanProperty(False)
    """Smaller, for the greeter's landscape tablet."""
    scale = NumericProperty(1.0)
    """The app's text scale (the kv rule follows it; the layout reads it here)."""
    stale = StringProperty("")
    """How old this card's data is, once it is stale ("Updated 2 min ago"); else empty."""
    needs_form = BooleanProperty(False)
    """The queue asks for a few details first (a form opens on tap)."""


class PriorityButton(Focusable, ButtonBehavior, BoxLayout):
    """The home's "priority service": then the reasons, or straight to the services."""


class AccessButton(Focusable, ButtonBehavior, BoxLayout):
    """Large text, high contrast, audio guidance: an icon over its name, lit while on."""

    icon = StringProperty("")
    text = StringProperty("")
    active = BooleanProperty(False)
    speaker = BooleanProperty(False)
    """Draw a loudspeaker as the icon (the shipped font has none)."""
    outlined = BooleanProperty(False)
    scale = NumericProperty(1.0)

    @staticmethod
    def speaker_shape(icon: Widget, scale: float) -> list[float]:
        """A loudspeaker's outline around ``icon``'s centre, as a triangle fan's vertices
        (x, y, u, v), the sound's arcs drawn beside it by the kv rule."""
        u = sp(4) * scale
        cx, cy = icon.center_x - 1.5 * u, icon.center_y
        points = [(-7, -2.5), (-7, 2.5), (-4, 2.5), (-0.5, 6), (-0.5, -6), (-4, -2.5)]
        return [v for x, y in points for v in (cx + x * u, cy + y * u, 0.0, 0.0)]


class ToggleChip(Focusable, ButtonBehavior, BoxLayout):
    """One of a few choices, one chosen at a time (the greeter's priority toggle)."""

    value = StringProperty("")
    text = StringProperty("")
    selected = BooleanProperty(False)
    outlined = BooleanProperty(False)


class StatusRow(BoxLayout):
    """One concern on the staff screen (``kv/admin.kv``): a colour and a word for its
    level, its name, its state, what to do, and the detail for IT."""

    title = StringProperty("")
    word = StringProperty("")
    level_word = StringProperty("")
    advice = StringProperty("")
    detail = StringProperty("")
    bg = ListProperty([0.37, 0.42, 0.48, 1])
    fg = ListProperty([1, 1, 1, 1])
    compact = BooleanProperty(False)


class FigureRow(BoxLayout):
    """One of today's figures on the staff screen: a label and its value."""

    label = StringProperty("")
    value = StringProperty("")
    compact = BooleanProperty(False)


class QRCode(Widget):
    """A QR code drawn from its modules as one texture, one module per texel, scaled
    without smoothing: crisp at any size, and one draw call however many modules."""

    modules = ListProperty([])
    dark = ListProperty([0, 0, 0, 1])
    QUIET = 2  # modules of white border

    def __init__(self, **kw: Any) -> None:
        self._texture: Texture | None = None
        super().__init__(**kw)
        self.bind(modules=self._make_texture, dark=self._make_texture)
        self.bind(pos=self._redraw, size=self._redraw)

    def _make_texture(self, *_: Any) -> None:
        rows: list[list[bool]] = list(self.modules)
        self._texture = None
        if rows:
            side = len(rows) + 2 * self.QUIET
            dark = bytes(round(255 * c) for c in self.dark[:3]) + b"\xff"
            light = b"\xff\xff\xff\xff"
            blank = light * side
            lines = [blank] * self.QUIET
            for row in rows:
                lines.append(light * self.QUIET + b"".join(dark if d else light for d in row)
                             + light * self.QUIET)
            lines += [blank] * self.QUIET
            tex = Texture.create(size=(side, side), colorfmt="rgba")
            tex.mag_filter = tex.min_filter = "nearest"
            tex.blit_buffer(b"".join(reversed(lines)), colorfmt="rgba", bufferfmt="ubyte")
            self._texture = tex  # GL's rows run bottom to top: reversed above
        self._redraw()

    def _redraw(self, *_: Any) -> None:
        self.canvas.clear()
        if self._texture is None:
            return
        side = min(self.width, self.height)
        with self.canvas:
            Color(1, 1, 1, 1)
            Rectangle(texture=self._texture, size=(side, side),
                      pos=(self.x + (self.width - side) / 2, self.y + (self.height - side) / 2))


class Spinner(Widget):
    """A turning arc: something is happening. It animates only while ``active``: an idle
    screen must not redraw (on a software-rendered display every frame costs CPU)."""

    angle = NumericProperty(0)
    colour = ListProperty([1, 1, 1, 1])
    active = BooleanProperty(False)

    def __init__(self, **kw: Any) -> None:
        self._ev: Any = None
        super().__init__(**kw)
        self.bind(pos=self._draw, size=self._draw, angle=self._draw)

    def on_active(self, _: Any, active: bool) -> None:
        if active and self._ev is None:
            self._ev = Clock.schedule_interval(self._turn, 1 / 30)
        elif not active:
            self.stop()
        self._draw()

    def _turn(self, dt: float) -> None:
        self.angle = (self.angle + 360 * dt) % 360

    def _draw(self, *_: Any) -> None:
        self.canvas.clear()
        r = min(self.width, self.height) / 2 - dp(4)
        if not self.active or r <= 0:
            return
        with self.canvas:
            Color(*self.colour)
            SmoothLine(circle=(self.center_x, self.center_y, r, self.angle, self.angle + 270),
                 width=dp(5), cap="round")

    def stop(self) -> None:
        if self._ev is not None:
            self._ev.cancel()
            self._ev = None


class FocusRing:
    """Draws a thick ring around the focused widget (one at a time)."""

    def __init__(self, colour: list[float]) -> None:
        self.colour = colour
        self.widget: Widget | None = None
        self._line: Line | None = None
        self._col: Color | None = None

    def set_colour(self, colour: list[float]) -> None:
        """A new theme's ring colour (the ring shown, if any, takes it at once)."""
        self.colour = list(colour)
        if self._col is not None:
            self._col.rgba = self.colour

    def move_to(self, widget: Widget | None) -> None:
        if self.widget is not None:
            if isinstance(self.widget, Focusable):
                self.widget.focused = False
            self.widget.unbind(pos=self._update, size=self._update)
            if self._line is not None and self._col is not None:
                self.widget.canvas.after.remove(self._col)
                self.widget.canvas.after.remove(self._line)
        self.widget = widget
        self._line = self._col = None
        if widget is None:
            return
        if isinstance(widget, Focusable):
            widget.focused = True
        self._col = Color(*self.colour)
        self._line = Line(width=dp(4))
        widget.canvas.after.add(self._col)
        widget.canvas.after.add(self._line)
        widget.bind(pos=self._update, size=self._update)
        self._update()

    def _update(self, *_: Any) -> None:
        w = self.widget
        if w is None or self._line is None:
            return
        pad = dp(6)
        self._line.rounded_rectangle = (w.x - pad, w.y - pad, w.width + 2 * pad,
                                        w.height + 2 * pad, dp(14))


def app_ref() -> Any:
    """The running app (typed loosely for kv expressions)."""
    from kivy.app import App
    return App.get_running_app()


__all__ = ["AccessButton", "FocusRing", "Focusable", "KioskButton", "PriorityButton",
           "QRCode", "QueueCard", "Spinner", "ToggleChip", "app_ref"]
