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

Deadlines and sizes (``httpx.Timeout`` bounds each read, not the request: a server that
sends one byte a second would hold it forever):

- each attempt has a total deadline of ``timeout_s`` (connect, send, headers and body);
- a whole call, retries and waits included, has :meth:`RetryPolicy.call_deadline`; a wait
  that would overrun it is not taken (the last error is raised instead);
- a body is read as a stream and given up past :data:`MAX_BODY_BYTES` (one announced by
  an honest ``Content-Length`` within it, not encoded, is read in one go).

A 2xx whose body does not arrive in time (or is too big) is a
:class:`~kiosk.errors.MalformedResponse`: for an enqueue the ticket is in the queue
(:class:`~kiosk.errors.AcceptedUnreadable`). A deadline before the status arrived is an
:class:`~kiosk.errors.ApiTimeout`.

Lists (branches, queues) are read item by item: an item that does not validate is
skipped (logged once), the rest is kept; Feathers' paginated shape
``{total, limit, skip, data}`` is accepted, and its next pages are fetched.

No error from here carries the API key: text from httpx is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import platform
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import SecretStr, TypeAdapter, ValidationError

from kiosk import __version__, deadlines
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
from kiosk.logs import protect
from kiosk.redaction import all_forms, scrub, token_problem
from kiosk.textclean import NAME_MAX, clean_text

log = logging.getLogger(__name__)

API_PREFIX = "/public/video-contact-center"
TICKET_ID_MAX = 50
INTEGRATION_DATA_MAX_BYTES = 50_000
USER_AGENT = f"kiosk/{__version__} (Videsk QMS kiosk; python {platform.python_version()})"
MAX_BODY_BYTES = 4 << 20
"""Largest answer body read (4 MiB: 2,000 queues take about 200 KB)."""
MAX_PAGES = 100
"""Most pages of a paginated list fetched in one call."""
MAX_ITEMS = 5000
"""Most items of one list kept."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long to wait before trying a request again (defaults and the
    deadlines they make: :mod:`kiosk.deadlines`)."""

    get_retries: int = deadlines.GET_RETRIES
    """Extra attempts for a GET after a retryable failure."""
    enqueue_retries: int = deadlines.ENQUEUE_RETRIES
    """Extra attempts for an enqueue after a 422 or a connection that never opened."""
    initial_delay_s: float = deadlines.INITIAL_DELAY_S
    """Wait before the first retry; doubles each time."""
    max_delay_s: float = deadlines.MAX_DELAY_S
    """No single wait is longer than this."""
    jitter: float = deadlines.JITTER
    """Each wait is scaled by a random factor in [1 - jitter, 1 + jitter]."""
    max_retry_after_s: float = deadlines.MAX_RETRY_AFTER_S
    """A 429's ``Retry-After`` is honoured up to this many seconds."""

    def call_deadline(self, timeout_s: float, retries: int, *,
                      rate_limited: bool = True) -> float:
        """Seconds a whole call may take: ``retries + 1`` attempts of ``timeout_s`` and
        the waits between them (``rate_limited``: a 429 is retried after Retry-After)."""
        waits = deadlines.waits_s(retries, initial_s=self.initial_delay_s,
                                  max_delay_s=self.max_delay_s, jitter=self.jitter,
                                  retry_after_s=self.max_retry_after_s if rate_limited else 0)
        return deadlines.call_s(timeout_s, retries, waits)

    def delay(self, attempt: int, error: ApiError, rand: float) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after_s)
        base = min(self.max_delay_s, self.initial_delay_s * 2.0 ** (attempt - 1))
        return max(0.0, base * (1 + self.jitter * (2 * rand - 1)))


_BUDGET: contextvars.ContextVar[float | None] = contextvars.ContextVar("api_budget",
                                                                     default=None)
SLACK_S = 0.5
"""Added to a call's own deadline: the time between attempts is not all waiting."""
MIN_ATTEMPT_S = 0.25
"""An attempt is not started with less time than this left."""


