"""Every error kiosk raises, in one tree.

Foreign errors (httpx, sockets, escpos, yaml, pydantic) are translated into these at the
edge that meets them, always ``raise Mapped(...) from exc``; nothing above that edge sees
a foreign exception.

::

    KioskError
    ├── ConfigError                 the config file (or key file) is unusable; start-up stops
    │   └── RelayConfigError        the same, for the relay's section (kiosk.relay.config)
    ├── NotOffered                  a ticket asked for what this kiosk does not offer (a
    │                               priority reason); nothing was sent
    ├── ApiError                    anything that went wrong talking to the Videsk API
    │   ├── RequestInvalid          we refused to send: the request breaks a documented limit
    │   ├── ApiStatusError          the API answered with an error status (has .status_code)
    │   │   ├── NotFound            400 carrying code 404, or 404: wrong branch or queue
    │   │   ├── BadRequest          400 for any other reason (e.g. an invalid form value)
    │   │   ├── Unauthorized        401: key missing, malformed, expired or badly signed
    │   │   ├── Forbidden           403: key lacks rights or was revoked
    │   │   ├── NoAgents            406: nobody in that queue can take a call now
    │   │   ├── FormRequired        428 (body code 426), or 426: the queue needs a form first
    │   │   ├── Unprocessable       422: the API asks us to try again
    │   │   ├── RateLimited         429: too many requests (has .retry_after seconds)
    │   │   ├── ServerError         5xx
    │   │   └── UnexpectedStatus    any other status the provider does not document
    │   ├── MalformedResponse       a success status whose body is not what the spec says
    │   │   └── AcceptedUnreadable  enqueue answered 201 but its body could not be read
    │   └── TransportError          no HTTP answer at all
    │       ├── ConnectFailed       the connection never opened (nothing was sent)
    │       ├── ApiTimeout          no answer in time (the request may have landed)
    │       └── ConnectionLost      the connection broke after the request was sent
    ├── HubError                    the branch's hub (the relay) refused, or gave no answer
    │   │                           (has .status: the HTTP status, None for no answer)
    │   └── HubDayMismatch          409: the hub numbers another day (has .day, the hub's)
    ├── StoreError                  a store (the journal, the relay's) cannot be read or written
    │   ├── ClockBehind             the clock says a day earlier than the journal has seen
    │   └── TicketNotFound          no issued ticket with that number (reprint)
    └── PrinterError                a ticket could not be printed (see kiosk.printing)
        ├── PrinterUnavailable      no printer configured, or it cannot be reached / opened
        ├── PrinterNotReady         the printer answered: paper out, cover open, offline
        └── PrintFailed             the job broke off mid-way: treat the ticket as unprinted
"""

from __future__ import annotations

from typing import Any


class KioskError(Exception):
    """Base of every error kiosk raises on purpose."""


# --------------------------------------------------------------------------- config


class ConfigError(KioskError):
    """The config is unusable: names the file, the key path and what was expected."""

    def __init__(self, file: str, key: str, expected: str) -> None:
        self.file = file
        self.key = key
        self.expected = expected
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {expected}")


class NotOffered(KioskError):
    """A ticket asked for what this kiosk does not offer (a priority reason not in its
    ``priority.reasons``, or priority where it is off); nothing was sent."""


# --------------------------------------------------------------------------- api


class ApiError(KioskError):
    """Anything that went wrong talking to the Videsk API."""


class RequestInvalid(ApiError):
    """We refused to send: the request breaks a documented limit (nothing was sent)."""


class ApiStatusError(ApiError):
    """The API answered with an error status."""

    def __init__(
        self,
        status_code: int,
        message: str = "",
        *,
        name: str | None = None,
        body_code: int | None = None,
        body: Any = None,
    ) -> None:
        self.status_code = status_code
        self.name = name
        self.body_code = body_code
        self.body = body
        self.api_message = message
        label = f" {name}" if name else ""
        super().__init__(f"HTTP {status_code}{label}: {message}" if message
                         else f"HTTP {status_code}{label}")


