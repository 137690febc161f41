"""The calling screen (display mode) and the kiosk's "now calling" strip; their look is in
``kv/calling.kv``. They only show what the core sent (:attr:`RemoteCore.calls`)."""

from __future__ import annotations

from typing import Any

from kivy.animation import Animation
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.widget import Widget

from kiosk.ui.screens import KioskScreen
from kiosk.view.calling import Call, local_time

FLASHES = 4
"""How many times a new call blinks."""
FLASH_S = 0.35


def flash(widget: Widget) -> None:
    """Blink ``widget``'s ``flash`` property a few times (0 → 1 → 0), then rest at 0."""
    Animation.cancel_all(widget, "flash")
    anim = Animation(flash=1.0, d=FLASH_S, t="out_quad") + Animation(flash=0.0, d=FLASH_S,
                                                                      t="in_quad")
    for _ in range(FLASHES - 1):
        anim += Animation(flash=1.0, d=FLASH_S, t="out_quad") + Animation(
            flash=0.0, d=FLASH_S, t="in_quad")
    anim.start(widget)


def stop_flash(*widgets: Widget | None) -> None:
    """Stop blinking (when the app stops: the Clock outlives it)."""
    for widget in widgets:
        if widget is not None:
            Animation.cancel_all(widget, "flash")


class CallRow(BoxLayout):
    """One earlier call in the list: ticket, booth, time (and marks for a priority ticket
    and a re-call)."""

    ticket = StringProperty("")
    poc = StringProperty("")
    when = StringProperty("")
    priority = BooleanProperty(False)
    recall = BooleanProperty(False)


class CallingScreen(KioskScreen):
    """A lobby TV: the latest call very large, the last calls beside it, branch, clock."""

    kv = "calling"

    ticket = StringProperty("")
    poc = StringProperty("")
    queue = StringProperty("")
    connected = BooleanProperty(True)
    recall = BooleanProperty(False)
    """The latest call is a re-call of its ticket (a small mark says so)."""
    flash = NumericProperty(0.0)
    priority = BooleanProperty(False)
    """The latest call is a priority ticket's: marked "priority service"."""
    earlier = ListProperty([])
    """The earlier calls shown, as ``(ticket, poc, time, priority, recall)``."""

    def show(self, *_: Any, **__: Any) -> None:  # the app's queue refresh: nothing here
        return

    def show_calls(self, calls: list[Call], connected: bool, keep: int) -> None:
        latest = calls[0] if calls else None
        self.ticket = latest.ticket_id if latest else ""
        self.poc = latest.poc if latest else ""
        self.queue = latest.queue if latest else ""
        self.priority = bool(latest and latest.priority)
        self.recall = bool(latest and latest.recall)
        self.connected = connected
        rows = [(c.ticket_id, c.poc, local_time(c), bool(c.priority), c.recall)
                for c in calls[1:keep]]
        if rows != self.earlier:
            self.earlier = rows
            box = self.ids.rows
            box.clear_widgets()
            for ticket, poc, when, priority, recall in rows:
                box.add_widget(CallRow(ticket=ticket, poc=poc, when=when, priority=priority,
                                       recall=recall))

    def new_call(self) -> None:
        flash(self)

    def back(self) -> None:  # Escape does nothing here (and never exits)
        return


class CallStrip(BoxLayout):
    """The kiosk home's "now calling" band: the latest call and the two before it."""

    active = BooleanProperty(False)
    latest = StringProperty("")
    others = StringProperty("")
    connected = BooleanProperty(True)
    recall = BooleanProperty(False)
    priority = BooleanProperty(False)
    """The latest call is a priority ticket's: marked "priority service", as on the
    calling screen."""
    flash = NumericProperty(0.0)

    def show_calls(self, calls: list[Call], connected: bool) -> None:
        self.active = bool(calls)
        self.recall = bool(calls and calls[0].recall)
        self.priority = bool(calls and calls[0].priority)
        self.connected = connected
        self.latest = f"{calls[0].ticket_id} → {calls[0].poc}" if calls else ""
        self.others = "    ".join(f"{c.ticket_id} → {c.poc}" for c in calls[1:3])

    def new_call(self) -> None:
        flash(self)
