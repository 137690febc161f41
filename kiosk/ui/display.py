"""The calling screen's app (``kiosk.mode: display``): :class:`CallingApp`.

A lobby TV: the latest call very large, the last calls beside it, flashed, chimed and said
aloud (:class:`~kiosk.ui.announcer.Announcer`: speech is synthesised on a worker, so no
frame waits for it). It asks the core for nothing but the calls; the staff screen and the
lockdown are every lobby app's (:class:`kiosk.ui.base.LobbyApp`).
"""

from __future__ import annotations

import logging
from typing import Any

from kiosk.ui.base import LobbyApp
from kiosk.ui.calling import CallingScreen, stop_flash
from kiosk.ui.screens import KioskScreen
from kiosk.view.calling import Call

log = logging.getLogger(__name__)


class CallingApp(LobbyApp):
    """The calling screen (see the module's docstring)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("mode", "display")
        super().__init__(*args, **kw)
        self.announcer: Any = None
        """Chime and speech for new calls (when the config asks for either)."""

    def home_class(self) -> type[KioskScreen]:
        return CallingScreen

    def started(self) -> None:
        s = self.settings
        if s.calls and (s.chime or s.speech):
            from kiosk.ui.announcer import Announcer  # sounds: a calling screen's only
            self.announcer = Announcer(default_lang=s.language, voices=s.voices,
                                       chime_on=s.chime, speech_on=s.speech)
            self.announcer.start()

    def stopped(self) -> None:
        if self.announcer is not None:
            self.announcer.close()
        if self._root is not None and self.sm.has_screen("home"):
            stop_flash(self.sm.get_screen("home"))  # animations outlive the app otherwise

    def show_calls(self, calls: list[Call], announce: list[Call]) -> None:
        home = self.screen("home")
        home.show_calls(calls, self.core.calls_connected, self.settings.calls_keep)
        if announce:
            home.new_call()
        for call in announce:
            log.info("call: %s to %s", call.ticket_id, call.poc)
            if self.announcer is not None:
                self.announcer.announce(call)