class NotFound(ApiStatusError):
    """400 carrying code 404, or 404: the branch or queue does not exist or is not linked."""


class BadRequest(ApiStatusError):
    """400 for any other reason (an invalid form value, a changed form, a wrong type)."""


class Unauthorized(ApiStatusError):
    """401: the API key is missing, malformed, expired or badly signed."""


class Forbidden(ApiStatusError):
    """403: the API key lacks the rights for this call, or was revoked."""


class NoAgents(ApiStatusError):
    """406: no agent in that queue can take a call right now."""


class FormRequired(ApiStatusError):
    """428 (body code 426), or 426: the queue requires a form submission first."""


class Unprocessable(ApiStatusError):
    """422: the API could not process the request and asks to try again."""


class RateLimited(ApiStatusError):
    """429: too many requests; ``retry_after`` is the server's wait in seconds, if given."""

    def __init__(self, status_code: int, message: str = "", *, retry_after: float | None = None,
                 **kw: Any) -> None:
        super().__init__(status_code, message, **kw)
        self.retry_after = retry_after


class ServerError(ApiStatusError):
    """5xx: the API or a proxy in front of it failed."""


class UnexpectedStatus(ApiStatusError):
    """A status the provider does not document and whose body names no known error."""


class MalformedResponse(ApiError):
    """A success status whose body is not what the spec says (HTML, empty, wrong shape)."""

    def __init__(self, message: str, *, status_code: int, snippet: str = "") -> None:
        self.status_code = status_code
        self.snippet = snippet
        super().__init__(f"HTTP {status_code}: {message}")


class AcceptedUnreadable(MalformedResponse):
    """Enqueue answered 201 but the body was unreadable: the ticket *is* in the queue."""


class TransportError(ApiError):
    """No HTTP answer at all."""


class ConnectFailed(TransportError):
    """The connection never opened, so nothing was sent: always safe to retry."""


class ApiTimeout(TransportError):
    """No answer in time. For a POST, the request may have landed: never retried."""


class ConnectionLost(TransportError):
    """The connection broke after the request was sent: it may have landed."""


# --------------------------------------------------------------------------- hub


class HubError(KioskError):
    """The branch's hub (docs/hub.md) refused a request (``status``: its HTTP status) or
    could not be reached (``status`` None); the message never holds the token."""

    def __init__(self, status: int | None, message: str) -> None:
        self.status = status
        super().__init__(f"hub: {message}" if status is None else
                         f"hub: HTTP {status}: {message}")


class HubDayMismatch(HubError):
    """409: the hub numbers another branch-local day (``day``) than the device asked for;
    a lease always belongs to one day."""

    def __init__(self, asked: str, day: str) -> None:
        self.asked = asked
        self.day = day
        super().__init__(409, f"the hub's day is {day}, not {asked}")


# --------------------------------------------------------------------------- store


class StoreError(KioskError):
    """A store cannot be read or written: the journal (SQLite), or the relay's (SQLite or
    Redis; answered 5xx, so the provider retries)."""


class ClockBehind(StoreError):
    """The clock's day is earlier than a day the journal has already numbered tickets on:
    numbering now could hand out a number twice, so nothing is issued."""

    def __init__(self, day: str, seen: str) -> None:
        self.day = day
        self.seen = seen
        super().__init__(f"the clock says {day} but the journal already has tickets of "
                         f"{seen}: issuing is stopped so that no number is used twice "
                         "(set the clock right)")


class TicketNotFound(StoreError):
    """No issued ticket with that number in the journal."""


# --------------------------------------------------------------------------- printing


class PrinterError(KioskError):
    """A ticket could not be printed."""


class PrinterUnavailable(PrinterError):
    """No printer is configured, or it cannot be reached or opened."""


class PrinterNotReady(PrinterError):
    """The printer answered but cannot print: paper out, cover open or offline."""


class PrintFailed(PrinterError):
    """The job broke off mid-way; the ticket counts as not printed."""
