"""The kiosk's app (``kiosk.mode: kiosk``) and the greeter's (``tablet``): :class:`KioskApp`.

The home screen's live cards, a tap's progress and answer (:mod:`kiosk.ui.flow`), the
ticket, no agents, a message, out of service, the form; the "now calling" strip when the
config asks for it. What every lobby app shares (language, idle reset, keys, staff screen,
lockdown) is :class:`kiosk.ui.base.LobbyApp`; every decision comes from the core.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, ClassVar

from kivy.clock import Clock
from kivy.core.window import Window

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
    QueueScreen,
    TicketScreen,
)
from kiosk.view import presentation
from kiosk.view.calling import Call
from kiosk.view.messages import customer_message
from kiosk.view.outcomes import IssueResult, Outcome, QueueSnapshot
from kiosk.view.presentation import freshness_text, out_of_service, qr_modules

log = logging.getLogger(__name__)

TICKET_SECONDS = 12.0
TICKET_UNPRINTED_SECONDS = 30.0


class KioskApp(LobbyApp):
    """The customer-facing app (kiosk mode) or the greeter's (tablet mode)."""

    SCREENS: ClassVar[dict[str, type[KioskScreen]]] = {
        "ticket": TicketScreen, "noagents": NoAgentsScreen, "message": MessageScreen,
        "outofservice": OutOfServiceScreen, "pin": PinScreen, "admin": AdminScreen,
        "form": FormScreen}

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.LOCKED = self.mode != "tablet"  # the greeter may close their tablet's window
        self.busy_queue = ""
        self.result: IssueResult | None = None
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
        views = self.core.views(self.lang)
        home = self.screen("home")
        home.show(views, self.lang, busy_id=self.busy_queue)
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
        for i, name in enumerate(("ticket", "noagents", "message", "outofservice", "form")):
            self._events.append(Clock.schedule_once(
                lambda dt, n=name: self.screen(n), 0.2 + 0.1 * i))

    def set_language(self, lang: str) -> None:
        self.lang = lang
        self.refresh()

    def toggle_large_text(self) -> None:
        self.scale = 1.3 if self.scale == 1.0 else 1.0

    def go_home(self, reset: bool = False) -> None:
        if self.sm.has_screen("form"):  # what a customer typed never outlives the form
            self.sm.get_screen("form").wipe()
        if reset:
            self.screen("home").clear()
        super().go_home(reset)

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
        if self.sm.current != "home":
            self.go_home()
        else:
            self.screen("home").show(self.core.views(self.lang), self.lang,
                                     busy_id=queue_id)
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
        s.wait = (t("Estimated wait: {wait}", self.lang,
                    wait=format_wait(r.queue.wait_minutes, self.lang))
                  if r.queue.users > 0 and r.queue.api_name else "")
        s.qr = qr_modules(r.qr) if r.qr else []
        s.printed = None
        if r.printing is None and r.printed is None:  # nothing to print (greeter tablet)
            s.message = t("Please show this number or scan the code.", self.lang)
        else:
            s.message = t("Printing your ticket…", self.lang)
        self.show_screen("ticket")
        self.timings["ticket_on_screen"] = time.perf_counter()
        self.schedule_return(TICKET_SECONDS)

    def show_printed(self, r: IssueResult, printed: bool) -> None:
        """Whether the paper came out (kept on screen longer when it did not)."""
        s: TicketScreen = self.screen("ticket")
        s.printed = printed
        if printed:
            s.message = t("Please take your ticket below.", self.lang)
        else:
            s.message = customer_message(Outcome.ISSUED, self.lang, ticket=r.ticket_id,
                                         printed=False)
            self.schedule_return(TICKET_UNPRINTED_SECONDS)

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
