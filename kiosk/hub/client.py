"""The one HTTP client a core holds to its branch's hub (docs/hub.md).

:class:`HubClient` speaks the device's half of the contract: number leases
(``POST /v1/branches/{b}/leases``), ticket reports (``POST /v1/branches/{b}/tickets``),
this device's state (``PUT /v1/devices/{id}/state``) and the branch's ledger
(``GET /v1/branches/{b}/tickets``). The calls' stream (:class:`kiosk.calls.feed.CallFeed`)
borrows its :attr:`HubClient.http`, so a core has one connection pool to the hub.

Foreign errors are mapped here and only here: no answer (refused, timed out, cut) is a
:class:`~kiosk.errors.HubError` with ``status`` None; an answer other than the one
expected is a ``HubError`` with its status (409 on a lease: :class:`HubDayMismatch`).
A body that is not what the contract says is a ``HubError`` too: the hub is trusted with
numbers, not with this process's memory (answers over :data:`MAX_ANSWER` are refused).

The token lives here, in the core; it goes in the ``Authorization`` header only, never
in a log line, an error or a URL. A hub on this machine is reached directly, never
through a proxy of the environment (see :func:`relay_client`).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from kiosk.errors import HubDayMismatch, HubError
from kiosk.netloc import is_loopback_url

if TYPE_CHECKING:
    from pydantic import SecretStr

    from kiosk.config import Config

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 10.0
"""Each request's limit (a lease or a report is off every tap's path: it may wait)."""
MAX_ANSWER = 4 * 1024 * 1024
"""Largest answer read (a day's ledger of a busy branch is well under it)."""


@dataclass(frozen=True)
class RetryWait:
    """How long to wait before asking the hub again: doubling from ``initial_s``, capped
    at ``max_s``, each wait jittered by ±``jitter`` (devices of a branch do not come back
    in step after the hub does)."""

    initial_s: float = 1.0
    max_s: float = 60.0
    jitter: float = 0.2

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """The wait after ``failures`` failures in a row."""
        base = min(self.max_s, self.initial_s * 2 ** max(0, failures - 1))
        r: float = (rng or random).uniform(-self.jitter, self.jitter)
        return float(max(0.0, base * (1 + r)))


DEFAULT_RETRY = RetryWait()


def relay_client(url: str, timeout: httpx.Timeout | float,
                 transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The HTTP client for the hub (relay) at ``url``. A loopback hub (``http://`` is
    allowed only there) is reached directly: the environment's proxies are not used for
    it (httpx would send a plain request with the token to an ``HTTP_PROXY``). A hub
    elsewhere (``https://``) may be reached through them: the proxy then only tunnels TLS
    (``CONNECT``) and never sees the token."""
    return httpx.AsyncClient(transport=transport, timeout=timeout,
                             trust_env=not is_loopback_url(url))


@dataclass(frozen=True, slots=True)
class Lease:
    """A block of numbers the hub handed out: ``first`` to ``last`` of ``sequence`` on
    ``day`` (the branch-local day)."""

    sequence: str
    day: str
    first: int
    last: int


class HubClient:
    """This device's client of the branch's hub; close with :meth:`aclose`."""

    def __init__(self, url: str, branch: str, device: str, token: SecretStr, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.branch = branch
        self.device = device
        self._token = token
        self._timeout = httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S)
        self.http = relay_client(self.url, self._timeout, transport)
        """The connection pool to the hub (the calls' stream uses it too)."""

    @classmethod
    def from_config(cls, config: Config, token: SecretStr, **kw: Any) -> HubClient:
        """The client for ``config``'s hub (``hub.url``), as device ``kiosk.id``."""
        assert config.hub is not None
        return cls(config.hub.url, config.branch, config.kiosk.id, token, **kw)

    def auth(self) -> dict[str, str]:
        """The ``Authorization`` header (never logged)."""
        return {"Authorization": f"Bearer {self._token.get_secret_value()}"}

    def _branch_path(self, tail: str) -> str:
        return f"{self.url}/v1/branches/{quote(self.branch, safe='')}/{tail}"

    async def _send(self, method: str, url: str, expect: tuple[int, ...], *,
                    body: Any = None, params: dict[str, str] | None = None
                    ) -> tuple[int, Any]:
        """One request; ``(status, parsed JSON body or None)`` when the status is one of
        ``expect``, else :class:`HubError`. The one place httpx's errors are mapped."""
        what = method + " " + url.removeprefix(self.url).split("?")[0]
        content = bytearray()
        try:
            async with self.http.stream(
                    method, url, json=body, params=params,
                    headers={**self.auth(), "Accept": "application/json",
                             "Accept-Encoding": "identity"}) as resp:
                status = resp.status_code
                async for chunk in resp.aiter_raw():
                    content += chunk
                    if len(content) > MAX_ANSWER:
                        raise HubError(status, f"{what}: an answer over "
                                       f"{MAX_ANSWER // 1024 // 1024} MiB")
        except httpx.TransportError as exc:
            raise HubError(None, f"{what}: no answer ({exc.__class__.__name__})") from exc
        parsed: Any = None
        if content:
            try:
                parsed = json.loads(content)
            except (ValueError, UnicodeDecodeError):
                parsed = None
        if status not in expect:
            reason = parsed.get("error") if isinstance(parsed, dict) else None
            shown = reason if isinstance(reason, str) and reason.isprintable() else ""
            raise HubError(status, f"{what} refused" + (f" ({shown[:120]})" if shown else ""))
        if content and parsed is None:
            raise HubError(status, f"{what}: an answer that is not JSON")
        return status, parsed

    async def lease(self, sequence: str, day: str, count: int) -> Lease:
        """A block of ``count`` numbers of ``sequence`` for ``day``;
        :class:`HubDayMismatch` when the hub numbers another day."""
        status, body = await self._send("POST", self._branch_path("leases"), (201, 409),
                                        body={"sequence": sequence, "day": day,
                                              "count": count})
        if status == 409:
            hub_day = body.get("day") if isinstance(body, dict) else None
            try:
                raise HubDayMismatch(day, date.fromisoformat(str(hub_day)).isoformat())
            except ValueError:
                raise HubError(409, "POST leases refused (a day, unreadable)") from None
        if not isinstance(body, dict):
            raise HubError(status, "a lease answer that is not a JSON object")
        first, last = body.get("first"), body.get("last")
        if (body.get("sequence") != sequence or body.get("day") != day
                or type(first) is not int or type(last) is not int
                or not 1 <= first <= last or last - first + 1 > count):
            raise HubError(status, f"a lease answer that is not a block of at most {count} "
                           f"numbers of {sequence} on {day}")
        return Lease(sequence, day, first, last)

    async def report(self, ticket: dict[str, Any]) -> bool:
        """Report one ticket (docs/hub.md's body); True when the hub did not know it
        (201), False when it did (200: a repeated delivery, harmless)."""
        status, _ = await self._send("POST", self._branch_path("tickets"), (200, 201),
                                     body=ticket)
        return status == 201

    async def put_state(self, state: dict[str, Any]) -> None:
        """This device's state (a heartbeat): the latest replaces the one before."""
        await self._send("PUT", f"{self.url}/v1/devices/{quote(self.device, safe='')}/state",
                         (200, 204), body=state)

    async def tickets(self, day: str | None = None) -> dict[str, Any]:
        """The branch's ledger for ``day`` (default: the hub's today for the branch)."""
        status, body = await self._send("GET", self._branch_path("tickets"), (200,),
                                        params={"date": day} if day else None)
        if not isinstance(body, dict) or not isinstance(body.get("tickets"), list):
            raise HubError(status, "a ledger answer without a list of tickets")
        return body

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()
