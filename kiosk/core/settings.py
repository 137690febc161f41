"""What the core derives from its config for others: the UI's settings (sent in the
hello) and the time limits of :mod:`kiosk.deadlines`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kiosk.deadlines import Deadlines
from kiosk.link.protocol import UiSettings

if TYPE_CHECKING:
    from kiosk.config import Config


def deadlines_of(config: Config) -> Deadlines:
    """The kiosk's time limits for ``config`` (see :mod:`kiosk.deadlines`)."""
    return Deadlines(timeout_s=config.api.timeout_s,
                     printer_timeout_s=config.printer.timeout_s)


def ui_settings(config: Config) -> UiSettings:
    """What the screen needs from ``config`` (nothing secret)."""
    ui = config.ui
    calls = config.calls
    d = deadlines_of(config)
    return UiSettings(
        kiosk_id=config.kiosk.id, mode=config.kiosk.mode, language=config.kiosk.language,
        fullscreen=ui.fullscreen, touchscreen=ui.touchscreen,
        idle_timeout_s=ui.idle_timeout_s, refresh_s=ui.refresh_s,
        brand_color=ui.brand_color, accent_color=ui.accent_color,
        admin=ui.admin_pin_hash is not None,
        calls=calls is not None and (ui.calls or config.kiosk.mode == "display"),
        calls_keep=calls.keep if calls else 6,
        chime=calls.chime if calls else False,
        speech=calls.speech if calls else False,
        voices={str(k): v for k, v in calls.voices.items()} if calls else {},
        tap_deadline_s=d.ui_tap_s, print_deadline_s=d.ui_print_s, stop_wait_s=d.stop_wait_s,
        priority=config.priority.enabled and config.kiosk.mode != "display",
        priority_ask=config.priority.ask_reason,
        priority_reasons={r.id: {str(k): v for k, v in r.texts.items()}
                          for r in config.priority.reasons},
        reach=ui.reach,
        audio=ui.audio.enabled and config.kiosk.mode == "kiosk",
        audio_device=ui.audio.device, audio_volume=ui.audio.volume,
        audio_hold_s=ui.audio.hold_s,
        audio_voices={str(k): v for k, v in ui.audio.voices.items()},
        audio_keys={role: list(getattr(ui.audio.keys, role))
                    for role in type(ui.audio.keys).model_fields})
