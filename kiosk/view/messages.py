"""The one table that turns an outcome into the words a customer reads.

Ids are English (gettext style); ``kiosk/locale/*/LC_MESSAGES/kiosk.po`` translate them.
Details for staff (HTTP statuses, the API's message) never appear here: they go to the
log, the journal and the admin screen.
"""

from __future__ import annotations

from kiosk.i18n import t
from kiosk.view.outcomes import Outcome

_MESSAGES: dict[Outcome, str] = {
    Outcome.ISSUED: "Your number is {ticket}. Please take your ticket and wait to be called.",
    Outcome.NO_AGENTS: "Nobody is free for {queue} right now. You can choose another service "
                       "or try again in a few minutes.",
    Outcome.FORM_REQUIRED: "{queue} needs a few details before we can give you a number. "
                           "Please ask our staff, they will help you.",
    Outcome.NOT_FOUND: "This kiosk is out of service for a moment. Please ask our staff for help.",
    Outcome.UNAUTHORIZED: "This kiosk is out of service for a moment. Please ask our staff "
                          "for help.",
    Outcome.REJECTED: "We could not give you a number just now. Please try again.",
    Outcome.UNAVAILABLE: "This kiosk is out of service for a moment. Please try again shortly "
                         "or ask our staff for help.",
}

NOT_PRINTED = ("Your number is {ticket}. We could not print it: please note it down or "
               "scan the code on the screen.")
UNCERTAIN = ("We could not confirm your number {ticket}. Please ask our staff before "
             "trying again.")


def customer_message(outcome: Outcome, lang: str, *, ticket: str = "", queue: str = "",
                     printed: bool | None = True, uncertain: bool = False) -> str:
    """What the customer reads for ``outcome``."""
    if outcome is Outcome.ISSUED and printed is False:
        return t(NOT_PRINTED, lang, ticket=ticket)
    if uncertain:
        return t(UNCERTAIN, lang, ticket=ticket)
    return t(_MESSAGES[outcome], lang, ticket=ticket, queue=queue)
