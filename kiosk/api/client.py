"""Async client of the Videsk QMS public API.

One :class:`QmsClient` per process. Every call goes through :meth:`QmsClient._call`, which is
the only place where httpx errors and HTTP statuses become :mod:`kiosk.errors`
(:func:`error_for_status` and :func:`_map_transport_error`).

Retries (see :class:`RetryPolicy`):

- GETs retry a connection that failed, a timeout, a dropped connection, 429 and 5xx, with
  capped, jittered exponential backoff (429 waits ``Retry-After``, capped).
- Enqueue is not idempotent. It is retried only where the first attempt is known not to
  have landed (the connection never opened) or the API said "try again" (422), always with
  the same ``ticketId``, at most ``enqueue_retries`` times; never after a timeout or a
  connection lost mid-request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import SecretStr, TypeAdapter, ValidationError

from kiosk import __version__
from kiosk.api.models import (
    Branch,
    EnqueueResult,
    Form,
    FormSubmission,
    FormType,
    FormVersion,
    Queue,
)
from kiosk.errors import (
    AcceptedUnreadable,
    ApiError,
    ApiStatusError,
    ApiTimeout,
    BadRequest,
    ConnectFailed,
    ConnectionLost,
    Forbidden,
    FormRequired,
    MalformedResponse,
    NoAgents,
    NotFound,
    RateLimited,
    RequestInvalid,
    ServerError,
    TransportError,
    Unauthorized,
    UnexpectedStatus,
    Unprocessable,
)

log = logging.getLogger(__name__)

API_PREFIX = "/public/video-contact-center"
TICKET_ID_MAX = 50
INTEGRATION_DATA_MAX_BYTES = 50_000
USER_AGENT = f"kiosk/{__version__} (Videsk QMS kiosk; python {platform.python_version()})"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before trying a request again."""

    get_retries: int = 2
    """Extra attempts for a GET after a retryable failure."""
    enqueue_retries: int = 2
    """Extra attempts for an enqueue after a 422 or a connection that never opened."""
    initial_delay_s: float = 0.2
    """Wait before the first retry; doubles each time."""
    max_delay_s: float = 3.0
    """No single wait is longer than this."""
    jitter: float = 0.25
    """Each wait is scaled by a random factor in [1 - jitter, 1 + jitter]."""
    max_retry_after_s: float = 10.0
    """A 429's ``Retry-After`` is honoured up to this many seconds."""

    def delay(self, attempt: int, error: ApiError, rand: float) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after_s)
        base = min(self.max_delay_s, self.initial_delay_s * 2.0 ** (attempt - 1))
        return max(0.0, base * (1 + self.jitter * (2 * rand - 1)))


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(get_retries=0, enqueue_retries=0)

_NAME_TO_ERROR: dict[str, type[ApiStatusError]] = {
    "NotFound": NotFound,
    "BadRequest": BadRequest,
    "NotAuthenticated": Unauthorized,
    "Forbidden": Forbidden,
    "NotAcceptable": NoAgents,
    "PreconditionRequired": FormRequired,
    "Unprocessable": Unprocessable,
    "TooManyRequests": RateLimited,
    "GeneralError": ServerError,
}

