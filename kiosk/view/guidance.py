"""What audio guidance says: every screen, and the item in focus, in the customer's
language, built from the same data the screen shows (pure Python, tested without a
window). The UI speaks it (:mod:`kiosk.ui.guide`); espeak-ng synthesises it
(:mod:`kiosk.view.speech`).

Spoken, not shown: waits in words ("2 minutos", not "~2 min"), the ticket number letter by
letter and digit by digit, twice ("A, 0, 4, 2"), each item's place ("botón 1 de 4").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from kiosk.i18n import t
from kiosk.view.outcomes import QueueView
from kiosk.view.presentation import agents_text


def spoken_wait(minutes: float, lang: str) -> str:
    """A wait in words, rounded as the screen rounds it: "menos de un minuto", "3
    minutos", "25 minutos", "1 hora y 15 minutos"; empty for a wait that is no number."""
    if not math.isfinite(minutes) or minutes < 0:
        return ""
    if minutes < 1:
        return t("less than a minute", lang)
    n = round(minutes) if minutes < 10 else int(5 * round(minutes / 5))
    if n < 60:
        return t("1 minute", lang) if n == 1 else t("{n} minutes", lang, n=n)
    hours, rest = divmod(int(15 * round(minutes / 15)), 60)
    h = t("1 hour", lang) if hours == 1 else t("{n} hours", lang, n=hours)
    return h if rest == 0 else t("{hours} and {n} minutes", lang, hours=h, n=rest)


def spell(ticket_id: str) -> str:
    """A ticket number letter by letter and digit by digit, with a pause between each
    (``A-042`` → ``A, 0, 4, 2``): every character matters to the customer."""
    return ", ".join(ch.upper() for ch in ticket_id if ch.isalnum()) or ticket_id


def place(index: int, count: int, lang: str) -> str:
    """Where the item in focus is: "botón 2 de 7" (``index`` from 0)."""
    return t("button {i} of {n}", lang, i=index + 1, n=count)


def queue_item(view: QueueView, lang: str) -> str:
    """A queue card: "Atención a clientes, 3 ejecutivos disponibles, espera 2 minutos"."""
    parts = [view.name, agents_text(view, lang)]
    if view.users > 0 and (wait := spoken_wait(view.wait_minutes, lang)):
        parts.append(t("wait {wait}", lang, wait=wait))
    if view.needs_form:
        parts.append(t("a few details first", lang))
    return ", ".join(parts)


def item(text: str, index: int, count: int, lang: str) -> str:
    """The item in focus and where it is: "Atención a clientes, ..., botón 1 de 4"."""
    return f"{text}, {place(index, count, lang)}."


def home(welcome: str, views: Sequence[QueueView], lang: str, *, priority: bool) -> str:
    """The home screen: its welcome, how many services, the priority button."""
    text = f"{welcome} " + (t("There is 1 service.", lang) if len(views) == 1 else
                            t("There are {n} services.", lang, n=len(views)))
    if priority:
        text += " " + t("For priority service, choose Priority service.", lang)
    return text


def priority_reasons(count: int, lang: str) -> str:
    """The screen that asks why."""
    return t("Priority service. Please choose why you need it: {n} options.", lang,
             n=count)


def priority_queues(reason: str, lang: str) -> str:
    """The services as a priority customer sees them (``reason``: the reason's text, or
    "" where none is asked)."""
    head = t("Priority service", lang) + (f": {reason}." if reason else ".")
    return f"{head} {t('Choose a service to get your number.', lang)}"


def ticket(number: str, queue: str, wait_minutes: float | None, lang: str, *,
           priority: bool = False) -> str:
    """The ticket screen: the number twice, letter by letter and digit by digit, then the
    service and the wait."""
    spelled = spell(number)
    parts = [t("Your number is: {number}.", lang, number=spelled),
             t("Again: {number}.", lang, number=spelled)]
    if priority:
        parts.append(t("Priority service", lang) + ".")
    parts.append(f"{queue}.")
    if wait_minutes is not None and (wait := spoken_wait(wait_minutes, lang)):
        parts.append(t("Estimated wait: {wait}.", lang, wait=wait))
    return " ".join(parts)


def message(title: str, text: str) -> str:
    """A screen with a title and a message (no agents, please try again, out of
    service...)."""
    title = title.strip()
    if title and title[-1] not in ".!?":
        title += "."
    return f"{title} {text}".strip()


def form(queue: str, fields: int, lang: str) -> str:
    """The form screen."""
    return f"{queue}. " + t("A few details first, then your number.", lang) + " " + (
        t("1 field.", lang) if fields == 1 else t("{n} fields.", lang, n=fields))


def volume(level: float, lang: str) -> str:
    """The volume, said after a change: "Volumen 7 de 10"."""
    return t("Volume {n} of 10", lang, n=max(1, min(10, round(level * 10))))


def key_name(code: int, lang: str) -> str:
    """A key as the customer finds it on the keypad, from its Kivy key code ("" for one
    we cannot name)."""
    if 256 <= code <= 265:  # the keypad's digits
        return str(code - 256)
    if 48 <= code <= 57:
        return chr(code)
    words = {27: t("Escape", lang), 8: t("Backspace", lang), 13: t("Enter", lang),
             271: t("Enter", lang), 273: t("up arrow", lang), 274: t("down arrow", lang),
             267: t("slash", lang), 268: t("asterisk", lang), 269: t("minus", lang),
             270: t("plus", lang)}
    return words.get(code, "")


def _keys(codes: Sequence[int], lang: str) -> str:
    names = list(dict.fromkeys(n for c in codes if (n := key_name(c, lang))))
    if not names:
        return ""
    if len(names) == 1:
        return names[0]
    return t("{a} or {b}", lang, a=", ".join(names[:-1]), b=names[-1])


def started(keys: Mapping[str, Sequence[int]], lang: str) -> str:
    """What guidance says when it starts: that it is on, and which key does what (from
    the configured keys; the arrows and Enter work too)."""
    def named(*roles: str, extra: Sequence[int] = ()) -> str:
        return _keys([*(c for r in roles for c in keys.get(r, ())), *extra], lang)

    said = []
    if move := named("previous", "next", extra=(273, 274)):
        said.append(t("{keys} to move", lang, keys=move))
    if choose := named("hold_start", extra=(13,)):
        said.append(t("{keys} to choose", lang, keys=choose))
    if again := named("repeat"):
        said.append(t("{keys} to hear this again", lang, keys=again))
    if back := named("back"):
        said.append(t("{keys} to go back", lang, keys=back))
    if louder := named("volume_up", "volume_down"):
        said.append(t("{keys} for the volume", lang, keys=louder))
    text = t("Audio guidance is on.", lang)
    if said:
        text += " " + t("Press {keys}.", lang, keys="; ".join(said))
    return text


def sentences(text: str) -> str:
    """``text`` tidied for the synthesiser: one line, no double spaces or empty
    sentences."""
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"(\.\s*){2,}", ". ", text).strip()
