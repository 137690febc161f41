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

from kiosk.i18n import t
from kiosk.ui.widgets import (
    AccessButton,
    FigureRow,
    KioskButton,
    PriorityButton,
    QueueCard,
    StatusRow,
    ToggleChip,
    app_ref,
)
from kiosk.view import guidance, staffwords
from kiosk.view.devicestate import DeviceState
from kiosk.view.outcomes import QueueView
from kiosk.view.presentation import agents_text, card_freshness, wait_text


class KioskScreen(Screen):
    """Common to all screens: what the keyboard can reach, what Escape does, and what
    audio guidance says."""

    kv: ClassVar[str] = ""
    """The kv file (in ``ui/kv``) with this screen's rule: loaded when first needed."""
    low_reach = BooleanProperty(False)
    """``ui.reach: low`` (set by the app as it builds the screen): the layouts read it
    here, not from the app, so a layout still settling as the app stops needs no app."""
    reach_line = NumericProperty(1.0)
    """The part of the screen's height its controls may take."""
    text_scale = NumericProperty(1.0)
    """The app's text scale, where a screen's layout needs it (its kv rule follows the
    app)."""

    def focusables(self) -> list[Widget]:
        return []

    def back(self) -> None:
        app_ref().go_home()

    def spoken(self, lang: str) -> str:
        """What audio guidance says of this screen as it opens (the item in focus is said
        after it: :meth:`spoken_item`)."""
        return ""

    def spoken_item(self, widget: Widget, lang: str) -> str:
        """What audio guidance says of ``widget`` when it has the focus."""
        return spoken_widget(widget, lang)


def spoken_widget(widget: Widget, lang: str) -> str:
    """A control as audio guidance says it, from what it shows."""
    if isinstance(widget, QueueCard) and widget.view is not None:
        return guidance.queue_item(widget.view, lang)
    if isinstance(widget, PriorityButton):
        return (t("Priority service", lang) + ". "
                + t("If you have the right to be served first", lang))
    if isinstance(widget, AccessButton):
        state = t("on", lang) if widget.active else t("off", lang)
        return f"{widget.text}, {state}"
    if isinstance(widget, ToggleChip):
        return f"{widget.text}, " + (t("chosen", lang) if widget.selected else
                                     t("not chosen", lang))
    return str(getattr(widget, "text", "")).replace("\n", " ")


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
        card.view = v
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
    """Branch, clock, languages, the priority button, one live card per queue, large
    text, high contrast, audio guidance."""

    kv = "home"

    def show(self, views: list[QueueView], lang: str, busy_id: str = "") -> None:
        self.compact = bool(app_ref().low_reach)  # the cards fit the lower part
        self.columns = 1 if self.height >= self.width else 2
        super().show(views, lang, busy_id)

    def focusables(self) -> list[Widget]:
        langs, ids = self.ids.langs.ids, self.ids
        return [langs.lang_es, langs.lang_en, langs.lang_pt, ids.priority, *self.cards,
                ids.audio, ids.contrast, ids.large_text]

    def back(self) -> None:  # Escape on home does nothing (and never exits)
        return

    def spoken(self, lang: str) -> str:
        return guidance.home(t("Welcome! Choose a service to get your number.", lang),
                             [c.view for c in self.cards if c.view is not None], lang,
                             priority=bool(app_ref().priority_offered))


class GreeterScreen(QueueScreen):
    """The greeter's tablet: a customer name or reference, priority or not, then the
    queue."""

    kv = "greeter"

    compact = True
    chips: list[ToggleChip] = []  # noqa: RUF012 - replaced per instance

    def show_priority(self, reasons: dict[str, dict[str, str]], ask: bool, chosen: str | None,
                      lang: str) -> None:
        """The priority toggle: "regular" and one chip per reason (or one "priority"
        chip where no reason is asked); ``chosen``: the app's priority (None: regular)."""
        wanted = [("-", t("Regular service", lang))]
        if ask:
            wanted += [(rid, texts.get(lang) or rid) for rid, texts in reasons.items()]
        else:
            wanted.append(("", t("Priority service", lang)))
        if [(c.value, c.text) for c in self.chips] != wanted:
            box = self.ids.priority
            box.clear_widgets()
            self.chips = []
            for value, text in wanted:
                chip = ToggleChip(value=value, text=text)
                chip.bind(on_release=lambda c: app_ref().set_priority(
                    None if c.value == "-" else c.value))
                box.add_widget(chip)
                self.chips.append(chip)
        for chip in self.chips:
            chip.selected = chip.value == ("-" if chosen is None else chosen)

    def focusables(self) -> list[Widget]:
        langs = self.ids.langs.ids
        return [self.ids.customer, *self.chips, *self.cards, langs.lang_es, langs.lang_en,
                langs.lang_pt]

    def customer(self) -> str:
        return str(self.ids.customer.text).strip()

    def clear(self) -> None:
        self.ids.customer.text = ""


