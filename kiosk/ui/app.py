"""The kiosk app: screens, language, idle reset, keyboard operation, admin.

Runs on the same asyncio loop as the core (``App.async_run``): a tap starts a task that
awaits the use case, so the network never blocks a frame, and the printer works on its
own thread. Every decision about what to show comes from :mod:`kiosk.service`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.lang import Builder
from kivy.metrics import mm
from kivy.properties import ListProperty, NumericProperty, StringProperty
from kivy.uix.screenmanager import NoTransition, ScreenManager
from kivy.uix.widget import Widget

from kiosk.i18n import format_wait, t
from kiosk.service.calling import Call, todays
from kiosk.service.link import CoreTimeout, RemoteCore
from kiosk.service.messages import customer_message
from kiosk.service.outcomes import IssueResult, Outcome, QueueSnapshot
from kiosk.service.presentation import freshness_text, out_of_service, qr_modules
from kiosk.service.wire import UiSettings
from kiosk.ui.calling import CallingScreen, stop_flash
from kiosk.ui.drawing import Screens
from kiosk.ui.form import FormScreen, open_after_428, open_form, quiet_clipboard
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
from kiosk.ui.theme import Theme, register_fonts, rgba
from kiosk.ui.widgets import Focusable, FocusRing

log = logging.getLogger(__name__)

KV_DIR = Path(__file__).resolve().parent / "kv"
SCREENS: dict[str, type[KioskScreen]] = {
    "ticket": TicketScreen, "noagents": NoAgentsScreen, "message": MessageScreen,
    "outofservice": OutOfServiceScreen, "pin": PinScreen, "admin": AdminScreen,
    "form": FormScreen}
TICKET_SECONDS = 12.0
TICKET_UNPRINTED_SECONDS = 30.0
ADMIN_HOLD_SECONDS = 2.0

# Kivy key codes
K_TAB, K_ENTER, K_KP_ENTER, K_SPACE, K_ESCAPE = 9, 13, 271, 32, 27
K_UP, K_DOWN, K_RIGHT, K_LEFT, K_BACKSPACE = 273, 274, 275, 276, 8


class KioskApp(App):
    """The customer-facing app (kiosk mode) or the greeter's (tablet mode)."""

    lang = StringProperty("es")
    scale = NumericProperty(1.0)
    branch = StringProperty("")
    clock_text = StringProperty("")

    c_brand = ListProperty()
    c_brand_light = ListProperty()
    c_on_brand = ListProperty()
    c_card = ListProperty()
    c_on_card = ListProperty()
    c_muted_card = ListProperty()
    c_on_muted = ListProperty()
    c_accent = ListProperty()
    c_on_accent = ListProperty()
    c_warn = ListProperty()
    c_on_warn = ListProperty()
    c_pressed = ListProperty()

    def __init__(self, core: RemoteCore, *, mode: str = "kiosk", fullscreen: bool = False,
                 theme: Theme | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.title = "kiosk"
        self.core = core
        self.mode = mode
        self.fullscreen = fullscreen
        self.stopping = False
        s = self.settings
        self.theme = theme or Theme(brand=s.brand_color, accent=s.accent_color)
        th = self.theme
        self.c_brand, self.c_on_brand = rgba(th.brand), rgba(th.on_brand)
        self.c_brand_light = [min(1.0, c + 0.12) for c in rgba(th.brand)[:3]] + [1.0]
        self.c_card, self.c_on_card = rgba(th.card), rgba(th.on_card)
        self.c_muted_card, self.c_on_muted = rgba(th.muted_card), rgba(th.on_muted)
        self.c_accent, self.c_on_accent = rgba(th.accent), rgba(th.on_accent)
        self.c_warn, self.c_on_warn = rgba(th.warn), rgba(th.on_warn)
        self.c_pressed = rgba("#B7C3D6")
        self.lang = s.language
        self.last_activity = time.monotonic()
        self.busy_queue = ""
        self.result: IssueResult | None = None
        self.timings: dict[str, float] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self._ring: FocusRing | None = None
        self._return_ev: Any = None
        self._hold_ev: Any = None
        self._stopped = False
        self._on_admin = False
        self._warmed = False
        self._kv_loaded: set[str] = set()
        self._root: ScreenManager | None = None
        self._events: list[Any] = []  # Clock events to cancel at stop (the Clock outlives us)
        self._refresh_trigger = Clock.create_trigger(lambda dt: self.refresh())
        self._calls_day = ""
        self.announcer: Any = None
        """Chime and speech for new calls (display mode)."""

    # ----------------------------------------------------------------- building

    def tr(self, message: str, lang: str, **fields: Any) -> str:
        """Customer text in ``lang`` (kv files call this with ``app.lang``)."""
        return t(message, lang, **fields)

    def preload(self) -> None:
        """Build the home screen (fonts, kv rules, widgets): run_ui calls this while it
        waits for the first queues; build() does it otherwise. The other screens are
        built (and their kv files loaded) on first use, or once the first frame is up."""
        if self._root is not None:
            return
        register_fonts()
        quiet_clipboard()  # before the first text box: no xclip/xsel probing
        self._load_kv("widgets")
        self._load_kv("calling")  # the display's screen, and the home's "now calling" strip
        home_cls: type[KioskScreen] = {"tablet": GreeterScreen, "display": CallingScreen
                                       }.get(self.mode, HomeScreen)
        self._load_kv(home_cls.kv)
        sm = Screens(transition=NoTransition())  # unclipped: kiosk/ui/drawing.py says why
        sm.add_widget(home_cls(name="home"))
        sm.bind(current=lambda *_: self._screen_changed())
        self._ring = FocusRing(rgba(self.theme.focus))
        self._root = sm

    def build(self) -> Widget:
        self.preload()
        assert self._root is not None
        return self._root

    def on_start(self) -> None:
        # The brand colour is every screen's background through the window's clear
        # colour: a full-window rectangle per screen would fill every pixel twice per frame.
        Window.clearcolor = self.c_brand
        Window.bind(on_key_down=self._on_key_down, on_request_close=self._on_request_close)
        # Bound after Kivy's own (the settings panel on F1): every key that reaches
        # on_keyboard stops here.
        Window.bind(on_keyboard=self._swallow_key)
        Window.bind(on_touch_down=self._on_touch_down, on_touch_up=self._on_touch_up)
        if self.fullscreen:
            Window.show_cursor = False
        self.core.subscribe(self._on_snapshot)
        if self.settings.calls:
            s = self.settings
            if self.mode == "display" and (s.chime or s.speech):
                from kiosk.ui.announcer import Announcer  # sounds: a calling screen's only
                self.announcer = Announcer(default_lang=s.language, voices=s.voices,
                                           chime_on=s.chime, speech_on=s.speech)
                self.announcer.start()
            self.core.subscribe_calls(self._on_calls)
            self._on_calls([])
        self._spawn(self._load_branch())
        self._events.append(Clock.schedule_interval(self._tick, 1.0))
        self._tick(0)
        self.refresh()

    def open_settings(self, *args: Any) -> bool:
        """Kivy's settings panel (F1) never opens in a kiosk."""
        return False

    def display_settings(self, settings: Any) -> bool:
        return False

    def _swallow_key(self, *args: Any) -> bool:
        return True

    @property
    def settings(self) -> UiSettings:
        """The core's settings for the screen (they change when the config is reloaded)."""
        settings = self.core.settings
        assert settings is not None, "the core is ready before the app is made"
        return settings

    def stop(self, *args: Any) -> None:
        self.stopping = True
        super().stop(*args)

    def _stop(self, *args: Any) -> None:
        # Kivy runs this from stop() and again when async_run's loop ends: once is enough.
        if self._stopped:
            return
        self._stopped = True
        super()._stop(*args)

    def on_stop(self) -> None:
        self.core.unsubscribe(self._on_snapshot)
        self.core.unsubscribe_calls(self._on_calls)
        if self.announcer is not None:
            self.announcer.close()
        if self._root is not None and self.sm.has_screen("home"):
            home = self.sm.get_screen("home")
            stop_flash(home, home.ids.get("strip"))  # animations outlive the app otherwise
        Window.unbind(on_flip=self._after_first_frame, on_keyboard=self._swallow_key)
        self._refresh_trigger.cancel()
        for ev in (*self._events, self._return_ev, self._hold_ev):
            if ev is not None:
                ev.cancel()
        for task in self.tasks:
            task.cancel()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _load_branch(self) -> None:
        self.branch = await self.core.branch_label()

    # ----------------------------------------------------------------- state

    @property
    def sm(self) -> ScreenManager:
        root: ScreenManager = self.root
        return root

    def _load_kv(self, name: str) -> None:
        if name in self._kv_loaded:
            return
        path = str(KV_DIR / f"{name}.kv")
        Builder.unload_file(path)  # a process may run the app more than once (tests)
        Builder.load_file(path)
        self._kv_loaded.add(name)

    def screen(self, name: str) -> Any:
        """The screen called ``name``, built the first time it is needed."""
        if not self.sm.has_screen(name):
            cls = SCREENS[name]
            self._load_kv(cls.kv)
            self.sm.add_widget(cls(name=name))
        return self.sm.get_screen(name)

    def show_screen(self, name: str) -> None:
        """Make ``name`` the current screen."""
        self.screen(name)
        self.sm.current = name

    def _on_snapshot(self, snapshot: QueueSnapshot) -> None:
        self._refresh_trigger()

    def _on_calls(self, announce: list[Call]) -> None:
        """The relay's calls changed: show them; flash and announce the new ones.
        Only today's calls are shown (yesterday's leave the screen at midnight)."""
        home = self.screen("home")
        self._calls_day = time.strftime("%Y-%m-%d")
        calls = todays(self.core.calls)
        if self.mode == "display":
            home.show_calls(calls, self.core.calls_connected, self.settings.calls_keep)
        elif "strip" in home.ids:
            home.ids.strip.show_calls(calls, self.core.calls_connected)
        if announce:
            (home if self.mode == "display" else home.ids.get("strip", home)).new_call()
        for call in announce:
            log.info("call: %s to %s", call.ticket_id, call.poc)
            if self.announcer is not None:
                self.announcer.announce(call)

    def refresh(self) -> None:
        """Redraw the queue cards and the out-of-service state from the monitor."""
        if self.mode == "display":  # no queues on a calling screen
            return
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
        # the printer's set-up, and the screens a tap leads to, so that the first tap
        # waits for none of them; spread out, so that no frame waits long either
        self._events.append(Clock.schedule_once(lambda dt: self.core.warm_up(), 0.5))
        for i, name in enumerate(("ticket", "noagents", "message", "outofservice", "form")):
            self._events.append(Clock.schedule_once(
                lambda dt, n=name: self.screen(n), 0.2 + 0.1 * i))

    def set_language(self, lang: str) -> None:
        self.lang = lang
        self.refresh()

    def toggle_large_text(self) -> None:
        self.scale = 1.3 if self.scale == 1.0 else 1.0

    def go_home(self, reset: bool = False) -> None:
        if self._return_ev is not None:
            self._return_ev.cancel()
            self._return_ev = None
        if self.sm.has_screen("form"):  # what a customer typed never outlives the form
            self.sm.get_screen("form").wipe()
        if reset:
            self.lang = self.settings.language
            self.scale = 1.0
            self.screen("home").clear()
        self.show_screen("home")
        self.refresh()

    def _tick(self, dt: float) -> None:
        self.clock_text = time.strftime("%H:%M")
        if self.settings.calls and self._calls_day != time.strftime("%Y-%m-%d"):
            self._on_calls([])  # midnight: yesterday's calls leave the screen
        idle = time.monotonic() - self.last_activity
        at_home_default = (self.sm.current == "home" and self.lang ==
                           self.settings.language and self.scale == 1.0)
        if idle >= self.settings.idle_timeout_s and not at_home_default \
                and self.sm.current not in ("outofservice",):
            log.info("idle for %.0f s: back home", idle)
            self.go_home(reset=True)
        if self.sm.current == "home":
            self._show_ages()

    def _show_ages(self) -> None:
        """Each card says how old its data is once it is stale; the banner says only
        "Connecting…", while there are no cards to say it."""
        home = self.screen("home")
        snap = self.core.snapshot
        home.stale = freshness_text(snap, self.settings.refresh_s, self.lang) \
            if snap.fetched_at is None else ""
        if isinstance(home, QueueScreen):  # (the calling screen has no queue cards)
            home.show_ages(self.core.views(self.lang), self.lang, self.settings.refresh_s,
                           time.monotonic() - self.core.views_at)

    # ----------------------------------------------------------------- issuing

    def issue(self, queue_id: str) -> None:
        """A tap on a queue: show progress at once, ask the core, show the answer."""
        if self.busy_queue:
            return
        if open_form(self, queue_id):  # a few details first: no number is taken yet
            return
        self.timings["tap"] = time.perf_counter()
        self.busy_queue = queue_id
        if self.sm.current != "home":
            self.go_home()
        else:
            self.screen("home").show(self.core.views(self.lang), self.lang,
                                     busy_id=queue_id)
        self._spawn(self._issue(queue_id))

    async def _issue(self, queue_id: str) -> None:
        data = None
        if self.mode == "tablet":
            customer = self.screen("home").customer()
            data = {"customer": customer} if customer else None
        try:
            result = await self.core.issue(queue_id, language=self.lang,
                                           integration_data=data)
        except CoreTimeout:  # the core may have issued it: the customer asks staff
            self.busy_queue = ""
            self.tap_timed_out()
            return
        except Exception:  # never crash in front of a customer
            log.exception("issuing a ticket failed")
            self.busy_queue = ""
            self.show_out_of_service()
            return
        self.busy_queue = ""
        if result.outcome is Outcome.FORM_REQUIRED and await open_after_428(self, result):
            self.refresh()
            return
        self.result = result
        self.show_result(result)
        if result.printing is not None:
            try:
                async with asyncio.timeout(self.settings.print_deadline_s):
                    printed, _ = await asyncio.shield(result.printing)
            except TimeoutError:
                log.error("ticket %s: no word from the printer within %.0f s", result.ticket_id,
                          self.settings.print_deadline_s)
                result.printing.add_done_callback(lambda f: f.cancelled() or f.exception())
                printed = False
            if self.result is result and self.sm.current == "ticket":
                self._show_printed(result, printed)

    def tap_timed_out(self) -> None:
        """The core did not answer a tap in time: whether a number was given is unknown,
        so the customer asks staff (who see it in the journal) rather than tap again."""
        self._message(t("Please ask our staff", self.lang),
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
            self._message(t("Please ask our staff", self.lang), r.message)
        elif r.outcome is Outcome.UNAUTHORIZED:  # no tap can work until staff fix the key
            self.show_out_of_service()
        else:  # this tap failed; the next one may work: say so, and check the API now
            title = {Outcome.FORM_REQUIRED: t("A few details first", self.lang),
                     Outcome.REJECTED: t("Please try again", self.lang)}.get(
                r.outcome, t("We're sorry", self.lang))
            self._message(title, r.message)
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
        if r.printing is None and r.printed is None:  # nothing to print (greeter tablet)
            s.printed = None
            s.message = t("Please show this number or scan the code.", self.lang)
        else:
            s.printed = None
            s.message = t("Printing your ticket…", self.lang)
        self.show_screen("ticket")
        self.timings["ticket_on_screen"] = time.perf_counter()
        self._schedule_return(TICKET_SECONDS)

    def _show_printed(self, r: IssueResult, printed: bool) -> None:
        s: TicketScreen = self.screen("ticket")
        s.printed = printed
        if printed:
            s.message = t("Please take your ticket below.", self.lang)
        else:
            s.message = customer_message(Outcome.ISSUED, self.lang, ticket=r.ticket_id,
                                         printed=False)
            self._schedule_return(TICKET_UNPRINTED_SECONDS)

    def _schedule_return(self, seconds: float) -> None:
        if self._return_ev is not None:
            self._return_ev.cancel()
        self._return_ev = Clock.schedule_once(lambda dt: self.go_home(), seconds)

    def _message(self, title: str, message: str, can_go_back: bool = True) -> None:
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

    # ----------------------------------------------------------------- admin

    def open_admin(self) -> None:
        if not self.settings.admin:
            log.warning("admin screen requested, but ui.admin_pin_hash is not set")
            return
        self.screen("pin").note = ""
        self.show_screen("pin")

    def check_pin(self, pin: str) -> None:
        """The core checks the PIN against its hash (the hash never leaves the core)."""
        self._spawn(self._check_pin(pin))

    async def _check_pin(self, pin: str) -> None:
        try:
            ok, locked_s = await self.core.check_pin(pin)
        except Exception:
            log.exception("the PIN could not be checked")
            ok, locked_s = False, 0.0
        if ok:
            self.show_screen("admin")
            self.admin_action("refresh")
        elif locked_s > 0:  # the core counts wrong PINs; it says how long to wait
            self.screen("pin").note = f"Too many wrong PINs: wait {locked_s:.0f} s"
        else:
            self.screen("pin").note = "Wrong PIN"

    def admin_action(self, name: str) -> None:
        self._spawn(self._admin_action(name))

    async def _admin_action(self, name: str) -> None:
        s: AdminScreen = self.screen("admin")
        if name == "exit":
            log.info("kiosk exited from the admin screen")
            self.stop()
            return
        try:
            s.note, s.info = await self.core.admin(name, self.lang)
        except Exception as exc:
            log.exception("admin action %s failed", name)
            s.note = f"Failed: {exc}"
        if name == "reload":
            self.refresh()

    # ----------------------------------------------------------------- input

    def _on_touch_down(self, window: Any, touch: Any) -> bool:
        self.last_activity = time.monotonic()
        corner = mm(18)
        if touch.x < corner and touch.y > window.height - corner:
            self._hold_ev = Clock.schedule_once(lambda dt: self.open_admin(),
                                                ADMIN_HOLD_SECONDS)
        return False

    def _on_touch_up(self, window: Any, touch: Any) -> bool:
        if self._hold_ev is not None:
            self._hold_ev.cancel()
            self._hold_ev = None
        return False

    def _on_request_close(self, *args: Any, **kw: Any) -> bool:
        if self.mode in ("kiosk", "display") and self.sm.current != "admin":
            log.info("close request ignored: only the admin screen exits the kiosk")
            return True  # veto
        return False

    def _screen_changed(self) -> None:
        if self._ring is not None:
            self._ring.move_to(None)
        if self.sm.current != "admin" and self._on_admin:  # staff left: the core closes
            self.core.admin_close()                        # their session
        self._on_admin = self.sm.current == "admin"

    def focus_items(self) -> list[Widget]:
        screen: KioskScreen = self.sm.current_screen
        return [w for w in screen.focusables() if not w.disabled and w.opacity > 0]

    def _on_key_down(self, window: Any, key: int, scancode: int, codepoint: str | None,
                     modifiers: list[str]) -> bool:
        self.last_activity = time.monotonic()
        screen: KioskScreen = self.sm.current_screen
        ring = self._ring
        assert ring is not None
        typing = getattr(ring.widget, "focus", False)  # a TextInput being typed into
        if key == K_ESCAPE:
            screen.back()
            return True  # never exits
        handle_key = getattr(screen, "handle_key", None)  # a screen's own keys (the form)
        if handle_key is not None and handle_key(key, codepoint, modifiers):
            return True
        if typing and key not in (K_TAB, K_UP, K_DOWN, K_ENTER, K_KP_ENTER):
            return False
        items = self.focus_items()
        if not items:
            return True  # nothing to reach: every key is swallowed
        current = items.index(ring.widget) if ring.widget in items else -1
        step = 0
        if key == K_TAB:
            step = -1 if "shift" in modifiers else 1
        elif key in (K_DOWN, K_RIGHT):
            step = 1
        elif key in (K_UP, K_LEFT):
            step = -1
        elif key in (K_ENTER, K_KP_ENTER, K_SPACE) and current >= 0:
            target = items[current]
            if isinstance(target, Focusable):
                target.activate()
            return True
        if step:
            nxt = items[(current + step) % len(items)] if current >= 0 else items[0]
            self._focus(nxt)
        return True  # a key the kiosk does not use does nothing (F1, F12, Alt+F4...)

    def _focus(self, widget: Widget) -> None:
        assert self._ring is not None
        prev = self._ring.widget
        if prev is not None and hasattr(prev, "focus"):
            prev.focus = False
        self._ring.move_to(widget)
        if hasattr(widget, "focus") and not isinstance(widget, Focusable):
            widget.focus = True  # a TextInput takes the keys
