"""The form screen: a queue's few details, typed on a large on-screen keyboard (or a
physical keyboard or keypad), checked field by field as the customer types, then sent.

Layout in ``kv/form.kv`` (portrait kiosk: fields, then the keyboard below; landscape
tablet: fields beside the buttons, the keyboard across the bottom). The rules are
:mod:`kiosk.view.forms` (pure Python, shared with the core, which checks again).

Privacy: the values live in the text boxes only while the form is on screen. Leaving the
screen for any reason (the ticket, Back, the idle reset) wipes them (:meth:`FormScreen.wipe`);
nothing here logs them; the lobby clipboard (:class:`LobbyClipboard`) keeps nothing.

The on-screen keyboard is :mod:`kiosk.ui.keyboard`; opening the form and sending it is
the ticket flow's (:mod:`kiosk.ui.flow`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kivy.clock import Clock
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
from kiosk.ui.keyboard import LAYOUTS, OnScreenKeyboard  # noqa: F401 - form.kv places it
from kiosk.ui.screens import KioskScreen
from kiosk.ui.widgets import Focusable, app_ref
from kiosk.view import guidance
from kiosk.view.forms import FieldDef, FormDef, Problem, check_field

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


class FormScreen(KioskScreen):
    """The queue's form. The flow opens it with :meth:`open` (:mod:`kiosk.ui.flow`); its
send button hands the values to the app, which sends them."""

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

    def spoken(self, lang: str) -> str:
        return guidance.form(str(self.queue_name), len(self.blocks), lang)

    def spoken_item(self, widget: Widget, lang: str) -> str:
        """A field as its label says it, whether it is filled in (never what was typed:
        it goes to Videsk and nowhere else, not to a loudspeaker nor the log), and its
        problem; a choice as its option, chosen or not; a button as its text."""
        for block in self.blocks.values():
            if widget not in block.inputs:
                continue
            if isinstance(widget, OptionButton):
                state = t("chosen", lang) if widget.selected else t("not chosen", lang)
                return f"{block.title}: {widget.text}, {state}"
            parts = [str(block.title)]
            if not block.required:
                parts.append(t("(optional)", lang))
            parts.append(t("filled in", lang) if getattr(widget, "text", "") else
                         t("empty", lang))
            if block.error:
                parts.append(str(block.error))
            return ", ".join(parts)
        return super().spoken_item(widget, lang)

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
        app_ref().submit_form(self.queue_id, self.values())

    def back(self) -> None:
        self.wipe()
        app_ref().go_home()


__all__ = ["FieldBlock", "FormInput", "FormScreen", "LobbyClipboard", "OptionButton",
           "quiet_clipboard"]