_STATUS_TO_ERROR: dict[int, type[ApiStatusError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    406: NoAgents,
    422: Unprocessable,
    426: FormRequired,
    428: FormRequired,
    429: RateLimited,
}


def _retry_after(headers: httpx.Headers | None) -> float | None:
    raw = headers.get("retry-after") if headers is not None else None
    if raw is None:
        return None
    try:
        return max(0.0, float(str(raw)))
    except ValueError:
        return None  # an HTTP date: treat as unknown, the policy's own backoff applies


def error_for_status(status: int, body: Any,
                     headers: httpx.Headers | None = None) -> ApiStatusError:
    """The typed error for an error answer: by HTTP status first, then by the body's name.

    The documented quirks: 400 carries ``code: 404`` (NotFound) for a wrong branch or
    queue, 428 carries ``code: 426``. Their likely twins (404 and 426) map the same way.
    """
    fields: dict[str, Any] = body if isinstance(body, dict) else {}
    name = fields["name"] if isinstance(fields.get("name"), str) else None
    message = fields["message"] if isinstance(fields.get("message"), str) else ""
    code = fields["code"] if isinstance(fields.get("code"), int) else None
    kw: dict[str, Any] = {"name": name, "body_code": code, "body": body}

    cls: type[ApiStatusError]
    if status == 400:
        by_name = _NAME_TO_ERROR.get(name or "")
        cls = by_name if by_name in (NotFound, Unprocessable) else BadRequest
    elif status in _STATUS_TO_ERROR:
        cls = _STATUS_TO_ERROR[status]
    elif 500 <= status <= 599:
        cls = ServerError
    else:
        cls = _NAME_TO_ERROR.get(name or "", UnexpectedStatus)
    if cls is RateLimited:
        return RateLimited(status, message, retry_after=_retry_after(headers), **kw)
    return cls(status, message, **kw)


def _map_transport_error(exc: httpx.TransportError) -> TransportError:
    """httpx's failures, sorted by whether the request may have reached the server."""
    detail = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                  | httpx.UnsupportedProtocol | httpx.ProxyError):
        return ConnectFailed(detail)
    if isinstance(exc, httpx.TimeoutException):
        return ApiTimeout(detail)
    return ConnectionLost(detail)


def _snippet(response: httpx.Response) -> str:
    text = response.content[:120].decode("utf-8", "replace")
    return " ".join(text.split())


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def check_enqueue(ticket_id: str, integration_data: Any) -> None:
    """Refuse locally what the API documents it will refuse (nothing is sent)."""
    if not isinstance(ticket_id, str) or not 1 <= len(ticket_id) <= TICKET_ID_MAX:
        raise RequestInvalid(f"ticketId must be 1 to {TICKET_ID_MAX} characters")
    if integration_data is not None:
        try:
            size = len(json.dumps(integration_data, ensure_ascii=False,
                                  separators=(",", ":")).encode())
        except (TypeError, ValueError) as exc:
            raise RequestInvalid(f"integrationData is not JSON-serialisable: {exc}") from exc
        if size > INTEGRATION_DATA_MAX_BYTES:
            raise RequestInvalid(
                f"integrationData is {size} bytes serialised; the API takes at most "
                f"{INTEGRATION_DATA_MAX_BYTES}")


