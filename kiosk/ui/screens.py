"""One class per screen; layouts in ``kv/``. Screens only show state and forward taps to
the app; they never call the core themselves."""

from __future__ import annotations

from typing import Any, ClassVar

from kivy.properties import (
    BooleanProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.screenmanager import Screen
from kivy.uix.widget import Widget

from kiosk.ui.widgets import KioskButton, QueueCard, app_ref
from kiosk.view.outcomes import QueueView
from kiosk.view.presentation import agents_text, card_freshness, wait_text


class KioskScreen(Screen):
    """Common to all screens: what the keyboard can reach, and what Escape does."""

    kv: ClassVar[str] = ""
    """The kv file (in ``ui/kv``) with this screen's rule: loaded when first needed."""

    def focusables(self) -> list[Widget]:
        return []

    def back(self) -> None:
        app_ref().go_home()


def _issue(queue_id: str) -> None:
    app = app_ref()
    if app is not None:
        app.issue(queue_id)


def _sync_cards(container: Widget, views: list[QueueView], lang: str, *,
                on_tap: Any, busy_id: str = "", compact: bool = False) -> list[QueueCard]:
    """Update the cards in place (no flicker): same widgets, new numbers."""
    existing = {c.queue_id: c for c in container.children if isinstance(c, QueueCard)}
    wanted = [v.id for v in views]
    if [c.queue_id for c in reversed(container.children)] != wanted:
        container.clear_widgets()
        existing = {}
    cards = []
    for v in views:
        card = existing.get(v.id)
        if card is None:
            card = QueueCard(queue_id=v.id, compact=compact)
            card.bind(on_release=lambda c: on_tap(c.queue_id))
            container.add_widget(card)
        card.title = v.name
        card.prefix = v.prefix
        card.agents = agents_text(v, lang)
        card.wait = wait_text(v, lang)
        card.available = v.users > 0
        card.busy = v.id == busy_id
        card.needs_form = v.needs_form
        cards.append(card)
    return cards


class QueueScreen(KioskScreen):
    """A screen of live queue cards (no kv rule of its own: subclasses have theirs)."""

    stale = StringProperty("")
    columns = NumericProperty(1)
    compact = False
    cards: list[QueueCard] = []  # noqa: RUF012 - replaced per instance

    def show(self, views: list[QueueView], lang: str, busy_id: str = "") -> None:
        self.cards = _sync_cards(self.ids.cards, views, lang, on_tap=_issue,
                                 busy_id=busy_id, compact=self.compact)

    def show_ages(self, views: list[QueueView], lang: str, period_s: float,
                  lag_s: float) -> None:
        """Each card says how old its data is, once it is stale (``lag_s``: seconds since
        the views were made)."""
        ages = {v.id: v.age_s for v in views}
        for card in self.cards:
            age = ages.get(card.queue_id)
            card.stale = card_freshness(None if age is None else age + lag_s, period_s, lang)

    def customer(self) -> str:
        return ""

    def clear(self) -> None:
        return


class HomeScreen(QueueScreen):
    """Branch, clock, languages, one live card per queue."""

    kv = "home"

    def show(self, views: list[QueueView], lang: str, busy_id: str = "") -> None:
        self.columns = 1 if self.height >= self.width else 2
        super().show(views, lang, busy_id)

    def focusables(self) -> list[Widget]:
        langs = self.ids.langs.ids
        return [langs.lang_es, langs.lang_en, langs.lang_pt, *self.cards, self.ids.large_text]

    def back(self) -> None:  # Escape on home does nothing (and never exits)
        return


class GreeterScreen(QueueScreen):
    """The greeter's tablet: a customer name or reference, then the queue."""

    kv = "greeter"

    compact = True

    def focusables(self) -> list[Widget]:
        langs = self.ids.langs.ids
        return [self.ids.customer, *self.cards, langs.lang_es, langs.lang_en, langs.lang_pt]

    def customer(self) -> str:
        return str(self.ids.customer.text).strip()

    def clear(self) -> None:
        self.ids.customer.text = ""


class TicketScreen(KioskScreen):
    """The number, the queue, the wait, the QR; whether the paper came out."""

    kv = "ticket"

    number = StringProperty("")
    queue = StringProperty("")
    wait = StringProperty("")
    message = StringProperty("")
    qr = ListProperty([])
    printed = ObjectProperty(None, allownone=True)
    """None while printing (or nothing to print), then True or False."""

    def focusables(self) -> list[Widget]:
        return [self.ids.done]


class NoAgentsScreen(KioskScreen):
    """406: kindly say so, offer the queues that have agents now."""

    kv = "noagents"

    queue_id = StringProperty("")
    message = StringProperty("")
    has_alternatives = BooleanProperty(False)
    cards: list[QueueCard] = []  # noqa: RUF012 - replaced per instance

    def show(self, queue_id: str, message: str, alternatives: list[QueueView],
             lang: str) -> None:
        self.queue_id = queue_id
        self.message = message
        self.has_alternatives = bool(alternatives)
        from kivy.core.window import Window
        self.cards = _sync_cards(self.ids.alternatives, alternatives, lang, on_tap=_issue,
                                 compact=Window.width > Window.height)  # a landscape tablet

    def focusables(self) -> list[Widget]:
        return [*self.cards, self.ids.retry, self.ids.back]


class MessageScreen(KioskScreen):
    """A title and a message: form required, rejected, could not confirm."""

    kv = "message"

    title = StringProperty("")
    message = StringProperty("")
    can_go_back = BooleanProperty(True)

    def focusables(self) -> list[Widget]:
        return [self.ids.back] if self.can_go_back else []

    def back(self) -> None:
        if self.can_go_back:
            app_ref().go_home()


class OutOfServiceScreen(MessageScreen):
    """The API cannot be used: no buttons; comes back by itself when the API answers."""


class PinScreen(KioskScreen):
    """The admin PIN pad."""

    kv = "admin"

    entered = StringProperty("")
    note = StringProperty("")
    keys: list[KioskButton] = []  # noqa: RUF012 - replaced per instance

    def on_kv_post(self, base_widget: Any) -> None:
        self.keys = []
        for label in ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "OK"]:
            b = KioskButton(text=label, size_hint_y=None)
            b.bind(on_release=lambda btn: self.press(btn.text))
            self.ids.keypad.add_widget(b)
            self.keys.append(b)

    def press(self, key: str) -> None:
        if key == "⌫":
            self.entered = self.entered[:-1]
        elif key == "OK":
            app_ref().check_pin(self.entered)
            self.entered = ""
        elif len(self.entered) < 12:
            self.entered += key

    def focusables(self) -> list[Widget]:
        return list(self.keys)


class AdminScreen(KioskScreen):
    """API state, printer state, today's counts; test print, reprint, reload, exit."""

    kv = "admin"

    info = StringProperty("")
    note = StringProperty("")

    def focusables(self) -> list[Widget]:
        ids = self.ids
        return [ids.test_print, ids.reprint, ids.reload, ids.refresh, ids.exit, ids.back]
