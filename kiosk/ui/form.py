"""The form screen: a queue's few details, typed on a large on-screen keyboard (or a
physical keyboard or keypad), checked field by field as the customer types, then sent.

Layout in ``kv/form.kv`` (portrait kiosk: fields, then the keyboard below; landscape
tablet: fields beside the buttons, the keyboard across the bottom). The rules are
:mod:`kiosk.service.forms` (pure Python, shared with the core, which checks again).

Privacy: the values live in the text boxes only while the form is on screen. Leaving the
screen for any reason (the ticket, Back, the idle reset) wipes them (:meth:`FormScreen.wipe`);
nothing here logs them; the lobby clipboard (:class:`LobbyClipboard`) keeps nothing.

The flow, called by the app: :func:`open_form` (a tap on a queue that needs a form, the
form cached), :func:`open_after_428` (a 428 met anyway), :func:`submit`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kivy.clock import Clock
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
from kivy.properties import (
    BooleanProperty,
    DictProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.textinput import TextInput
from kivy.uix.widget import Widget

from kiosk.i18n import t
from kiosk.service.forms import FieldDef, FormAnswer, FormDef, Problem, check_field, keep_values
from kiosk.service.link import CoreTimeout
from kiosk.service.outcomes import IssueResult, Outcome
from kiosk.ui.drawing import RoundedBox
from kiosk.ui.screens import KioskScreen
from kiosk.ui.widgets import Focusable, app_ref

log = logging.getLogger(__name__)

K_TAB, K_ENTER, K_KP_ENTER, K_SPACE = 9, 13, 271, 32


class LobbyClipboard:
    """Kivy's text boxes ask for a clipboard; on Linux, finding one probes ``xclip`` and
    ``xsel`` and logs CRITICAL with tracebacks where they are missing. A lobby needs no
    clipboard, and what a customer typed must not linger in one: this keeps nothing."""

    def copy(self, data: str = "") -> None:
        return None

    def paste(self) -> str:
        return ""

    def get_types(self) -> list[str]:
        return []


def quiet_clipboard() -> None:
    """Give Kivy's text boxes the lobby clipboard before the first one is made."""
    from kivy.uix import textinput
    if not isinstance(textinput.Clipboard, LobbyClipboard):
        textinput.Clipboard = LobbyClipboard()
    textinput.CutBuffer = None


# --------------------------------------------------------------------------- widgets


class FormInput(TextInput):
    """A text box for one field: capped at the field's length, numbers-only for numbers."""

    field_id = StringProperty("")
    kind = StringProperty("text")
    """text | email | url | textarea | number: what the on-screen keyboard shows."""
    max_chars = NumericProperty(250)
    state = StringProperty("")
    """"" | "error" | "ok": the border's colour."""

    def insert_text(self, substring: str, from_undo: bool = False) -> Any:
        if self.kind == "number":
            substring = "".join(c for c in substring.replace(",", ".")
                                if c.isdigit() or c in ".-")
        elif not self.multiline:
            substring = substring.replace("\n", " ")
        room = int(self.max_chars) - len(self.text)
        if room <= 0 or not substring:
            return None
        return super().insert_text(substring[:room], from_undo=from_undo)


class OptionButton(Focusable, ButtonBehavior, Label):
    """One choice of a choice field: a large pill, ticked when chosen."""

    field_id = StringProperty("")
    value = StringProperty("")
    selected = BooleanProperty(False)
    multiple = BooleanProperty(False)


class FieldBlock(BoxLayout):
    """One field: its label, its box (or its choices), its hint, its message."""

    field_id = StringProperty("")
    title = StringProperty("")
    hint = StringProperty("")
    error = StringProperty("")
    required = BooleanProperty(False)
    inputs = ListProperty([])
    """The widgets the keyboard reaches: one text box, or one button per choice."""
    text_input = ObjectProperty(None, allownone=True)
    """The field's text box (None for a choice field)."""


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


