"""Calls as the calling screens show and announce them: "A-042 → Cabina 3".

A *call* is the relay's ``event: call``: Videsk gave ticket ``A-042`` to an agent in
booth (POC) "Cabina 3". This module is light on purpose (no httpx, pydantic or asyncio):
the core reads calls off the relay's stream (:mod:`kiosk.calls.feed`) and sends
them over the link as :func:`call_to_json`; the UI process reads them back with
:func:`call_from_json` and shows and speaks them with the helpers below.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from kiosk.i18n import LANGUAGES, t

TEXT_MAX = 60
"""Longest ticket number, booth or queue name kept from the relay (longer is cut)."""
ANNOUNCE_WINDOW_S = 120.0
"""A call older than this (by its ``at``) is listed but never chimed or spoken: a screen
that starts, or reconnects after a long gap, does not read out the whole morning."""


@dataclass(frozen=True, slots=True)
class Call:
    """One call: which ticket goes to which booth, and when."""

    event_id: str
    """The relay's SSE ``id:`` (increasing within a day)."""
    ticket_id: str
    """The ticket number as the kiosk printed it, e.g. ``A-042``."""
    poc: str
    """The booth's label, e.g. ``Cabina 3``."""
    queue: str
    """The queue's name (may be empty)."""
    at: str
    """When the relay received the call: ISO 8601, UTC."""
    lang: str
    """The ticket's language (es, en, pt) when the kiosk that issued it said so, else ""."""
    priority: str = ""
    """A priority ticket's reason id as the kiosk sent it (``"yes"`` when it asked none);
    "" for a regular ticket. The screen marks priority calls."""
    recall: bool = False
    """The same ticket was called before that day (a new call: another booth, or again):
    the relay's ``"recall": true``. Shown with a small "Re-call" mark."""

    def moment(self) -> datetime | None:
        """``at`` as an aware datetime (None if unreadable)."""
        try:
            moment = datetime.fromisoformat(self.at.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def is_recent(self, now: datetime, window_s: float = ANNOUNCE_WINDOW_S) -> bool:
        """Whether the call is recent enough to be announced."""
        moment = self.moment()
        return moment is not None and -window_s <= (now - moment).total_seconds() <= window_s


def _clean(value: Any) -> str:
    """A short single line of text: control characters dropped, spaces folded."""
    if not isinstance(value, str):
        return ""
    text = "".join(" " if unicodedata.category(ch)[0] in "CZ" and ch != " " else ch
                   for ch in value)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:TEXT_MAX]


def parse_call(event_id: str, data: str) -> Call | None:
    """A call from an SSE event's ``id`` and ``data`` (JSON); None if it is not one."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    ticket = _clean(body.get("ticketId"))
    poc = body.get("poc")
    queue = body.get("queue")
    label = _clean(poc.get("label")) if isinstance(poc, dict) else ""
    if not ticket or not label:
        return None
    lang = body.get("lang")
    return Call(event_id=_clean(event_id), ticket_id=ticket, poc=label,
                queue=_clean(queue.get("name")) if isinstance(queue, dict) else "",
                at=_clean(body.get("at")) or datetime.now(UTC).isoformat(timespec="seconds"),
                lang=lang if lang in LANGUAGES else "", priority=_priority(body.get("priority")),
                recall=body.get("recall") is True)


_REASON = re.compile(r"[a-z][a-z0-9_-]{0,23}")


def _priority(value: Any) -> str:
    """The call's ``priority`` (the kiosk's ``integrationData.priority``, passed through
    by the relay): a reason id, or ``true`` (read ``"yes"``); anything else is no mark."""
    if value is True:
        return "yes"
    return value if isinstance(value, str) and _REASON.fullmatch(value) else ""


def call_to_json(call: Call) -> dict[str, Any]:
    return asdict(call)


def call_from_json(data: dict[str, Any]) -> Call:
    fields: dict[str, Any] = {k: str(data.get(k, "")) for k in Call.__slots__ if k != "recall"}
    return Call(**fields, recall=data.get("recall") is True)


# --------------------------------------------------------------------------- words


def spell_ticket(ticket_id: str) -> str:
    """A ticket number the way it is read out: letters one by one, leading zeros one by
    one, then the number: ``A-042`` → ``A 0 42``, ``B-007`` → ``B 0 0 7``."""
    words: list[str] = []
    for part in re.findall(r"[A-Za-z]+|\d+", ticket_id):
        if part.isdigit():
            zeros = len(part) - len(part.lstrip("0"))
            rest = part[zeros:]
            words += ["0"] * (zeros if rest else max(zeros, 1))
            if rest:
                words.append(str(int(rest)))
        else:
            words += list(part.upper())
    return " ".join(words) or ticket_id


def speech_text(call: Call, lang: str) -> str:
    """What the screen says aloud: "Número A 0 42, Cabina 3." in ``lang``."""
    return t("Number {ticket}, {poc}.", lang,
             ticket=spell_ticket(call.ticket_id), poc=call.poc)


def announce_language(call: Call, default: str) -> str:
    """The ticket's language if known, else the screen's default."""
    return call.lang if call.lang in LANGUAGES else default


def local_time(call: Call) -> str:
    """The call's time as HH:MM on this machine's clock, like the screen's clock."""
    moment = call.moment()
    return "" if moment is None else moment.astimezone().strftime("%H:%M")


def todays(calls: list[Call], today: date | None = None) -> list[Call]:
    """The calls made today on this machine's clock (the screen's day, like its clock)."""
    day = today or datetime.now().astimezone().date()
    return [c for c in calls if (m := c.moment()) is not None and m.astimezone().date() == day]
