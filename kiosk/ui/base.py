"""What every lobby screen's app shares: :class:`LobbyApp`.

The theme and its colours, the language and large text, the clock, screens built on first
use, the idle reset, the keyboard and keypad (a visible focus ring, Tab and the arrows,
Enter and Space), the lockdown (every unused key swallowed, the window's close refused,
no settings panel), and the staff screen (hold the top-left corner, the PIN checked by the
core). The kiosk and greeter (:class:`kiosk.ui.app.KioskApp`) and the calling screen
(:class:`kiosk.ui.display.CallingApp`) add their home screen and what it shows.

The app runs on the UI process's asyncio loop (``App.async_run``): a tap starts a task
that awaits the core over the link (:class:`~kiosk.link.client.RemoteCore`), so no frame
waits for the network, the journal or the printer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, ClassVar

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.lang import Builder
from kivy.metrics import mm
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.screenmanager import NoTransition, ScreenManager
from kivy.uix.widget import Widget

from kiosk.i18n import t
from kiosk.link.client import RemoteCore
from kiosk.link.protocol import UiSettings
from kiosk.ui.drawing import Screens
from kiosk.ui.screens import AdminScreen, KioskScreen, PinScreen
from kiosk.ui.theme import Theme, register_fonts, rgba
from kiosk.ui.widgets import Focusable, FocusRing
from kiosk.view.calling import Call

log = logging.getLogger(__name__)

KV_DIR = Path(__file__).resolve().parent / "kv"
ADMIN_HOLD_SECONDS = 2.0

# Kivy key codes
K_TAB, K_ENTER, K_KP_ENTER, K_SPACE, K_ESCAPE = 9, 13, 271, 32, 27
K_UP, K_DOWN, K_RIGHT, K_LEFT, K_BACKSPACE = 273, 274, 275, 276, 8


class LobbyApp(App):
    """The base of the lobby's apps (see the module's docstring)."""

    lang = StringProperty("es")
    scale = NumericProperty(1.0)
    high_contrast = BooleanProperty(False)
    """The high-contrast theme (one tap from home; until the idle reset)."""
    low_reach = BooleanProperty(False)
    """``ui.reach: low``: every control in the lower part of the screen."""
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
    c_focus = ListProperty()
    c_outline = ListProperty()
    """Borders of buttons and cards (see-through, except in high contrast)."""
    c_badge = ListProperty()
    c_on_badge = ListProperty()
    c_priority = ListProperty()
    c_on_priority = ListProperty()

    SCREENS: ClassVar[dict[str, type[KioskScreen]]] = {"pin": PinScreen, "admin": AdminScreen}
    """The screens besides home, built the first time they are shown."""
    LOCKED = True
    """Only the staff screen's Exit ends the app (the window's close is refused)."""

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
        self.use_theme(self.theme)
        self.low_reach = s.reach == "low" and mode != "tablet"
        self.lang = s.language
        self.last_activity = time.monotonic()
        self.timings: dict[str, float] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self._ring: FocusRing | None = None
        self._return_ev: Any = None
        self._hold_ev: Any = None
        self._stopped = False
        self._on_admin = False
        self._kv_loaded: set[str] = set()
        self._root: ScreenManager | None = None
        self._events: list[Any] = []  # Clock events to cancel at stop (the Clock outlives us)
        self._calls_day = ""

    def use_theme(self, th: Theme) -> None:
        """Colour every screen with ``th`` (the kv rules follow the app's colours)."""
        self.c_brand, self.c_on_brand = rgba(th.brand), rgba(th.on_brand)
        self.c_brand_light = th.lighter()
        self.c_card, self.c_on_card = rgba(th.card), rgba(th.on_card)
        self.c_muted_card, self.c_on_muted = rgba(th.muted_card), rgba(th.on_muted)
        self.c_accent, self.c_on_accent = rgba(th.accent), rgba(th.on_accent)
        self.c_warn, self.c_on_warn = rgba(th.warn), rgba(th.on_warn)
        self.c_pressed, self.c_focus = rgba(th.pressed), rgba(th.focus)
        self.c_outline = rgba(th.outline) if th.outline else [0.0, 0.0, 0.0, 0.0]
        self.c_badge, self.c_on_badge = rgba(th.badge), rgba(th.on_badge)
        self.c_priority, self.c_on_priority = rgba(th.priority), rgba(th.on_priority)
        ring = getattr(self, "_ring", None)  # None while the app is being made
        if ring is not None:
            ring.set_colour(self.c_focus)
        if self.root is not None:
            Window.clearcolor = self.c_brand

    def toggle_contrast(self) -> None:
        """The high-contrast theme on or off (off again at the idle reset)."""
        self.high_contrast = not self.high_contrast
        self.use_theme(Theme.high_contrast() if self.high_contrast else self.theme)

    # ----------------------------------------------------------------- what subclasses add

    def home_class(self) -> type[KioskScreen]:
        """The home screen's class."""
        raise NotImplementedError

    def show_calls(self, calls: list[Call], announce: list[Call]) -> None:
        """Show the relay's calls (today's, newest first); ``announce``: the new ones."""

    def started(self) -> None:
        """The window is up (subclasses subscribe to what they show)."""

    def stopped(self) -> None:
        """The app is stopping (subclasses let go of what they hold)."""

    def ticked(self) -> None:
        """Once a second."""

    def refresh(self) -> None:
        """Show the core's state again."""

    def key_hook(self, key: int, down: bool) -> bool:
        """A key pressed (``down``) or released, before the app's own keys: True when a
        subclass took it (audio guidance's keys)."""
        return False

    def focus_moved(self, widget: Widget) -> None:
        """The keyboard's focus moved to ``widget``."""

    def screen_shown(self) -> None:
        """Another screen is now shown."""

    def at_rest(self) -> bool:
        """Nothing to reset on the idle timer: home, in the default language, size and
        colours."""
        return bool(self.sm.current == "home" and self.lang == self.settings.language
                    and self.scale == 1.0 and not self.high_contrast)

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
        self._load_kv("widgets")
        self._load_kv("calling")  # the display's screen, and the home's "now calling" strip
        home_cls = self.home_class()
        self._load_kv(home_cls.kv)
        sm = Screens(transition=NoTransition())  # unclipped: kiosk/ui/drawing.py says why
        sm.add_widget(self._made(home_cls))
        sm.bind(current=lambda *_: self._screen_changed())
        self._ring = FocusRing(self.c_focus)
        self._root = sm

    def build(self) -> Widget:
        self.preload()
        assert self._root is not None
        return self._root

    def on_start(self) -> None:
        # The brand colour is every screen's background through the window's clear
        # colour: a full-window rectangle per screen would fill every pixel twice per frame.
        Window.clearcolor = self.c_brand
        Window.bind(on_key_down=self._on_key_down, on_key_up=self._on_key_up,
                    on_request_close=self._on_request_close)
        # Bound after Kivy's own (the settings panel on F1): every key that reaches
        # on_keyboard stops here.
        Window.bind(on_keyboard=self._swallow_key)
        Window.bind(on_touch_down=self._on_touch_down, on_touch_up=self._on_touch_up)
        if self.fullscreen:
            Window.show_cursor = False
        self.started()
        if self.settings.calls:
            self.core.subscribe_calls(self._on_calls)
            self._on_calls([])
        self.spawn(self._load_branch())
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
        self.core.unsubscribe_calls(self._on_calls)
        self.stopped()
        Window.unbind(on_keyboard=self._swallow_key)
        Window.unbind(on_key_down=self._on_key_down, on_key_up=self._on_key_up,
                      on_request_close=self._on_request_close)
        for ev in (*self._events, self._return_ev, self._hold_ev):
            if ev is not None:
                ev.cancel()
        for task in self.tasks:
            task.cancel()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run ``coro`` on the loop, cancelled when the app stops."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _load_branch(self) -> None:
        self.branch = await self.core.branch_label()

    # ----------------------------------------------------------------- screens

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
            cls = self.SCREENS[name]
            self._load_kv(cls.kv)
            self.sm.add_widget(self._made(cls, name))
        return self.sm.get_screen(name)

    def _made(self, cls: type[KioskScreen], name: str = "home") -> KioskScreen:
        """A screen, told the reach it lays out for."""
        return cls(name=name, low_reach=self.low_reach,
                   reach_line=getattr(self, "reach_line", 1.0))

    def show_screen(self, name: str) -> None:
        """Make ``name`` the current screen."""
        self.screen(name)
        self.sm.current = name

    def go_home(self, reset: bool = False) -> None:
        """Back to the home screen; ``reset``: the idle reset (default language and size)."""
        if self._return_ev is not None:
            self._return_ev.cancel()
            self._return_ev = None
        if reset:
            self.lang = self.settings.language
            self.scale = 1.0
            if self.high_contrast:
                self.toggle_contrast()
        self.show_screen("home")
        self.refresh()

    def schedule_return(self, seconds: float) -> None:
        """Back home after ``seconds`` (a ticket on screen)."""
        if self._return_ev is not None:
            self._return_ev.cancel()
        self._return_ev = Clock.schedule_once(lambda dt: self.go_home(), seconds)

    def _on_calls(self, announce: list[Call]) -> None:
        """The relay's calls changed: only today's are shown (yesterday's leave the
        screen at midnight)."""
        from kiosk.view.calling import todays
        self._calls_day = time.strftime("%Y-%m-%d")
        self.show_calls(todays(self.core.calls), announce)

    def _tick(self, dt: float) -> None:
        self.clock_text = time.strftime("%H:%M")
        if self.settings.calls and self._calls_day != time.strftime("%Y-%m-%d"):
            self._on_calls([])  # midnight: yesterday's calls leave the screen
        idle = time.monotonic() - self.last_activity
        if idle >= self.settings.idle_timeout_s and not self.at_rest() \
                and self.sm.current not in ("outofservice",):
            log.info("idle for %.0f s: back home", idle)
            self.go_home(reset=True)
        self.ticked()

    # ----------------------------------------------------------------- staff

    def open_admin(self) -> None:
        if not self.settings.admin:
            log.warning("admin screen requested, but ui.admin_pin_hash is not set")
            return
        self.screen("pin").note = ""
        self.show_screen("pin")

    def check_pin(self, pin: str) -> None:
        """The core checks the PIN against its hash (the hash never leaves the core)."""
        self.spawn(self._check_pin(pin))

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
            self.screen("pin").note = self.tr("Too many wrong PINs: wait {n} s", self.lang,
                                              n=f"{locked_s:.0f}")
        else:
            self.screen("pin").note = self.tr("Wrong PIN", self.lang)

    def admin_action(self, name: str) -> None:
        self.spawn(self._admin_action(name))

    async def _admin_action(self, name: str) -> None:
        s: AdminScreen = self.screen("admin")
        if name == "exit":
            log.info("kiosk exited from the admin screen")
            self.stop()
            return
        try:
            s.note, state = await self.core.admin(name, self.lang)
            s.show(state, self.lang, self.settings.kiosk_id, self.settings.priority_reasons)
        except Exception as exc:
            log.exception("admin action %s failed", name)
            s.note = self.tr("Not done: {error}", self.lang, error=exc)
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
        if self.LOCKED and self.sm.current != "admin":
            log.info("close request ignored: only the admin screen exits the kiosk")
            return True  # veto
        return False

    def _screen_changed(self) -> None:
        if self._ring is not None:
            self._ring.move_to(None)
        if self.sm.current != "admin" and self._on_admin:  # staff left: the core closes
            self.core.admin_close()                        # their session
        self._on_admin = self.sm.current == "admin"
        self.screen_shown()

    def focus_items(self) -> list[Widget]:
        screen: KioskScreen = self.sm.current_screen
        return [w for w in screen.focusables() if not w.disabled and w.opacity > 0]

    def _on_key_up(self, window: Any, key: int, *args: Any) -> bool:
        return self.key_hook(key, False)

    def _on_key_down(self, window: Any, key: int, scancode: int, codepoint: str | None,
                     modifiers: list[str]) -> bool:
        self.last_activity = time.monotonic()
        if self.key_hook(key, True):
            return True
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
        self.focus_moved(widget)