class FormScreen(KioskScreen):
    """The queue's form. The app opens it with :meth:`open`; it sends with :func:`submit`."""

    kv = "form"

    queue_id = StringProperty("")
    queue_name = StringProperty("")
    note = StringProperty("")
    """A line above the fields (the form was updated; or a reason from the provider)."""
    busy = BooleanProperty(False)
    landscape = BooleanProperty(False)
    keyboard_layout = StringProperty("text")
    errors = DictProperty({})
    form = ObjectProperty(None, allownone=True)
    focused_id = StringProperty("")

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._made: dict[tuple[str, str, bool], dict[str, FieldBlock]] = {}
        """Fields made for a form version, a language and an orientation: a form opens
        again without making its widgets again (they hold no values between customers)."""
        self.blocks: dict[str, FieldBlock] = {}
        self._chosen: dict[str, list[str]] = {}
        self._left: set[str] = set()
        """Fields the customer has left once: checked as they type from then on."""
        app = app_ref()
        if app is not None:  # the forms the core learned ahead: made before any tap
            app.core.subscribe_forms(self._forms_arrived)
            Clock.schedule_once(lambda dt: self._forms_arrived(app.core.forms), 0.3)

    def _forms_arrived(self, forms: dict[str, FormDef | None]) -> None:
        app = app_ref()
        if app is None:
            return
        known = [f for f in forms.values() if f is not None]
        for i, form in enumerate(known):  # spread out: no frame waits for all of them
            Clock.schedule_once(lambda dt, f=form: self.prepare(f, app.lang), 0.1 * (i + 1))

    # ----------------------------------------------------------------- building

    def open(self, form: FormDef, queue_name: str, lang: str, *,
             values: dict[str, Any] | None = None,
             problems: dict[str, Problem] | None = None, note: str = "") -> None:
        """Show ``form`` (with ``values`` kept and ``problems`` shown, after a 400)."""
        from kivy.core.window import Window
        self.landscape = Window.width > Window.height
        self.form = form
        self.queue_id = form.queue_id
        self.queue_name = queue_name
        self.note = note
        self.busy = False
        self._build(form, lang, values or {})
        self._left = set(values or {})
        for fid, problem in (problems or {}).items():
            self.show_problem(fid, problem.text(lang))
            self._left.add(fid)

    def _make(self, form: FormDef, lang: str) -> dict[str, FieldBlock]:
        """The field widgets for ``form`` in ``lang`` (made once, then reused)."""
        key = (form.version, lang, self.landscape)
        made = self._made.get(key)
        if made is not None:
            return made
        if len(self._made) >= 6:
            self._made.pop(next(iter(self._made)))
        made = {}
        for fd in form.shown:
            block = FieldBlock(field_id=fd.id, title=fd.title(lang),
                               hint=fd.hint_text(lang), required=fd.required)
            if fd.kind == "choice":
                grid = GridLayout(cols=min(3, max(1, len(fd.options))), spacing=dp(14),
                                  size_hint_y=None)
                grid.bind(minimum_height=grid.setter("height"))
                block.ids.holder.add_widget(grid)
                buttons = []
                for o in fd.options:
                    b = OptionButton(field_id=fd.id, value=o.value, text=o.text(lang),
                                     multiple=fd.multiple)
                    b.bind(on_release=self._option)
                    grid.add_widget(b)
                    buttons.append(b)
                block.inputs = buttons
            else:
                kind = "number" if fd.kind == "number" else (
                    fd.type if fd.type in ("email", "url", "textarea") else "text")
                ti = FormInput(field_id=fd.id, kind=kind, max_chars=fd.max_chars(),
                               multiline=kind == "textarea",
                               hint_text=fd.placeholder_text(lang),
                               input_type={"email": "mail", "url": "url",
                                           "number": "number"}.get(kind, "text"))
                ti.bind(text=self._typed, focus=self._focus_changed)
                block.ids.holder.add_widget(ti)
                block.text_input = ti
                block.inputs = [ti]
            made[fd.id] = block
        self._made[key] = made
        return made

    def prepare(self, form: FormDef, lang: str) -> None:
        """Make a form's widgets ahead of time, so that a tap shows it at once (not once
        the app has stopped: a late Clock event has no app to style them)."""
        if app_ref() is None:
            return
        if self.manager is None or self.manager.current != self.name:
            from kivy.core.window import Window
            self.landscape = Window.width > Window.height
            self._make(form, lang)

    def _build(self, form: FormDef, lang: str, values: dict[str, Any]) -> None:
        box = self.ids.fields
        box.clear_widgets()
        self.ids.scroll.scroll_y = 1  # from the top (a form before may have scrolled)
        self.blocks = self._make(form, lang)
        self._chosen = {}
        self.errors = {}
        for fid, block in self.blocks.items():
            block.error = ""
            if block.text_input is None:
                chosen = values.get(fid, [])
                self._chosen[fid] = list(chosen) if isinstance(chosen, list) else (
                    [chosen] if chosen else [])
                for b in block.inputs:
                    b.selected = b.value in self._chosen[fid]
            else:
                block.text_input.state = ""
                block.text_input.text = str(values.get(fid, "") or "")
            box.add_widget(block)

    # ----------------------------------------------------------------- values

    def values(self) -> dict[str, Any]:
        """What the customer has entered, by field id."""
        out: dict[str, Any] = {}
        if self.form is None:
            return out
        for fd in self.form.shown:
            block = self.blocks.get(fd.id)
            if block is None:
                continue
            if block.text_input is None:
                chosen = self._chosen.get(fd.id, [])
                out[fd.id] = list(chosen) if fd.multiple else (chosen[0] if chosen else "")
            else:
                out[fd.id] = block.text_input.text
        return out

    def wipe(self) -> None:
        """Forget everything typed: the screen is left (ticket, Back, idle reset). The
        widgets stay, empty, for the next customer."""
        self.form = None  # first: emptying the boxes below checks nothing
        for block in self.blocks.values():
            block.error = ""
            box = block.text_input
            if box is not None:
                box.focus = False
                box.text = ""
                box.state = ""
            for b in block.inputs:
                if isinstance(b, OptionButton):
                    b.selected = False
        self.ids.fields.clear_widgets()
        self.blocks = {}
        self._chosen = {}
        self._left = set()
        self.errors = {}
        self.busy = False
        self.note = ""

    # ----------------------------------------------------------------- checking

    def field(self, fid: str) -> FieldDef | None:
        return self.form.field(fid) if self.form is not None else None

    def show_problem(self, fid: str, text: str) -> None:
        block = self.blocks.get(fid)
        if block is None:
            return
        block.error = text
        errors = dict(self.errors)
        if text:
            errors[fid] = text
        else:
            errors.pop(fid, None)
        self.errors = errors
        box = block.text_input
        if isinstance(box, FormInput):
            has_value = bool(box.text.strip())
            box.state = "error" if text else ("ok" if has_value and fid in self._left else "")

    def check(self, fid: str) -> Problem | None:
        """Check one field now and show the result next to it."""
        fd = self.field(fid)
        if fd is None:
            return None
        problem = check_field(fd, self.values().get(fid))
        self.show_problem(fid, problem.text(app_ref().lang) if problem else "")
        return problem

    def _typed(self, box: FormInput, text: str) -> None:
        if self.form is None or box.field_id not in self.blocks:
            return
        app = app_ref()
        app.last_activity = time.monotonic()
        app.timings["typed"] = time.perf_counter()
        if box.field_id in self._left or box.field_id in self.errors:
            self.check(box.field_id)  # a message clears (or changes) as soon as it should

    def _focus_changed(self, box: FormInput, focused: bool) -> None:
        if focused:
            ring = app_ref()._ring
            if ring is not None and ring.widget is not box:  # a tap on the box itself
                ring.move_to(box)
            self.focused_id = box.field_id
            self.keyboard_layout = box.kind if box.kind in LAYOUTS else "text"
            last = self.field_items()[-1:] == [box]
            lang = app_ref().lang
            self.ids.keyboard.enter_text = (t("Get my number", lang) if last
                                            else t("Next", lang))
            self.ids.keyboard.shift = box.kind in ("text", "textarea") and not box.text
            scroll = self.ids.scroll
            if self.ids.fields.height > scroll.height:  # else it all shows already
                scroll.scroll_to(self.blocks[box.field_id], padding=dp(24), animate=False)
        elif self.form is not None and box.field_id in self.blocks:
            self._left.add(box.field_id)  # leaving a field checks it
            self.check(box.field_id)

    def _option(self, b: OptionButton) -> None:
        if self.focused_item() is not b:  # a tap: the text box being typed in is left
            app_ref()._focus(b)
        chosen = self._chosen.setdefault(b.field_id, [])
        if b.multiple:
            if b.value in chosen:
                chosen.remove(b.value)
            else:
                chosen.append(b.value)
        else:
            chosen[:] = [b.value]
        for other in self.blocks[b.field_id].inputs:
            other.selected = other.value in chosen
        self._left.add(b.field_id)
        self.check(b.field_id)

    # ----------------------------------------------------------------- moving

    def field_items(self) -> list[Widget]:
        return [w for block in self.blocks.values() for w in block.inputs]

    def focusables(self) -> list[Widget]:
        ids = self.ids
        return [*self.field_items(), ids.send, ids.back]

    def focused_item(self) -> Widget | None:
        ring = app_ref()._ring
        return ring.widget if ring is not None else None

    def focus_first(self) -> None:
        """The first field takes the keys as the form opens (or the first with a problem)."""
        items = self.field_items()
        bad = [self.blocks[f].inputs[0] for f in self.blocks if f in self.errors
               and self.blocks[f].inputs]
        if bad or items:
            app_ref()._focus(bad[0] if bad else items[0])

    def move(self, step: int) -> None:
        """To the next (or previous) field; past the last field, to the send button."""
        items = self.focusables()
        current = self.focused_item()
        block_of = {id(w): b for b in self.blocks.values() for w in b.inputs}
        if current in items:
            i = items.index(current)
            if step > 0 and id(current) in block_of:  # skip the other choices of a field
                inputs = block_of[id(current)].inputs
                i = items.index(inputs[-1])
            elif step < 0 and id(current) in block_of:
                i = items.index(block_of[id(current)].inputs[0])
            nxt = items[(i + step) % len(items)]
            if step < 0 and id(nxt) in block_of:
                nxt = block_of[id(nxt)].inputs[0]
        else:
            nxt = items[0]
        app_ref()._focus(nxt)

    def on_keyboard_key(self, key: str) -> None:
        """A key of the on-screen keyboard."""
        app = app_ref()
        app.last_activity = time.monotonic()
        box = self.focused_item()
        if key == "⏎":
            self.enter()
            return
        if not isinstance(box, FormInput):
            return
        app.timings["key"] = time.perf_counter()
        if key == "⌫":
            box.do_backspace()
        else:
            box.insert_text(key)

    def enter(self) -> None:
        """Enter: the next field; on the last field (or the send button), send."""
        current = self.focused_item()
        fields = self.field_items()
        if current is self.ids.back:
            self.back()
        elif current is self.ids.send or (fields and current is fields[-1]) or not fields:
            self.send()
        elif isinstance(current, OptionButton):
            self._option(current)
        else:
            self.move(1)

    def handle_key(self, key: int, codepoint: str | None, modifiers: list[str]) -> bool:
        """The physical keyboard and keypad (the app asks the screen first)."""
        current = self.focused_item()
        if key == K_TAB:
            self.move(-1 if "shift" in modifiers else 1)
            return True
        if key in (K_ENTER, K_KP_ENTER, K_SPACE) and isinstance(current, OptionButton):
            self._option(current)  # at once: the next key may already move on
            return True
        if key in (K_ENTER, K_KP_ENTER):
            self.enter()
            return True
        return False

    # ----------------------------------------------------------------- sending

    def send(self) -> None:
        """Check every field; show what needs fixing, else send."""
        if self.busy or self.form is None:
            return
        lang = app_ref().lang
        first_bad = None
        for fid in self.blocks:
            self._left.add(fid)
            if self.check(fid) is not None and first_bad is None:
                first_bad = fid
        if first_bad is not None:
            self.note = t("Please check the marked fields.", lang)
            inputs = self.blocks[first_bad].inputs
            if inputs:
                app_ref()._focus(inputs[0])
            return
        self.note = ""
        self.busy = True
        for block in self.blocks.values():  # no more typing while it is being sent
            if block.text_input is not None:
                block.text_input.focus = False
        app_ref()._spawn(submit(app_ref(), self.queue_id, self.values()))

    def back(self) -> None:
        self.wipe()
        app_ref().go_home()


