"""Pure helpers that turn the core's state into what a screen shows (no Kivy here, so
they are tested without a window)."""

from __future__ import annotations

from typing import Any

from kiosk.errors import Forbidden, NotFound, Unauthorized
from kiosk.i18n import format_wait, t
from kiosk.view.outcomes import QueueSnapshot, QueueView


def qr_modules(text: str) -> list[list[bool]]:
    """The QR code for ``text`` as rows of dark (True) and light modules, no border."""
    import qrcode  # loaded by warm_up() before a first tap needs it, not at start-up
    from qrcode.constants import ERROR_CORRECT_M

    code = qrcode.QRCode(border=0, error_correction=ERROR_CORRECT_M)
    code.add_data(text)
    code.make(fit=True)
    return [[bool(m) for m in row] for row in code.get_matrix()]


def warm_up() -> None:
    """Load the QR encoder now (in the background), so the first ticket does not wait."""
    qr_modules("warm-up")


def agents_text(view: QueueView, lang: str) -> str:
    """"2 agents available" / "No agents right now"."""
    if view.users <= 0:
        return t("No agents right now", lang)
    if view.users == 1:
        return t("1 agent available", lang)
    return t("{n} agents available", lang, n=view.users)


def wait_text(view: QueueView, lang: str) -> str:
    """"Wait ~3 min" (empty when there is no agent: the wait means nothing then)."""
    if view.users <= 0:
        return ""
    return t("Wait {wait}", lang, wait=format_wait(view.wait_minutes, lang))


def out_of_service(snapshot: QueueSnapshot[Any]) -> bool:
    """Whether no tap can succeed now: the key is refused or the branch is wrong (a
    network failure only makes the cards stale; a tap may still work)."""
    return isinstance(snapshot.error, Unauthorized | Forbidden | NotFound)


def card_freshness(age_s: float | None, period_s: float, lang: str) -> str:
    """Empty while a card's data is fresh; else how old it is ("Updated 2 min ago"), shown
    on that card. Stale means older than three polls."""
    if age_s is None or age_s <= 3 * period_s:
        return ""
    if age_s < 60:
        return t("Updated {n} s ago", lang, n=int(age_s))
    return t("Updated {n} min ago", lang, n=int(age_s // 60))


def freshness_text(snapshot: QueueSnapshot[Any], period_s: float, lang: str,
                   now: float | None = None) -> str:
    """Empty while the data is fresh; else how old it is, for the cards' banner."""
    if not snapshot.is_stale(period_s, now):
        return ""
    age = snapshot.age(now)
    if age is None:
        return t("Connecting…", lang)
    minutes = int(age // 60)
    if minutes < 1:
        return t("Information may be out of date (updated {n} s ago)", lang, n=int(age))
    return t("Information may be out of date (updated {n} min ago)", lang, n=minutes)