@contextlib.contextmanager
def api_budget(seconds: float) -> Iterator[None]:
    """Every API call made inside (in this task and the tasks it starts) ends within
    ``seconds`` from now, together: no attempt is started that cannot end in time (a
    call with no time left raises :class:`~kiosk.errors.ConnectFailed`, nothing sent).
    Nested budgets keep the earlier end."""
    end = asyncio.get_running_loop().time() + seconds
    outer = _BUDGET.get()
    token = _BUDGET.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _BUDGET.reset(token)


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
    name = clean_text(fields["name"], NAME_MAX) if isinstance(fields.get("name"), str) else None
    message = clean_text(fields["message"], 300) if isinstance(fields.get("message"), str) \
        else ""
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


def _map_transport_error(exc: httpx.TransportError, secrets: list[str]) -> TransportError:
    """httpx's failures, sorted by whether the request may have reached the server (the
    text scrubbed of ``secrets``: h11 quotes a header value it refuses)."""
    detail = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
    detail = clean_text(scrub(detail, secrets), 300)
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                  | httpx.UnsupportedProtocol | httpx.ProxyError):
        return ConnectFailed(detail)
    if isinstance(exc, httpx.TimeoutException):
        return ApiTimeout(detail)
    return ConnectionLost(detail)


def _snippet(response: httpx.Response) -> str:
    return clean_text(response.content[:120].decode("utf-8", "replace"), 120)


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
        problem = token_problem(key) if key else None
        if problem:  # the config refuses it first; never send a key h11 would quote back
            raise RequestInvalid(f"the API key is not usable: {problem}")
        self._secrets = all_forms(key)
        if key:
            protect(key)  # whoever builds a client never logs its key
        self._timeout_s = timeout_s
        self._retry = retry
        self._sleep = sleep
        self._rand = rand
        self.server_date: tuple[datetime, float] | None = None
        """The API's last ``Date`` header and the monotonic time it came (a second opinion
        on the local clock: :mod:`kiosk.tickets.clock`)."""
        self._date_raw = ""
        """The ``Date`` header :attr:`server_date` was read from (parsed once)."""
        self._bad_items: set[str] = set()
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

    @property
    def timeout_s(self) -> float:
        """Each attempt's total deadline."""
        return self._timeout_s

    def call_deadline(self, *, enqueue: bool = False, retries: int | None = None) -> float:
        """Seconds one call may take, retries and waits included."""
        n = retries if retries is not None else (
            self._retry.enqueue_retries if enqueue else self._retry.get_retries)
        return self._retry.call_deadline(self._timeout_s, n, rate_limited=not enqueue) \
            + SLACK_S

    def _deadline(self, retries: int, rate_limited: bool) -> float:
        """The loop time by which a call must end: its own, or the budget's if earlier."""
        own = asyncio.get_running_loop().time() + SLACK_S + self._retry.call_deadline(
            self._timeout_s, retries, rate_limited=rate_limited)
        budget = _BUDGET.get()
        return own if budget is None else min(own, budget)

    async def __aenter__(self) -> QmsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _note_date(self, response: httpx.Response) -> None:
        """Keep the answer's ``Date`` (any answer: the server's clock is what matters)."""
        raw = response.headers.get("date")
        if raw is None or raw == self._date_raw:
            return  # the same second as the last answer: its first arrival is kept
        if (date := _http_date(raw)) is not None:
            self._date_raw = raw
            self.server_date = (date, time.monotonic())

    # ----------------------------------------------------------------- endpoints

    async def list_branches(self) -> list[Branch]:
        """``GET /branches``: the account's branches."""
        return await self._get_list("/branches", Branch)

    async def list_queues(self, branch: str, *, retries: int | None = None) -> list[Queue]:
        """``GET /branches/:branch/queues``: the branch's queues with agents and wait.

        ``retries=0`` makes exactly one request (the queue monitor backs off on its own).
        """
        return await self._get_list(f"/branches/{_seg(branch)}/queues", Queue, retries=retries)

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
        try:
            response = await self._call(
                "POST", f"/branches/{_seg(branch)}/queues/{_seg(queue)}", json_body=body,
                retries=self._retry.enqueue_retries, retry_on=(ConnectFailed, Unprocessable))
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

    async def _get_list(self, path: str, model: type[M], retries: int | None = None
                        ) -> list[M]:
        """A list answer, item by item, following Feathers pages; all within one deadline."""
        n = self._retry.get_retries if retries is None else retries
        deadline = self._deadline(n, rate_limited=True)
        raw: list[Any] = []
        params: dict[str, str] | None = None
        for _ in range(MAX_PAGES):
            response = await self._call("GET", path, params=params, retries=n,
                                        retry_on=(TransportError, RateLimited, ServerError),
                                        deadline=deadline)
            body = _json_of(response)
            page = _page(body)
            if page is None:
                raise MalformedResponse(f"unexpected JSON shape: {_shape(body)} where a list "
                                        "was expected", status_code=response.status_code,
                                        snippet=_snippet(response))
            items, total, skip = page
            raw.extend(items)
            if total is None or not items or skip + len(items) >= total \
                    or len(raw) >= MAX_ITEMS:
                break
            params = {"$skip": str(skip + len(items)), "$limit": str(len(items))}
        else:
            log.warning("%s: more than %d pages; the first %d items are kept", path,
                        MAX_PAGES, len(raw))
        if len(raw) > MAX_ITEMS:
            log.warning("%s: %d items; the first %d are kept", path, len(raw), MAX_ITEMS)
            raw = raw[:MAX_ITEMS]
        return self._valid_items(path, raw, model, response)

    def _valid_items(self, path: str, raw: list[Any], model: type[M],
                     response: httpx.Response) -> list[M]:
        """The items that validate; each bad one is logged once (not at every poll)."""
        adapter = _adapter(model)
        good: list[M] = []
        first_bad = ""
        for i, item in enumerate(raw):
            try:
                good.append(adapter.validate_python(item))
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"]) or "(item)"
                ident = item.get("id") if isinstance(item, dict) else None
                ident = clean_text(ident, 64) if isinstance(ident, str) else f"#{i}"
                first_bad = first_bad or f"at {i}.{loc}: {clean_text(str(first['msg']), 200)}"
                key = f"{path} {ident} {loc} {first['type']}"
                if key not in self._bad_items:
                    if len(self._bad_items) > 10_000:
                        self._bad_items.clear()
                    self._bad_items.add(key)
                    log.warning("%s: item %s skipped (%s: %s); the others are kept", path,
                                ident, loc, clean_text(str(first["msg"]), 200))
        if raw and not good:
            raise MalformedResponse(f"unexpected JSON shape: none of the {len(raw)} items is "
                                    f"readable (the first one {first_bad})",
                                    status_code=response.status_code, snippet=_snippet(response))
        return good

    async def _call(
        self,
        method: str,
        path: str,
        *,
        retries: int,
        retry_on: tuple[type[ApiError], ...],
        json_body: Any = None,
        params: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """Send with the retry policy; return a 2xx response (its body read) or raise a
        typed error. Each attempt has ``timeout_s``; all of them end by ``deadline``
        (loop time; default: :meth:`RetryPolicy.call_deadline` from now, or the
        :func:`api_budget`'s end if earlier). A POST is never sent with less than a whole
        attempt's time left (cut short, it could land unseen); a retry is only started
        when a whole attempt fits."""
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = self._deadline(retries, rate_limited=method == "GET")
        left = deadline - loop.time()
        if left < MIN_ATTEMPT_S or (method != "GET" and left < self._timeout_s):
            raise ConnectFailed(f"not sent: {max(0.0, left):.1f} s left of this request's "
                                "deadline")
        attempt = 0
        while True:
            error: ApiError
            try:
                response = await self._attempt(method, path, json_body, params,
                                               min(self._timeout_s, deadline - loop.time()))
            except httpx.TransportError as exc:
                error = _map_transport_error(exc, self._secrets)
                # chained only when its text is clean (a traceback prints the cause)
                error.__cause__ = exc if scrub(str(exc), self._secrets) == str(exc) else None
                error.__suppress_context__ = True
            except _Late as exc:  # the status line never came in time
                error = ApiTimeout(f"no answer within {exc.seconds:.1f} s")
            else:
                if response.is_success:
                    return response
                error = error_for_status(response.status_code, _body(response), response.headers)
            attempt += 1
            if attempt > retries or not isinstance(error, retry_on):
                raise error
            delay = self._retry.delay(attempt, error, self._rand())
            if loop.time() + delay + self._timeout_s > deadline:
                log.debug("no retry of %s %s: a whole attempt would not end by the deadline",
                          method, path)
                raise error
            log.debug("retry %d/%d of %s %s in %.2fs after %s", attempt, retries, method, path,
                      delay, error)
            await self._sleep(delay)

    async def _attempt(self, method: str, path: str, json_body: Any,
                       params: dict[str, str] | None, seconds: float) -> httpx.Response:
        """One request within ``seconds`` in all, its body read (at most MAX_BODY_BYTES).

        Raises httpx's errors, :class:`_Late` (no status in time), or MalformedResponse
        for a 2xx whose body came too slowly or too big."""
        seconds = max(0.0, seconds)
        request = self._http.build_request(method, path, json=json_body, params=params)
        response: httpx.Response | None = None
        try:
            async with asyncio.timeout(seconds):
                response = await self._http.send(request, stream=True)
                if _small_plain(response):  # one read: h11 stops at Content-Length
                    await response.aread()
                    return response
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():  # decoded: a gzip bomb stops too
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        raise _TooBig
                    chunks.append(chunk)
        except TimeoutError:
            if response is None:
                raise _Late(seconds) from None
            return self._unread(response, f"the body did not arrive within {seconds:.1f} s")
        except _TooBig:
            assert response is not None
            return self._unread(response, f"a body over {MAX_BODY_BYTES} bytes")
        except httpx.DecodingError:
            assert response is not None
            return self._unread(response, "a body that cannot be decoded")
        finally:
            if response is not None:
                await response.aclose()
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length",
                                        "transfer-encoding")]
        return httpx.Response(response.status_code, headers=headers,
                              content=b"".join(chunks), request=request)

    @staticmethod
    def _unread(response: httpx.Response, what: str) -> httpx.Response:
        """A response whose body could not be read: an error status is still its error;
        a 2xx is malformed."""
        if response.is_success:
            raise MalformedResponse(what, status_code=response.status_code)
        return httpx.Response(response.status_code, headers=response.headers,
                              request=response.request)