# --------------------------------------------------------------------------- the flow


def _queue_name(app: Any, queue_id: str) -> str:
    for v in app.core.views(app.lang):
        if v.id == queue_id:
            return str(v.name)
    return ""


def show_form(app: Any, form: FormDef, *, name: str = "", values: dict[str, Any] | None = None,
              problems: dict[str, Problem] | None = None, note: str = "") -> None:
    s: FormScreen = app.screen("form")
    s.open(form, name or _queue_name(app, form.queue_id), app.lang, values=values,
           problems=problems, note=note)
    app.show_screen("form")
    s.focus_first()
    app.timings["form_on_screen"] = time.perf_counter()


def open_form(app: Any, queue_id: str) -> bool:
    """A tap on a queue: if it needs a form (known ahead of time), the form opens and
    no number is taken yet. False: the queue needs no form, go on as usual."""
    form = app.core.forms.get(queue_id)
    if form is None:
        return False
    app.timings["tap"] = time.perf_counter()
    show_form(app, form)
    return True


async def open_after_428(app: Any, result: IssueResult) -> bool:
    """The API asked for a form the kiosk did not know of: fetch it and open it."""
    try:
        form = await app.core.form(result.queue.id)
    except Exception:
        log.exception("the form of queue %s could not be fetched", result.queue.id)
        return False
    if form is None:
        return False
    show_form(app, form, name=result.queue.name)
    return True


