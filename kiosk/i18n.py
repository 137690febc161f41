"""Customer text in Spanish (default), English and Portuguese.

The catalogs are standard gettext ``.po`` files in ``kiosk/locale/<lang>/LC_MESSAGES/
kiosk.po`` (edit them with any PO editor). The message ids are the English text, so
English needs no catalog entry. They are read at first use by a small PO reader, so no
compile step (``msgfmt``) is needed on a kiosk. A message missing from a catalog falls back
to English, never to a blank.
"""

from __future__ import annotations

import ast
import gettext
import math
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES = ("es", "en", "pt")
DEFAULT_LANGUAGE = "es"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGE_NAMES = {"es": "Español", "en": "English", "pt": "Português"}


def read_po(path: Path) -> dict[str, str]:
    """The translated messages of a ``.po`` file (fuzzy and empty entries are skipped)."""
    out: dict[str, str] = {}
    msgid: list[str] = []
    msgstr: list[str] = []
    target: list[str] | None = None
    fuzzy = False

    def flush() -> None:
        nonlocal fuzzy
        key, value = "".join(msgid), "".join(msgstr)
        if key and value and not fuzzy:
            out[key] = value
        msgid.clear()
        msgstr.clear()
        fuzzy = False

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#,") and "fuzzy" in line:
            if msgstr:
                flush()
            fuzzy = True
        elif line.startswith("msgid "):
            if msgstr:
                flush()
            target = msgid
            target.append(ast.literal_eval(line[6:]))
        elif line.startswith("msgstr "):
            target = msgstr
            target.append(ast.literal_eval(line[7:]))
        elif line.startswith('"') and target is not None:
            target.append(ast.literal_eval(line))
        elif not line and msgstr:
            flush()
    if msgstr:
        flush()
    return out


class _PoTranslations(gettext.NullTranslations):
    def __init__(self, catalog: dict[str, str]) -> None:
        super().__init__()
        self._catalog = catalog

    def gettext(self, message: str) -> str:
        return self._catalog.get(message, message)


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalog for ``lang`` (English and unknown languages: the ids themselves)."""
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "kiosk.po"
    if lang == "en" or not po.is_file():
        return gettext.NullTranslations()
    return _PoTranslations(read_po(po))


def t(message: str, lang: str, /, **fields: Any) -> str:
    """``message`` in ``lang``, with ``{fields}`` filled in."""
    text = translations(lang).gettext(message)
    return text.format(**fields) if fields else text


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_datetime(moment: datetime, lang: str) -> str:
    """A date and time for people: "27 Nov 2026, 14:05" (months in ``lang``)."""
    month = t(MONTHS[moment.month - 1], lang)
    return f"{moment.day} {month} {moment.year}, {moment.hour:02d}:{moment.minute:02d}"


def wait_in_minutes(avg_waiting_time: float, unit: str) -> float:
    """The API's ``avgWaitingTime`` in minutes, given its configured unit."""
    return avg_waiting_time / 60.0 if unit == "seconds" else avg_waiting_time


def format_wait(minutes: float, lang: str) -> str:
    """A wait rounded for people: "< 1 min", "~3 min", "~25 min", "~1 h 15 min"; empty for
    a wait that is not a finite, non-negative number (the API's edge refuses those too)."""
    if not math.isfinite(minutes) or minutes < 0:
        return ""
    if minutes < 1:
        return t("< 1 min", lang)
    if minutes < 10:
        return t("~{n} min", lang, n=round(minutes))
    if minutes < 60:
        return t("~{n} min", lang, n=int(5 * round(minutes / 5)))
    quarter = int(15 * round(minutes / 15))
    hours, rest = divmod(quarter, 60)
    if rest == 0:
        return t("~{h} h", lang, h=hours)
    return t("~{h} h {n} min", lang, h=hours, n=rest)