def _small_plain(response: httpx.Response) -> bool:
    """A body sent as is (no Content-Encoding) with one Content-Length within
    :data:`MAX_BODY_BYTES`: it can be read in one go (h11 never reads past the length, so
    no more than that arrives) and the response kept as it is."""
    headers = response.headers
    length = headers.get("content-length")
    return (length is not None and length.isdigit() and int(length) <= MAX_BODY_BYTES
            and "content-encoding" not in headers)


class _Late(Exception):
    """No status line within the attempt's deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class _TooBig(Exception):
    """The body is over MAX_BODY_BYTES."""


M = TypeVar("M", Branch, Queue)


def _json_of(response: httpx.Response) -> Any:
    body = _body(response)
    if body is None:
        what = "an empty body" if not response.content else "a body that is not JSON"
        raise MalformedResponse(f"{what} where JSON was expected",
                                status_code=response.status_code, snippet=_snippet(response))
    return body


def _page(body: Any) -> tuple[list[Any], int | None, int] | None:
    """(items, total, skip) of a list answer: a JSON list, or a Feathers page."""
    if isinstance(body, list):
        return body, None, 0
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        total, skip = body.get("total"), body.get("skip", 0)
        ok = isinstance(total, int) and not isinstance(total, bool) and total >= 0
        skip_ok = isinstance(skip, int) and not isinstance(skip, bool) and skip >= 0
        return body["data"], total if ok else None, skip if skip_ok else 0
    return None


def _shape(body: Any) -> str:
    return "an object" if isinstance(body, dict) else type(body).__name__


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
           "api_budget", "check_enqueue", "error_for_status"]