async def submit(app: Any, queue_id: str, values: dict[str, Any]) -> None:
    """Send the form (the core checks it again), then show the ticket, or the form again
    with the reasons next to the fields."""
    s: FormScreen = app.screen("form")
    data = None
    if app.mode == "tablet":
        customer = app.screen("home").customer()
        data = {"customer": customer} if customer else None
    app.timings["form_sent"] = time.perf_counter()
    try:
        answer = await app.core.submit_form(queue_id, values, language=app.lang,
                                            integration_data=data)
    except CoreTimeout:  # the core may have issued it: the customer asks staff
        s.wipe()
        app.tap_timed_out()
        return
    except Exception:  # never crash in front of a customer
        log.exception("sending a form failed")
        s.wipe()
        app.show_out_of_service()
        return
    if app.sm.current != "form" or s.queue_id != queue_id:
        return  # the customer left meanwhile (idle reset): the answer is for nobody
    if isinstance(answer, FormAnswer):
        assert answer.form is not None
        typed = s.values()
        kept = keep_values(answer.form, {**typed, **_by_name(s.form, typed)})
        changed = any(p.rule == "changed" for p in answer.problems.values())
        note = (t("This form was just updated. Please check it and send it again.", app.lang)
                if changed else t("Please check the marked fields.", app.lang))
        problems = {k: p for k, p in answer.problems.items() if p.rule != "changed"}
        show_form(app, answer.form, name=s.queue_name, values=kept, problems=problems,
                  note=note)
        return
    s.wipe()  # nothing typed stays on screen once the form is done
    result = answer
    if result.outcome is Outcome.FORM_REQUIRED:
        app._message(t("A few details first", app.lang), result.message)
        return
    app.result = result
    app.show_result(result)
    if result.printing is not None:
        printed, _ = await result.printing
        if app.result is result and app.sm.current == "ticket":
            app._show_printed(result, printed)


def _by_name(form: FormDef | None, values: dict[str, Any]) -> dict[str, Any]:
    """The same values keyed by field name too, so they survive a field whose id changed."""
    if form is None:
        return {}
    return {fd.name: values[fd.id] for fd in form.shown if fd.name and fd.id in values}


__all__ = ["FormScreen", "LobbyClipboard", "OnScreenKeyboard", "open_after_428", "open_form",
           "quiet_clipboard", "submit"]
