"""Colours, fonts and sizes. Brand colours come from config; text contrast is checked
against WCAG's 4.5:1 so a brand colour cannot make text unreadable. The high-contrast
theme (:meth:`Theme.high_contrast`, one tap from home) reaches 7:1 for every text and
3:1 for the focus ring against what surrounds it (WCAG 1.4.6 and 1.4.11)."""

from __future__ import annotations

from dataclasses import dataclass

from kiosk.colours import contrast, rgb
from kiosk.resources import asset


def rgba(hex_colour: str, alpha: float = 1.0) -> list[float]:
    """A Kivy colour."""
    return [*rgb(hex_colour), alpha]


@dataclass(frozen=True)
class Theme:
    """The palette. Every text/background pair here is at least 4.5:1."""

    brand: str = "#0B2545"       # screen background
    on_brand: str = "#FFFFFF"
    card: str = "#FFFFFF"
    on_card: str = "#0B2545"
    muted_card: str = "#D9DEE6"  # a queue with no agent
    on_muted: str = "#37404F"
    accent: str = "#0B6E4F"      # primary buttons
    on_accent: str = "#FFFFFF"
    warn: str = "#FFD166"        # stale-data banner, printer problems
    on_warn: str = "#1B1B1B"
    focus: str = "#FFB000"       # keyboard focus ring
    brand_light: str = ""        # secondary buttons, the steps ("": the brand, lighter)
    outline: str = ""            # a border around buttons and cards ("": none)
    pressed: str = "#B7C3D6"     # a card while pressed or while its ticket is asked for
    badge: str = "#DEF0E8"       # "a few details first" on a card
    on_badge: str = "#0B6E4F"
    priority: str = "#F2E7FE"    # "priority service": the home's button, the ticket's mark
    on_priority: str = "#4A148C"

    @classmethod
    def high_contrast(cls) -> Theme:
        """White, black and yellow: every text at least 7:1 (most 19:1 or more), a cyan
        focus ring 16.7:1 against the black around it, white borders on dark buttons."""
        return cls(brand="#000000", on_brand="#FFFFFF", card="#FFFFFF", on_card="#000000",
                   muted_card="#BFBFBF", on_muted="#000000", accent="#FFFF00",
                   on_accent="#000000", warn="#FFFF00", on_warn="#000000", focus="#00FFFF",
                   brand_light="#000000", outline="#FFFFFF", pressed="#A0A0A0",
                   badge="#000000", on_badge="#FFFFFF", priority="#FFFFFF",
                   on_priority="#000000")

    def pairs(self) -> list[tuple[str, str, str]]:
        return [("text on background", self.on_brand, self.brand),
                ("card text", self.on_card, self.card),
                ("dimmed card text", self.on_muted, self.muted_card),
                ("button text", self.on_accent, self.accent),
                ("banner text", self.on_warn, self.warn),
                ("pressed card text", self.on_card, self.pressed),
                ("badge text", self.on_badge, self.badge),
                ("priority text", self.on_priority, self.priority)]

    def check(self, minimum: float = 4.5) -> list[str]:
        """The pairs below ``minimum`` (4.5:1; the high-contrast theme: 7:1), described."""
        return [f"{name}: {contrast(fg, bg):.1f}:1" for name, fg, bg in self.pairs()
                if contrast(fg, bg) < minimum]

    def lighter(self) -> list[float]:
        """The secondary buttons' colour: ``brand_light``, else the brand a little lighter."""
        if self.brand_light:
            return rgba(self.brand_light)
        return [min(1.0, c + 0.12) for c in rgba(self.brand)[:3]] + [1.0]


LEVELS: dict[str, tuple[str, str]] = {
    "ok": ("#1E7B34", "#FFFFFF"),       # 5.3:1
    "warning": ("#FFD166", "#1B1B1B"),  # 12.6:1
    "error": ("#B3261E", "#FFFFFF"),    # 6.5:1
    "off": ("#5F6B7A", "#FFFFFF"),      # 5.4:1
}
"""The staff screen's colour per level (background, text): each row also says its level
in a word, so colour is never the only sign (WCAG 1.4.1)."""


def register_fonts() -> None:
    """Make the shipped DejaVu (full Latin coverage) Kivy's default font."""
    from kivy.core.text import DEFAULT_FONT, LabelBase
    LabelBase.register(DEFAULT_FONT, fn_regular=str(asset("fonts", "DejaVuSans.ttf")),
                       fn_bold=str(asset("fonts", "DejaVuSans-Bold.ttf")))
    LabelBase.register("KioskMono", fn_regular=str(asset("fonts", "DejaVuSansMono.ttf")),
                       fn_bold=str(asset("fonts", "DejaVuSansMono-Bold.ttf")))


def mix(a: list[float], b: list[float], amount: float) -> list[float]:
    """The colour ``amount`` (0..1) of the way from ``a`` to ``b`` (kv files blend with it)."""
    return [x + (y - x) * amount for x, y in zip(a, b, strict=False)]
