"""The device's state (:class:`~kiosk.view.devicestate.DeviceState`) in the staff's
words: one row per concern (a level that picks a colour, a word, what to do about it),
the banner (in service or out, and why), and today's figures. In es, en or pt; never a
raw identifier (``paper_low``, ``not_queried``): each word of each concern has its text
here, and one this table does not know is "unknown", said so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from kiosk.i18n import t
from kiosk.view.devicestate import DeviceState

OK, WARNING, ERROR, OFF = "ok", "warning", "error", "off"
"""A row's level: it picks the row's colour; the word says the same for who cannot tell
colours apart."""


@dataclass(frozen=True)
class Row:
    """One concern's line on the staff screen."""

    concern: str
    title: str
    level: str
    word: str
    advice: str = ""
    """What to do about it ("" when nothing is to be done)."""
    detail: str = ""
    """The technical detail, for IT ("" when there is none)."""


# (level, word, advice) by concern, then by the state's word; English ids (kiosk.i18n)
_WORDS: dict[str, dict[str, tuple[str, str, str]]] = {
    "api": {
        "ok": (OK, "Connected", ""),
        "unreachable": (ERROR, "No connection",
                        "Check the branch's internet connection. If it goes on, call IT."),
        "refused": (ERROR, "Access refused",
                    "Call IT: the kiosk's access key or branch is not accepted."),
    },
    "printer": {
        "ok": (OK, "Ready", ""),
        "paper_low": (WARNING, "Paper running low", "Change the paper roll soon."),
        "paper_out": (ERROR, "Out of paper", "Load paper."),
        "cover_open": (ERROR, "Cover open", "Close the printer's cover."),
        "offline": (ERROR, "Not responding",
                    "Check that the printer is on and its cable is connected."),
        "unknown": (WARNING, "State unknown",
                    "It does not say how it is: print a test ticket to check it."),
        "none": (OFF, "No printer", ""),
    },
    "clock": {
        "ok": (OK, "Correct", ""),
        "skewed": (WARNING, "Out of step",
                   "Call IT: the clock is wrong. Tickets use the queue system's time "
                   "meanwhile."),
        "wrong": (ERROR, "Wrong",
                  "Call IT: the clock is wrong. No ticket is issued until it is fixed."),
    },
    "journal": {
        "ok": (OK, "Saving", ""),
        "fault": (WARNING, "Not saving everything",
                  "Call IT: the record of tickets is not being saved."),
        "unavailable": (ERROR, "Not available",
                        "Call IT: the record of tickets cannot be opened. No ticket is "
                        "issued until it is fixed."),
    },
    "numbers": {
        "local": (OK, "From this kiosk", ""),
        "shared": (OK, "Shared with the branch", ""),
        "offline": (WARNING, "Numbered here for now",
                    "The central service is away: numbers come from this kiosk until it "
                    "is back. Nothing to do."),
    },
    "hub": {
        "ok": (OK, "Connected", ""),
        "unreachable": (WARNING, "No connection",
                        "The central office cannot see this device. If it goes on, call "
                        "IT."),
        "refused": (WARNING, "Access refused",
                    "Call IT: the central office does not accept this device's token."),
        "waiting": (OFF, "Connecting…", ""),
        "none": (OFF, "Not set up", ""),
    },
}
_TITLES = {"api": "Queue system (Videsk)", "printer": "Printer", "clock": "Clock",
           "journal": "Ticket record", "numbers": "Numbering", "hub": "Central monitoring"}
_UNKNOWN = (WARNING, "State unknown", "")

_OUTCOMES = {"issued": "Tickets issued", "unprinted": "Issued without paper",
             "no_agents": "No agent available", "form_required": "Form needed first",
             "not_found": "Queue not found", "unauthorized": "Access refused",
             "rejected": "Refused by the queue system",
             "unavailable": "No answer from the queue system",
             "uncertain": "To check: may be in the queue",
             "unknown": "Interrupted: to check"}