class PriorityScreen(KioskScreen):
    """Priority service: why (one large button per reason)."""

    kv = "priority"

    buttons: list[KioskButton] = []  # noqa: RUF012 - replaced per instance

    def show(self, reasons: dict[str, dict[str, str]], lang: str) -> None:
        from kivy.factory import Factory
        box = self.ids.reasons
        box.clear_widgets()
        self.buttons = []
        for rid, texts in reasons.items():
            button = Factory.ReasonButton(text=texts.get(lang) or rid)
            button.reason = rid
            button.bind(on_release=lambda b: app_ref().choose_priority(b.reason))
            box.add_widget(button)
            self.buttons.append(button)

    def focusables(self) -> list[Widget]:
        return [*self.buttons, self.ids.back]

    def spoken(self, lang: str) -> str:
        return guidance.priority_reasons(len(self.buttons), lang)


class PriorityQueuesScreen(QueueScreen):
    """The services, as a priority customer sees them (their preferential segments'
    agents and waits); a tap takes a priority ticket."""

    kv = "priority"

    reason_text = StringProperty("")
    """The reason chosen, as the customer read it ("" where none is asked)."""

    def show(self, views: list[QueueView], lang: str, busy_id: str = "") -> None:
        self.compact = bool(app_ref().low_reach)
        self.columns = 1 if self.height >= self.width else 2
        super().show(views, lang, busy_id)

    def focusables(self) -> list[Widget]:
        return [*self.cards, self.ids.back]

    def back(self) -> None:
        app_ref().priority_back()

    def spoken(self, lang: str) -> str:
        return guidance.priority_queues(self.reason_text, lang)


class TicketScreen(KioskScreen):
    """The number, the queue, the wait, the QR; whether the paper came out."""

    kv = "ticket"

    number = StringProperty("")
    queue = StringProperty("")
    wait = StringProperty("")
    message = StringProperty("")
    qr = ListProperty([])
    qr_phone = BooleanProperty(False)
    """The QR opens the phone page (the words under it say so)."""
    printed = ObjectProperty(None, allownone=True)
    """None while printing (or nothing to print), then True or False."""
    priority = StringProperty("")
    """"Priority service" on a priority ticket; else empty."""
    wait_minutes: float | None = None
    """The wait shown, in minutes (said in words by audio guidance)."""

    def focusables(self) -> list[Widget]:
        return [self.ids.done]

    def spoken(self, lang: str) -> str:
        said = guidance.ticket(str(self.number), str(self.queue), self.wait_minutes, lang,
                               priority=bool(self.priority))
        return f"{said} {self.message}"


class NoAgentsScreen(KioskScreen):
    """406: kindly say so, offer the queues that have agents now."""

    kv = "noagents"

    queue_id = StringProperty("")
    message = StringProperty("")
    has_alternatives = BooleanProperty(False)
    priority = StringProperty("")
    """"Priority service" when the customer asked for it (the alternatives are too)."""
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

    def spoken(self, lang: str) -> str:
        more = (t("These services have people available now:", lang) if self.cards else
                t("Nobody is available in any service right now. Please try again in a few "
                  "minutes or ask our staff.", lang))
        return guidance.message(t("We're sorry", lang), f"{self.message} {more}")


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

    def spoken(self, lang: str) -> str:
        return guidance.message(self.title, self.message)


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
    """The staff screen: the device's state as rows with a colour and a word (API,
    printer, clock, journal, numbers, hub) and what to do about each fault; today's
    figures; test print, reprint, reload, refresh, exit. In the staff's language
    (:mod:`kiosk.view.staffwords`): never a raw identifier."""

    kv = "admin"

    note = StringProperty("")
    state = ObjectProperty(None, allownone=True)
    """The :class:`~kiosk.view.devicestate.DeviceState` the core sent last."""
    device_line = StringProperty("")
    banner_text = StringProperty("")
    banner_bg = ListProperty([0.37, 0.42, 0.48, 1])
    banner_fg = ListProperty([1, 1, 1, 1])
    landscape = BooleanProperty(False)
    """The tablet's layout: state and today side by side, the buttons in one row."""

    def on_size(self, *args: Any) -> None:
        self.landscape = self.width > self.height

    def show(self, state: DeviceState, lang: str, kiosk_id: str,
             reasons: dict[str, dict[str, str]] | None = None) -> None:
        """Lay out ``state`` in ``lang``."""
        from kiosk.ui.theme import LEVELS, rgba
        self.state = state
        self.device_line = t("{device} · version {version}", lang, device=kiosk_id,
                             version=state.version)
        level, self.banner_text = staffwords.banner(state, lang)
        bg, fg = LEVELS[level]
        self.banner_bg, self.banner_fg = rgba(bg), rgba(fg)
        compact = self.landscape
        rows = self.ids.rows
        rows.clear_widgets()
        for row in staffwords.rows(state, lang):
            bg, fg = LEVELS[row.level]
            rows.add_widget(StatusRow(
                title=row.title, word=row.word, advice=row.advice,
                detail=t("For IT: {detail}", lang, detail=row.detail) if row.detail else "",
                level_word=staffwords.level_word(row.level, lang), bg=rgba(bg), fg=rgba(fg),
                compact=compact))
        figures = self.ids.figures
        figures.clear_widgets()
        for label, value in staffwords.today(state, lang, reasons):
            figures.add_widget(FigureRow(label=label, value=value, compact=compact))

    def focusables(self) -> list[Widget]:
        ids = self.ids
        return [ids.test_print, ids.reprint, ids.refresh, ids.reload, ids.exit, ids.back]
