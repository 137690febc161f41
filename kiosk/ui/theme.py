"""Colours, fonts and sizes. Brand colours come from config; text contrast is checked
against WCAG's 4.5:1 so a brand colour cannot make text unreadable."""

from __future__ import annotations

from dataclasses import dataclass

from kiosk.resources import asset


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    h = hex_colour.lstrip("#")
    return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255)


def luminance(hex_colour: str) -> float:
    """Relative luminance (WCAG 2)."""
    def ch(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (ch(c) for c in _rgb(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def rgba(hex_colour: str, alpha: float = 1.0) -> list[float]:
    """A Kivy colour."""
    return [*_rgb(hex_colour), alpha]


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
