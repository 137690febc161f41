"""Every customer text has a Spanish and a Portuguese translation, with the same fields."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from kiosk.i18n import LOCALE_DIR, format_wait, read_po, t

ROOT = Path(__file__).resolve().parent.parent / "kiosk"
# t("...") / app.tr("...") in Python and kv; adjacent string literals are joined first.
CALL = re.compile(r'(?:\bt|app\.tr|self\.tr)\(\s*((?:"(?:[^"\\]|\\.)*"\s*)+)', re.S)


def used_messages() -> set[str]:
    found: set[str] = set()
    for path in [*ROOT.rglob("*.py"), *ROOT.rglob("*.kv")]:
        text = path.read_text(encoding="utf-8")
        for m in CALL.finditer(text):
            found.add("".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))))
    from kiosk.view import messages
    found |= set(messages._MESSAGES.values()) | {messages.NOT_PRINTED, messages.UNCERTAIN}
    from kiosk.i18n import MONTHS
    found |= set(MONTHS)
    return {m for m in found if m and not m.isupper()}


def fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


@pytest.mark.parametrize("lang", ["es", "pt"])
def test_every_message_is_translated(lang: str) -> None:
    catalog = read_po(LOCALE_DIR / lang / "LC_MESSAGES" / "kiosk.po")
    missing = sorted(used_messages() - set(catalog))
    assert not missing, f"{lang}: {missing}"
    for msgid, msgstr in catalog.items():
        assert fields(msgid) == fields(msgstr), (lang, msgid)


def test_unknown_messages_fall_back_to_english() -> None:
    assert t("Something new", "es") == "Something new"
    assert t("Your number", "es") == "Su número"
    assert t("Your number", "pt") == "Sua senha"


@pytest.mark.parametrize(("minutes", "text"), [
    (0.2, "< 1 min"), (1.124, "~1 min"), (7.6, "~8 min"), (23, "~25 min"), (61, "~1 h"),
    (80, "~1 h 15 min"), (83, "~1 h 30 min"),
])
def test_waits_are_rounded_for_people(minutes: float, text: str) -> None:
    assert format_wait(minutes, "en") == text