class QmsClient:
    """The Videsk QMS API. Use ``async with QmsClient(...) as api:``."""

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | str,
        *,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._retry = retry
        self._sleep = sleep
        self._rand = rand
        self.server_date: tuple[datetime, float] | None = None
        """The API's last ``Date`` header and the monotonic time it came (a second opinion
        on the local clock: :mod:`kiosk.service.clock`)."""
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + API_PREFIX,
            headers={
                "Authorization": f"Bearer {key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            follow_redirects=False,
            event_hooks={"response": [self._note_date]},
        )

    def __repr__(self) -> str:
        return f"QmsClient(base_url={str(self._http.base_url)!r})"

    async def __aenter__(self) -> QmsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _note_date(self, response: httpx.Response) -> None:
        """Keep the answer's ``Date`` (any answer: the server's clock is what matters)."""
        if (date := _http_date(response.headers.get("date"))) is not None:
            self.server_date = (date, time.monotonic())

    # ----------------------------------------------------------------- endpoints

    async def list_branches(self) -> list[Branch]:
        """``GET /branches``: the account's branches."""
        return await self._get("/branches", _adapter(list[Branch]))

    async def list_queues(self, branch: str, *, retries: int | None = None) -> list[Queue]:
        """``GET /branches/:branch/queues``: the branch's queues with agents and wait.

        ``retries=0`` makes exactly one request (the queue monitor backs off on its own).
        """
        return await self._get(f"/branches/{_seg(branch)}/queues", _adapter(list[Queue]),
                               retries=retries)

    async def get_queue(self, branch: str, queue: str) -> Queue:
        """``GET /branches/:branch/queues/:queue``: one queue."""
        return await self._get(f"/branches/{_seg(branch)}/queues/{_seg(queue)}",
                               _adapter(Queue))

    async def get_form(self, segment: str, version: FormVersion = "base") -> Form:
        """``GET /forms/:segmentId?version=``: the queue's form."""
        return await self._get(f"/forms/{_seg(segment)}", _adapter(Form),
                               params={"version": version})

    async def enqueue(
        self,
        branch: str,
        queue: str,
        ticket_id: str,
        *,
        integration_data: Any = None,
        form: str | None = None,
    ) -> EnqueueResult:
        """``POST /branches/:branch/queues/:queue``: add ticket ``ticket_id`` to the queue.

        Raises :class:`~kiosk.errors.AcceptedUnreadable` when the API answered 2xx with a
        body that cannot be read: the ticket is in the queue nonetheless.
        """
        check_enqueue(ticket_id, integration_data)
        body: dict[str, Any] = {"ticketId": ticket_id}
        if integration_data is not None:
            body["integrationData"] = integration_data
        if form is not None:
            body["form"] = form
        response = await self._call(
            "POST", f"/branches/{_seg(branch)}/queues/{_seg(queue)}", json_body=body,
            retries=self._retry.enqueue_retries, retry_on=(ConnectFailed, Unprocessable))
        try:
            result: EnqueueResult = _parse(response, _adapter(EnqueueResult))
            return result
        except MalformedResponse as exc:
            raise AcceptedUnreadable(str(exc).split(": ", 1)[-1], status_code=exc.status_code,
                                     snippet=exc.snippet) from exc

    async def submit_form(self, segment: str, form_type: FormType,
                          values: list[dict[str, Any]]) -> FormSubmission:
        """``POST /forms``: save a form submission; its id goes into :meth:`enqueue`."""
        response = await self._call(
            "POST", "/forms", json_body={"segment": segment, "type": form_type, "values": values},
            retries=self._retry.enqueue_retries, retry_on=(ConnectFailed,))
        result: FormSubmission = _parse(response, _adapter(FormSubmission))
        return result

    # ----------------------------------------------------------------- machinery

    async def _get(self, path: str, adapter: TypeAdapter[T],
                   params: dict[str, str] | None = None, retries: int | None = None) -> T:
        response = await self._call(
            "GET", path, params=params,
            retries=self._retry.get_retries if retries is None else retries,
            retry_on=(TransportError, RateLimited, ServerError))
        return _parse(response, adapter)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        retries: int,
        retry_on: tuple[type[ApiError], ...],
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send with the retry policy; return a 2xx response or raise a typed error."""
        attempt = 0
        while True:
            error: ApiError
            try:
                response = await self._http.request(method, path, json=json_body, params=params)
            except httpx.TransportError as exc:
                error = _map_transport_error(exc)
                error.__cause__ = exc
            else:
                if response.is_success:
                    return response
                error = error_for_status(response.status_code, _body(response), response.headers)
            attempt += 1
            if attempt > retries or not isinstance(error, retry_on):
                raise error
            delay = self._retry.delay(attempt, error, self._rand())
            log.debug("retry %d/%d of %s %s in %.2fs after %s", attempt, retries, method, path,
                      delay, error)
            await self._sleep(delay)


@cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    """One validator per answer type, built on first use (building one is costly)."""
    return TypeAdapter(tp)


def _http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header as an aware UTC datetime (None if missing or unreadable)."""
    if not value:
        return None
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return date.replace(tzinfo=UTC) if date.tzinfo is None else date.astimezone(UTC)


def _seg(value: str) -> str:
    """One URL path segment, so an id can never change the path."""
    return quote(value, safe="")


def _parse(response: httpx.Response, adapter: TypeAdapter[T]) -> T:
    body = _body(response)
    if body is None:
        what = "an empty body" if not response.content else "a body that is not JSON"
        raise MalformedResponse(f"{what} where JSON was expected",
                                status_code=response.status_code, snippet=_snippet(response))
    try:
        return adapter.validate_python(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise MalformedResponse(f"unexpected JSON shape at {loc}: {first['msg']}",
                                status_code=response.status_code,
                                snippet=_snippet(response)) from None


__all__ = ["API_PREFIX", "DEFAULT_RETRY", "NO_RETRY", "QmsClient", "RetryPolicy",
           "check_enqueue", "error_for_status"]

