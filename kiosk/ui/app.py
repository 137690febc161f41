"""The kiosk's app (``kiosk.mode: kiosk``) and the greeter's (``tablet``): :class:`KioskApp`.

The home screen's live cards, a tap's progress and answer (:mod:`kiosk.ui.flow`), the
ticket, no agents, a message, out of service, the form; the "now calling" strip when the
config asks for it. Priority service: the home's button, the reasons, the services as a
priority customer sees them (the greeter's tablet: a toggle). Audio guidance (the kiosk):
started by a held key, a dedicated key or the home's button, every screen and each item
in focus spoken (:mod:`kiosk.ui.guide`), until the idle reset. What every lobby app
shares (language, large text, high contrast, idle reset, keys, staff screen, lockdown) is
:class:`kiosk.ui.base.LobbyApp`; every decision comes from the core.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, ClassVar

from kivy.clock import Clock
from kivy.core.window import Window
from kivy.properties import BooleanProperty, NumericProperty

from kiosk.i18n import format_wait, t
from kiosk.ui import flow
from kiosk.ui.base import LobbyApp
from kiosk.ui.calling import stop_flash
from kiosk.ui.form import FormScreen, quiet_clipboard
from kiosk.ui.screens import (
    AdminScreen,
    GreeterScreen,
    HomeScreen,
    KioskScreen,
    MessageScreen,
    NoAgentsScreen,
    OutOfServiceScreen,
    PinScreen,
    PriorityQueuesScreen,
    PriorityScreen,
    QueueScreen,
    TicketScreen,
)
from kiosk.ui.widgets import Focusable
from kiosk.view import guidance, presentation
from kiosk.view.calling import Call
from kiosk.view.messages import customer_message
from kiosk.view.outcomes import IssueResult, Outcome, QueueSnapshot
from kiosk.view.presentation import freshness_text, out_of_service, qr_modules

log = logging.getLogger(__name__)

TICKET_SECONDS = 12.0
TICKET_UNPRINTED_SECONDS = 30.0
TICKET_SPOKEN_SECONDS = 40.0
"""How long the ticket stays on screen while audio guidance says it (twice)."""
LOW_REACH_LINE = 0.55
"""``ui.reach: low``: every control within the lower 55% of a portrait screen. A 32-inch
portrait screen (1080x1920: 709 mm tall) whose bottom edge is 762 mm (30 in) above the
floor, over a knee space, puts that line at 1152 mm (45.4 in): within ADA 308.2.1's
48 in (1220 mm) forward reach, with room for the bezel; its bottom is above 15 in."""


class KioskApp(LobbyApp):
    """The customer-facing app (kiosk mode) or the greeter's (tablet mode)."""

    SCREENS: ClassVar[dict[str, type[KioskScreen]]] = {
        "ticket": TicketScreen, "noagents": NoAgentsScreen, "message": MessageScreen,
        "outofservice": OutOfServiceScreen, "pin": PinScreen, "admin": AdminScreen,
        "form": FormScreen, "priority": PriorityScreen, "priority_queues": PriorityQueuesScreen}

    priority_offered = BooleanProperty(False)
    """Priority tickets are offered here (the home's button, the greeter's toggle)."""
    audio_offered = BooleanProperty(False)
    """Audio guidance can be started (offered by the config, and sound can be played)."""
    audio_on = BooleanProperty(False)
    """Audio guidance is speaking (until the idle reset)."""
    reach_line = NumericProperty(1.0)
    """The part of the screen's height the controls may take (``ui.reach``)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.LOCKED = self.mode != "tablet"  # the greeter may close their tablet's window
        self.busy_queue = ""
        self.result: IssueResult | None = None
        self.priority: str | None = None
        """This customer's priority: a reason id ("" where none is asked); None: none."""
        self.priority_offered = self.settings.priority
        self.reach_line = LOW_REACH_LINE if self.low_reach else 1.0
        self.guide: Any = None
        """Audio guidance's voice (:class:`kiosk.ui.guide.Guide`), made when first used."""
        self.guide_synth: Any = None
        """The synthesiser guidance uses (None: espeak-ng; tests stub it at its edge)."""
        self.audio_why = "not checked yet"
        """Why audio guidance is not offered ("" when it is)."""
        self.audio_checked = False
        self._held: dict[int, Any] = {}
        self._long: set[int] = set()
        self._warmed = False
        self._refresh_trigger = Clock.create_trigger(lambda dt: self.refresh())

    def home_class(self) -> type[KioskScreen]:
        return GreeterScreen if self.mode == "tablet" else HomeScreen

    def preload(self) -> None:
        quiet_clipboard()  # before the first text box: no xclip/xsel probing
        super().preload()

    def started(self) -> None:
        self.core.subscribe(self._on_snapshot)

    def stopped(self) -> None:
        self.core.unsubscribe(self._on_snapshot)
        if self.guide is not None:
            self.guide.close()
        for ev in self._held.values():
            ev.cancel()
        if self._root is not None and self.sm.has_screen("home"):
            stop_flash(self.sm.get_screen("home").ids.get("strip"))  # the Clock outlives us
        Window.unbind(on_flip=self._after_first_frame)
        self._refresh_trigger.cancel()

    # ----------------------------------------------------------------- state

    def _on_snapshot(self, snapshot: QueueSnapshot[Any]) -> None:
        self._refresh_trigger()

    def show_calls(self, calls: list[Call], announce: list[Call]) -> None:
        """The home's "now calling" strip (``ui.calls``)."""
        home = self.screen("home")
        if "strip" not in home.ids:
            return
        home.ids.strip.show_calls(calls, self.core.calls_connected)
        if announce:
            home.ids.strip.new_call()
        for call in announce:
            log.info("call: %s to %s", call.ticket_id, call.poc)

    def refresh(self) -> None:
        """Redraw the queue cards and the out-of-service state from the core's state."""
        snap = self.core.snapshot
        if snap.fetched_at is not None and not self._warmed:
            self._warmed = True  # once the customer sees the queues, load the rest
            Window.bind(on_flip=self._after_first_frame)
        priority = self.priority is not None
        views = self.core.views(self.lang, priority=priority and self.mode == "tablet")
        home = self.screen("home")
        home.show(views, self.lang, busy_id=self.busy_queue)
        if isinstance(home, GreeterScreen) and self.priority_offered:
            home.show_priority(self.settings.priority_reasons, self.settings.priority_ask,
                               self.priority, self.lang)
        if priority and self.sm.has_screen("priority_queues"):
            self.screen("priority_queues").show(self.core.views(self.lang, priority=True),
                                                self.lang, busy_id=self.busy_queue)
        self._show_ages()
        current = self.sm.current
        if out_of_service(snap) and current in ("home", "noagents", "message"):
            self.show_out_of_service()
        elif current == "outofservice" and snap.error is None and snap.fetched_at is not None:
            log.info("API answers again: back in service")
            self.go_home()

    def _after_first_frame(self, *_: Any) -> None:
        Window.unbind(on_flip=self._after_first_frame)
        # the printer's set-up (in the core) and the QR encoder (here), and the screens a
        # tap leads to, so that the first tap waits for none of them; spread out, so that
        # no frame waits long either
        self._events.append(Clock.schedule_once(lambda dt: self.core.warm_up(), 0.5))
        threading.Thread(target=presentation.warm_up, name="qr-warm-up", daemon=True).start()
        names = ["ticket", "noagents", "message", "outofservice", "form"]
        if self.priority_offered and self.mode != "tablet":
            names += ["priority", "priority_queues"]
        for i, name in enumerate(names):
            self._events.append(Clock.schedule_once(
                lambda dt, n=name: self.screen(n), 0.2 + 0.1 * i))
        if self.settings.audio and self.mode == "kiosk":  # can a sound be played here?
            self._events.append(Clock.schedule_once(lambda dt: self.check_audio(),
                                                    0.3 + 0.1 * len(names)))

    def set_language(self, lang: str) -> None:
        self.lang = lang
        self.refresh()
        if self.audio_on:  # from now on, in the language chosen
            self.speak_screen(item=self._ring.widget if self._ring else None)

    def toggle_large_text(self) -> None:
        self.scale = 1.3 if self.scale == 1.0 else 1.0
        self._said_toggle()

    def toggle_contrast(self) -> None:
        super().toggle_contrast()
        self._said_toggle()

    def _said_toggle(self) -> None:
        if self.audio_on and self._ring is not None and self._ring.widget is not None:
            self.focus_moved(self._ring.widget)  # "High contrast, on, button 9 of 11"

    def at_rest(self) -> bool:
        return super().at_rest() and self.priority is None and not self.audio_on

    def go_home(self, reset: bool = False, *, keep_priority: bool = False) -> None:
        if self.sm.has_screen("form"):  # what a customer typed never outlives the form
            self.sm.get_screen("form").wipe()
        if reset:
            self.screen("home").clear()
            self.stop_audio()
        if not keep_priority:
            self.priority = None
        super().go_home(reset)

    # ----------------------------------------------------------------- priority

    def open_priority(self) -> None:
        """The home's priority button: the reasons, or (no reason asked) the services."""
        if not self.priority_offered:
            return
        if not self.settings.priority_ask:
            self.choose_priority("")
            return
        self.screen("priority").show(self.settings.priority_reasons, self.lang)
        self.show_screen("priority")

    def choose_priority(self, reason: str) -> None:
        """A reason chosen (``""``: none asked): the services, for a priority ticket."""
        self.priority = reason
        s: PriorityQueuesScreen = self.screen("priority_queues")
        texts = self.settings.priority_reasons.get(reason, {})
        s.reason_text = texts.get(self.lang, reason) if reason else ""
        s.show(self.core.views(self.lang, priority=True), self.lang)
        self.show_screen("priority_queues")

    def priority_back(self) -> None:
        """Back from the services: to the reasons (where asked), else home."""
        if self.settings.priority_ask and self.priority:
            self.open_priority()
        else:
            self.go_home()

    def set_priority(self, reason: str | None) -> None:
        """The greeter's toggle: priority for ``reason`` ("": none asked), or None."""
        self.priority = reason
        self.refresh()

    def ticked(self) -> None:
        if self.sm.current == "home":
            self._show_ages()

    def _show_ages(self) -> None:
        """Each card says how old its data is once it is stale; the banner says only
        "Connecting…", while there are no cards to say it."""
        home = self.screen("home")
        snap = self.core.snapshot
        home.stale = freshness_text(snap, self.settings.refresh_s, self.lang) \
            if snap.fetched_at is None else ""
        if isinstance(home, QueueScreen):
            home.show_ages(self.core.views(self.lang), self.lang, self.settings.refresh_s,
                           time.monotonic() - self.core.views_at)

    # ----------------------------------------------------------------- issuing

    def issue(self, queue_id: str) -> None:
        """A tap on a queue: show progress at once, ask the core, show the answer
        (:mod:`kiosk.ui.flow`)."""
        if self.busy_queue:
            return
        if flow.open_form(self, queue_id):  # a few details first: no number is taken yet
            return
        self.timings["tap"] = time.perf_counter()
        self.busy_queue = queue_id
        current = self.sm.current
        if self.priority is not None and self.mode != "tablet" \
                and current != "priority_queues":
            self.show_screen("priority_queues")  # an alternative, or "try again"
            current = "priority_queues"
        if current in ("home", "priority_queues"):  # progress on the tapped card
            self.refresh()
        else:
            self.go_home(keep_priority=True)
        self.spawn(flow.take_ticket(self, queue_id))

    def submit_form(self, queue_id: str, values: dict[str, Any]) -> None:
        """The form's send button (:mod:`kiosk.ui.flow`)."""
        self.spawn(flow.submit_form(self, queue_id, values))

    def tap_timed_out(self) -> None:
        """The core did not answer a tap in time: whether a number was given is unknown,
        so the customer asks staff (who see it in the journal) rather than tap again."""
        self.message(t("Please ask our staff", self.lang),
                     t("We could not confirm your number. Please ask our staff before "
                       "trying again.", self.lang))
        self.core.poll_soon()

    def show_result(self, r: IssueResult) -> None:
        if r.outcome is Outcome.ISSUED:
            self._show_ticket(r)
        elif r.outcome is Outcome.NO_AGENTS:
            self.screen("noagents").priority = \
                t("Priority service", self.lang) if r.priority is not None else ""
            self.screen("noagents").show(r.queue.id, r.message, list(r.alternatives), self.lang)
            self.show_screen("noagents")
        elif r.uncertain:
            self.message(t("Please ask our staff", self.lang), r.message)
        elif r.outcome is Outcome.UNAUTHORIZED:  # no tap can work until staff fix the key
            self.show_out_of_service()
        else:  # this tap failed; the next one may work: say so, and check the API now
            title = {Outcome.FORM_REQUIRED: t("A few details first", self.lang),
                     Outcome.REJECTED: t("Please try again", self.lang)}.get(
                r.outcome, t("We're sorry", self.lang))
            self.message(title, r.message)
            self.core.poll_soon()
        self.refresh()

    def _show_ticket(self, r: IssueResult) -> None:
        s: TicketScreen = self.screen("ticket")
        s.number = r.ticket_id
        s.queue = r.queue.name
        waits = r.queue.users > 0 and bool(r.queue.api_name)
        s.wait = (t("Estimated wait: {wait}", self.lang,
                    wait=format_wait(r.queue.wait_minutes, self.lang)) if waits else "")
        s.wait_minutes = r.queue.wait_minutes if waits else None
        s.priority = t("Priority service", self.lang) if r.priority is not None else ""
        s.qr = qr_modules(r.qr) if r.qr else []
        s.qr_phone = bool(r.qr and r.qr_phone)
        s.printed = None
        if r.printing is None and r.printed is None:  # nothing to print (greeter tablet)
            s.message = t("Please show this number or scan the code.", self.lang)
        else:
            s.message = t("Printing your ticket…", self.lang)
        self.show_screen("ticket")
        self.timings["ticket_on_screen"] = time.perf_counter()
        self.schedule_return(TICKET_SPOKEN_SECONDS if self.audio_on else TICKET_SECONDS)

    def show_printed(self, r: IssueResult, printed: bool) -> None:
        """Whether the paper came out (kept on screen longer when it did not)."""
        s: TicketScreen = self.screen("ticket")
        s.printed = printed
        if printed:
            s.message = t("Please take your ticket below.", self.lang)
        else:
            s.message = customer_message(Outcome.ISSUED, self.lang, ticket=r.ticket_id,
                                         printed=False)
            self.schedule_return(max(TICKET_UNPRINTED_SECONDS, TICKET_SPOKEN_SECONDS
                                     if self.audio_on else 0))
        if self.audio_on and self.guide is not None:  # after the number, not over it
            self.guide.say(s.message, self.lang, interrupt=False)

    def message(self, title: str, message: str, can_go_back: bool = True) -> None:
        s: MessageScreen = self.screen("message")
        s.title, s.message, s.can_go_back = title, message, can_go_back
        self.show_screen("message")

    def show_out_of_service(self) -> None:
        s: OutOfServiceScreen = self.screen("outofservice")
        s.title = t("Out of service for a moment", self.lang)
        s.message = t("Please ask our staff for help. This screen comes back by itself as "
                      "soon as the service is available again.", self.lang)
        s.can_go_back = False
        self.show_screen("outofservice")
        self.core.poll_soon()

    # ----------------------------------------------------------------- audio guidance

    def check_audio(self) -> None:
        """Find out (once, on the main thread: SDL) whether a sound can be played here;
        audio guidance is offered only then, and the log says why not."""
        from kiosk.view.sound import sound_output
        self.audio_why = sound_output(self.settings.audio_device)
        self.audio_offered = not self.audio_why
        self.audio_checked = True
        if self.audio_why:
            log.warning("audio guidance is not offered: %s", self.audio_why)

    def start_audio(self) -> None:
        """Audio guidance on (a held key, a dedicated key, the home's button): what it
        is and which keys do what, then the screen and the item in focus."""
        if not self.audio_offered:
            if self.audio_checked:
                log.info("audio guidance asked for, not offered: %s", self.audio_why)
            return
        if self.guide is None:
            from kiosk.ui.guide import Guide
            from kiosk.view.speech import synthesize
            self.guide = Guide(voices=self.settings.audio_voices,
                               volume=self.settings.audio_volume,
                               synth=self.guide_synth or synthesize)
            self.guide.start()
        if not self.audio_on:
            self.guide.volume = self.settings.audio_volume  # each visit starts the same
        self.audio_on = True
        log.info("audio guidance on")
        items = self.focus_items()
        first = self._ring.widget if self._ring and self._ring.widget in items else \
            next(iter(items), None)
        self.speak_screen(intro=True, item=first)

    def stop_audio(self) -> None:
        """Audio guidance off (the idle reset)."""
        if self.audio_on:
            log.info("audio guidance off")
        self.audio_on = False
        if self.guide is not None:
            self.guide.stop()

    def speak_screen(self, *, intro: bool = False, item: Any = None) -> None:
        """Say the screen (after what guidance is, on ``intro``) and ``item``, focused."""
        if self.guide is None:
            return
        screen: KioskScreen = self.sm.current_screen
        parts = [guidance.started(self.settings.audio_keys, self.lang)] if intro else []
        parts.append(screen.spoken(self.lang))
        items = self.focus_items()
        if item is not None and item in items:
            if self._ring is not None and self._ring.widget is not item:
                self._move_ring(item)
            parts.append(guidance.item(screen.spoken_item(item, self.lang),
                                       items.index(item), len(items), self.lang))
        self.guide.say(" ".join(p for p in parts if p), self.lang)

    def _move_ring(self, widget: Any) -> None:
        assert self._ring is not None
        self._ring.move_to(widget)

    def screen_shown(self) -> None:
        if self.audio_on:  # every screen is said, and its first item focused
            Clock.schedule_once(lambda dt: self.speak_screen(
                item=next(iter(self.focus_items()), None)), 0)

    def focus_moved(self, widget: Any) -> None:
        if not self.audio_on or self.guide is None:
            return
        screen: KioskScreen = self.sm.current_screen
        items = self.focus_items()
        if widget in items:
            self.guide.say(guidance.item(screen.spoken_item(widget, self.lang),
                                         items.index(widget), len(items), self.lang),
                           self.lang)

    def key_hook(self, key: int, down: bool) -> bool:
        """Audio guidance's keys: the held start key (briefly: choose), a dedicated start
        key, and, while it is on, previous/next, repeat, back and the volume. Any key
        cuts off what is being said."""
        keys = self.settings.audio_keys
        if self.mode != "kiosk" or not self.settings.audio:
            return False
        if key in keys.get("hold_start", ()):
            return self._hold_key(key, down)
        if not down:
            return False
        if self.audio_on and self.guide is not None:
            self.guide.stop()
        if key in keys.get("start", ()):
            self.start_audio()
            return True
        if not self.audio_on or getattr(self._ring and self._ring.widget, "focus", False):
            return False  # not guided, or typing into a field: the usual keys
        if key in keys.get("previous", ()) or key in keys.get("next", ()):
            self._step(-1 if key in keys.get("previous", ()) else 1)
        elif key in keys.get("repeat", ()):
            self.speak_screen(item=self._ring.widget if self._ring else None)
        elif key in keys.get("back", ()):
            self.sm.current_screen.back()
            if self.sm.current_screen is not None and self.sm.current == "home":
                self.speak_screen(item=next(iter(self.focus_items()), None))
        elif key in keys.get("volume_up", ()) or key in keys.get("volume_down", ()):
            step = 0.1 if key in keys.get("volume_up", ()) else -0.1
            assert self.guide is not None
            self.guide.say(guidance.volume(self.guide.louder(step), self.lang), self.lang)
        else:
            return False
        return True

    def _hold_key(self, key: int, down: bool) -> bool:
        """The start key: held ``audio_hold_s``, guidance starts; released sooner while
        guidance is on, it chooses the item in focus."""
        if down:
            if key not in self._held:  # the first press, not the key's repeats
                if self.audio_on and self.guide is not None:
                    self.guide.stop()
                self._held[key] = Clock.schedule_once(lambda dt: self._held_long(key),
                                                      self.settings.audio_hold_s)
            return True
        ev = self._held.pop(key, None)
        if ev is None:
            return True
        if key in self._long:  # the hold started guidance: not a press as well
            self._long.discard(key)
            return True
        ev.cancel()  # released sooner: a press
        target = self._ring.widget if self._ring else None
        if self.audio_on and isinstance(target, Focusable):
            target.activate()
        return True

    def _held_long(self, key: int) -> None:
        if key in self._held:
            self._long.add(key)
            self.start_audio()

    def _step(self, step: int) -> None:
        items = self.focus_items()
        if not items:
            return
        current = items.index(self._ring.widget) if self._ring and \
            self._ring.widget in items else -1
        target = items[(current + step) % len(items)] if current >= 0 else items[0]
        self._focus(target)