def rows(state: DeviceState, lang: str) -> list[Row]:
    """One row per concern this device has (a calling screen has no API, printer or
    journal)."""
    out = []
    for concern, words in _WORDS.items():
        value = getattr(state, concern)
        if state.role == "display" and concern in ("api", "journal", "printer", "numbers"):
            continue  # a calling screen has none of these
        level, word, advice = words.get(value, _UNKNOWN)
        out.append(Row(concern, t(_TITLES[concern], lang), level, t(word, lang),
                       t(advice, lang) if advice else "",
                       state.details.get(concern, "")))
    return out


def banner(state: DeviceState, lang: str) -> tuple[str, str]:
    """(level, text): in service, in service with warnings, or out and why."""
    if not state.in_service:
        assert state.reason is not None
        row = next(r for r in rows(state, lang) if r.concern == state.reason)
        return ERROR, t("Out of service: {what}", lang, what=f"{row.title}, {row.word}")
    if any(r.level == WARNING for r in rows(state, lang)):
        return WARNING, t("In service, with warnings", lang)
    return OK, t("In service", lang)


def level_word(level: str, lang: str) -> str:
    """The level as a word, beside its colour."""
    return t({OK: "OK", WARNING: "Warning", ERROR: "Fault"}.get(level, "Not in use"), lang)


def today(state: DeviceState, lang: str, reasons: dict[str, dict[str, str]] | None = None,
          now: datetime | None = None) -> list[tuple[str, str]]:
    """Today's figures, as (label, value): tickets by outcome, priority by reason, forms,
    calls and the median time from ticket to call, the last ticket, the time running.
    ``reasons``: the priority reasons' texts by id and language (the UI's settings)."""
    if state.role == "display":
        return [(t("Running for", lang), duration(state.uptime_s, lang))]
    out = [(t("Tickets issued", lang), str(state.tickets_today))]
    for outcome, n in sorted(state.tickets.items()):
        if outcome != "issued" and n:
            out.append((t(_OUTCOMES.get(outcome, "Other"), lang), str(n)))
    for reason, n in sorted(state.priority_today.items()):
        text = (reasons or {}).get(reason, {}).get(lang) if reason else ""
        if reason and not text:  # a reason no longer offered: never its id
            text = t("another reason", lang)
        label = t("Priority service", lang)
        out.append((f"{label}: {text}" if text else label, str(n)))
    if state.forms_sent or state.forms_refused:
        out.append((t("Forms sent", lang), str(state.forms_sent)))
        out.append((t("Forms sent back to the customer", lang), str(state.forms_refused)))
    out.append((t("Called", lang), str(state.called_today)))
    median = state.call_wait_median_s
    out.append((t("Median time from ticket to call", lang),
                duration(median, lang) if median is not None else "—"))
    if state.last_ticket_at:
        at = datetime.fromisoformat(state.last_ticket_at)
        ago = ((now or datetime.now(UTC)) - at).total_seconds()
        out.append((t("Last ticket", lang), t("{time} ago", lang, time=duration(ago, lang))))
    out.append((t("Running for", lang), duration(state.uptime_s, lang)))
    return out


def duration(seconds: float, lang: str) -> str:
    """"45 s", "4.5 min", "2 h 05 min", "3 d 4 h" (a median, an age, an uptime)."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return t("{n} s", lang, n=int(seconds))
    if seconds < 600:
        return t("{n} min", lang, n=f"{seconds / 60:.1f}".replace(
            ".", "," if lang != "en" else "."))
    minutes = int(seconds // 60)
    if minutes < 60:
        return t("{n} min", lang, n=minutes)
    hours, mins = divmod(minutes, 60)
    if hours < 24:
        return t("{h} h {m} min", lang, h=hours, m=f"{mins:02d}")
    days, hours = divmod(hours, 24)
    return t("{d} d {h} h", lang, d=days, h=hours)

