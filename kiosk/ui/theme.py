"""Colours, fonts and sizes. Brand colours come from config; text contrast is checked
against WCAG's 4.5:1 so a brand colour cannot make text unreadable."""

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

    def pairs(self) -> list[tuple[str, str, str]]:
        return [("text on background", self.on_brand, self.brand),
                ("card text", self.on_card, self.card),
                ("dimmed card text", self.on_muted, self.muted_card),
                ("button text", self.on_accent, self.accent),
                ("banner text", self.on_warn, self.warn)]

    def check(self) -> list[str]:
        """The pairs below 4.5:1, described."""
        return [f"{name}: {contrast(fg, bg):.1f}:1" for name, fg, bg in self.pairs()
                if contrast(fg, bg) < 4.5]


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
