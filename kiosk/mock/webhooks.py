"""The mock's "Notificación ticket QMS" webhook, delivered the way the provider does.

When a mock agent takes a ticket (an accepted enqueue), after ``webhook.delay_s`` the mock
renders the published template (``kiosk/relay/webhook-template.json``, or
``webhook.template``) with Handlebars (pybars3) over the provider's variables (``call``,
``segment``, ``branch``, ``poc``, ``integrationData``, ``secrets``) and helpers that behave
like the provider's: ``{{hmac data secret [algorithm] [encoding]}}`` (the same errors) and
the block ``{{#jwt}}{"payload", "privateKey", "options"}{{/jwt}}`` (or ``{{#jwt
secrets.x}}{{/jwt}}``, the JSON in a secret), which signs just before each attempt, as
``jsonwebtoken`` does (``iat`` now, ``expiresIn`` like ``"1m"``, HS/RS/ES algorithms), and
sends it:

- a status >= 500 or 429 (or no answer at all) is retried after 60 s, then 120 s, then
  180 s: at most 3 retries;
- a 4xx is logged and never retried;
- a request that takes over 30 s is cancelled and logged;
- a template that does not render (say, no secret) is logged as a ``parsing`` error and
  nothing is sent.

The call and retry delays are multiplied by ``webhook.time_scale`` (0.01 in tests).
Every attempt is kept in :attr:`Deliveries.log` and shown at ``GET /_mock/webhooks``.
This module shares no code with the relay: it only reads the template file the relay
publishes.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from kiosk.errors import ConfigError

log = logging.getLogger(__name__)

TEMPLATE = Path(__file__).resolve().parent.parent / "relay" / "webhook-template.json"
RETRY_DELAYS_S = (60.0, 120.0, 180.0)
"""The provider's retries after a 5xx: 60 s later, incrementally, up to 3 times."""
TIMEOUT_S = 30.0
"""The provider cancels a request that takes longer."""
_ENCODINGS = {"hex", "base64", "base64url", "latin1", "binary"}


class WebhookSpec(BaseModel):
    """Where and how the mock sends the QMS ticket webhook (scenario key ``webhook``)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    url: str | None = None
    """The receiver (``http://127.0.0.1:8787/webhooks/videsk``); unset: no webhooks."""
    secret_file: Path | None = None
    """File holding the account secret ``kioskWebhookSecret`` (the relay's secret)."""
    jwt_key_file: Path | None = None
    """File holding the account secret ``kioskJwtPrivateKey``: the private key as a JSON
    string (``kiosk webhook-keys`` writes it); the relay holds the public key."""
    template: Path | None = None
    """Template file (JSON: method, url, headers, body); default: the published one."""
    delay_s: tuple[float, float] = (2.0, 6.0)
    """From an accepted enqueue to the agent's call: a random time in this range."""
    time_scale: float = Field(1.0, gt=0, le=10)
    """Multiplies the call delay and the retry delays: 0.01 in tests."""
    timeout_s: float = Field(TIMEOUT_S, gt=0, le=TIMEOUT_S)
    """The provider cancels a request after 30 s (lower only to test it)."""
    pocs: list[str] = Field(default_factory=lambda: [f"Cabina {i}" for i in range(1, 7)])
    """The booths (POCs) agents answer from."""


class TemplateError(Exception):
    """The template did not render (the provider logs it as a ``parsing`` error)."""


def hmac_helper(this: Any, data: Any = None, secret: Any = None, algorithm: Any = "sha256",
                encoding: Any = "hex", *rest: Any) -> str:
    """The provider's inline ``hmac`` helper (see provider/webhooks_helpers_hmac.md)."""
    if data is None or data == "" or isinstance(data, dict | list):
        # a context object renders "[object Object]" in Node; we refuse it instead
        raise TemplateError("Error: Data to sign is required")
    if not secret or not isinstance(secret, str):
        raise TemplateError("Error: Secret key is required")
    algorithm = algorithm if isinstance(algorithm, str) else "sha256"
    encoding = encoding if isinstance(encoding, str) else "hex"
    if encoding not in _ENCODINGS:
        raise TemplateError(f"Error: Invalid encoding: {encoding}")
    try:
        digest = hmac.new(secret.encode(), str(data).encode(), algorithm).digest()
    except ValueError as exc:
        raise TemplateError(f"Failed to generate HMAC: {exc}") from None
    if encoding == "hex":
        return digest.hex()
    import base64
    if encoding == "base64":
        return base64.b64encode(digest).decode()
    if encoding == "base64url":
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return digest.decode("latin1")


_MS_UNITS = {"ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001, "msec": 0.001,
             "msecs": 0.001, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
             "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60, "h": 3600,
             "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
             "days": 86400, "w": 604800, "week": 604800, "weeks": 604800,
             "mo": 2629800, "month": 2629800, "months": 2629800, "y": 31557600,
             "yr": 31557600, "yrs": 31557600, "year": 31557600, "years": 31557600}


def _span_s(value: Any, option: str) -> float:
    """``expiresIn``/``notBefore`` in seconds, as ``jsonwebtoken`` reads them: a number is
    seconds, a string goes through ``ms`` ("1m", "5 seconds"; bare digits: milliseconds)."""
    import re
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    m = re.fullmatch(r"\s*(-?\d*\.?\d+)\s*([a-zA-Z]*)\s*", str(value))
    if not m or (m.group(2) and m.group(2).lower() not in _MS_UNITS):
        raise TemplateError(f'"{option}" should be a number of seconds or a string '
                            "representing a timespan")
    return float(m.group(1)) * _MS_UNITS.get(m.group(2).lower() or "ms", 0.001)


@functools.lru_cache(maxsize=8)
def _private_key(pem: str) -> Any:
    """A PEM private key, loaded once (an RSA key's checks take tens of ms); a string that
    is not a PEM key (an HS* secret) as it is."""
    if "PRIVATE KEY-----" not in pem:
        return pem
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    try:
        return load_pem_private_key(pem.encode(), None)
    except (ValueError, TypeError) as exc:
        raise TemplateError(f"Error: {exc}") from None


def sign_jwt(spec: Any) -> str:
    """What the provider's ``#jwt`` helper makes of ``{payload, privateKey, options}``."""
    import jwt
    if not isinstance(spec, dict):
        raise TemplateError("Error: the #jwt content must be a JSON object")
    payload, key, options = spec.get("payload"), spec.get("privateKey"), spec.get("options")
    options = options if isinstance(options, dict) else {}
    if not isinstance(key, str) or not key:
        raise TemplateError("Error: secretOrPrivateKey must have a value")
    alg = str(options.get("algorithm", "HS256"))
    header = options.get("header") if isinstance(options.get("header"), dict) else None
    if isinstance(payload, str):
        claims: dict[str, Any] | str = payload
    elif isinstance(payload, dict):
        now = int(time.time())
        claims = {"iat": now, **payload}
        for option, claim in (("expiresIn", "exp"), ("notBefore", "nbf")):
            if option in options:
                claims[claim] = int(now + _span_s(options[option], option))
        for option, claim in (("audience", "aud"), ("issuer", "iss"), ("subject", "sub"),
                              ("jwtid", "jti")):
            if option in options:
                claims[claim] = options[option]
    else:
        raise TemplateError("Error: payload is required")
    try:
        signer = _private_key(key)
        if isinstance(claims, str):
            return jwt.api_jws.encode(claims.encode(), signer, algorithm=alg, headers=header)
        return jwt.encode(claims, signer, algorithm=alg, headers=header)
    except (jwt.PyJWTError, ValueError, TypeError, NotImplementedError) as exc:
        raise TemplateError(f"Error: {exc}") from None


def jwt_helper(this: Any, options: Any, static: Any = None, *rest: Any) -> str:
    """The provider's block helper ``#jwt``: its content (or the secret ``static``) is
    JSON ``{payload, privateKey, options}``; it renders the signed token."""
    text = static if isinstance(static, str) else str(options["fn"](this))
    try:
        spec = json.loads(text)
    except ValueError:
        raise TemplateError("Error: the #jwt content is not valid JSON") from None
    return sign_jwt(spec)


Renderer = Callable[[dict[str, Any]], tuple[str, str, dict[str, str], str]]


def compile_template(template: dict[str, Any]) -> Renderer:
    """The template compiled once (pybars is slow to load and to compile); the result
    renders a context into method, url, headers and body."""
    import pybars
    compiler = pybars.Compiler()
    helpers = {"hmac": hmac_helper, "jwt": jwt_helper}
    try:
        parts = {name: compiler.compile(str(value))
                 for name, value in template.get("headers", {}).items()}
        url = compiler.compile(str(template.get("url", "")))
        body = compiler.compile(str(template.get("body", "")))
    except Exception as exc:  # pybars' own errors: a broken template
        raise TemplateError(f"template: {exc}") from None
    method = str(template.get("method", "POST"))

    def one(fn: Callable[..., Any], context: dict[str, Any]) -> str:
        try:
            return str(fn(context, helpers=helpers))
        except TemplateError:
            raise
        except Exception as exc:
            raise TemplateError(f"template: {exc}") from None

    def render(context: dict[str, Any]) -> tuple[str, str, dict[str, str], str]:
        return (method, one(url, context),
                {name: one(fn, context) for name, fn in parts.items()}, one(body, context))
    return render


@dataclass
class Attempt:
    """One delivery attempt, as the provider's error log would show it."""

    ticket_id: str
    call_id: str
    attempt: int
    status: int | None
    error: str = ""
    source: str = ""
    """``parsing`` (the template) or ``third-party`` (the receiver's answer or silence)."""
    at: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"ticketId": self.ticket_id, "callId": self.call_id, "attempt": self.attempt,
                "status": self.status, "error": self.error, "source": self.source,
                "at": self.at}


@dataclass
class Deliveries:
    """Sends the mock's webhooks; one task per call."""

    spec: WebhookSpec
    rng: random.Random = field(default_factory=random.Random)
    log: list[Attempt] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _render: Renderer | None = None
    _secret: str = ""
    _jwt_key: str = ""

    def __post_init__(self) -> None:
        if not self.enabled:
            return
        path = self.spec.template or TEMPLATE
        self._render = compile_template(json.loads(path.read_text(encoding="utf-8")))
        if self.spec.secret_file is not None:
            try:
                lines = self.spec.secret_file.read_text(encoding="utf-8").split()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(str(self.spec.secret_file), "webhook.secret_file",
                                  f"a readable secret file ({exc.__class__.__name__})") from None
            self._secret = lines[0] if lines else ""
        if self.spec.jwt_key_file is not None:
            try:
                self._jwt_key = self.spec.jwt_key_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(str(self.spec.jwt_key_file), "webhook.jwt_key_file",
                                  f"a readable key file ({exc.__class__.__name__})") from None

    @property
    def enabled(self) -> bool:
        return bool(self.spec.url)

    def ticket_taken(self, *, branch: dict[str, str], queue: dict[str, str], ticket_id: str,
                     integration_data: Any) -> None:
        """An agent took ``ticket_id``: schedule its webhook (on the running loop)."""
        if not self.enabled:
            return
        call_id = f"{self.rng.getrandbits(96):024x}"
        poc_n = self.rng.randrange(len(self.spec.pocs)) if self.spec.pocs else 0
        context = {
            "call": {"id": call_id, "ticketId": ticket_id,
                     "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            "segment": queue, "branch": branch,
            "poc": {"id": f"poc-{poc_n + 1}",
                    "label": self.spec.pocs[poc_n] if self.spec.pocs else ""},
            "integrationData": integration_data if integration_data is not None else {},
            "secrets": {k: v for k, v in (("kioskWebhookSecret", self._secret),
                                          ("kioskJwtPrivateKey", self._jwt_key)) if v},
        }
        lo, hi = self.spec.delay_s
        delay = self.rng.uniform(lo, hi) * self.spec.time_scale
        task = asyncio.get_running_loop().create_task(self._deliver(context, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, context: dict[str, Any], delay: float) -> None:
        await asyncio.sleep(delay)
        ticket_id, call_id = context["call"]["ticketId"], context["call"]["id"]
        assert self._render is not None
        url = str(self.spec.url)
        scale = self.spec.time_scale
        async with httpx.AsyncClient(timeout=self.spec.timeout_s) as client:
            for attempt in range(1, len(RETRY_DELAYS_S) + 2):
                try:  # rendered for each attempt: a #jwt is signed just before sending
                    method, _, headers, body = self._render(context)
                except TemplateError as exc:
                    self.log.append(Attempt(ticket_id, call_id, attempt, None, str(exc),
                                            "parsing", time.time()))
                    log.warning("mock webhook for %s not sent: %s", ticket_id, exc)
                    return
                status: int | None = None
                error = ""
                try:
                    r = await client.request(method, url, content=body.encode(),
                                             headers=headers)
                    status = r.status_code
                    error = "" if status < 400 else r.text[:200]
                except httpx.TimeoutException:
                    error = f"cancelled after {self.spec.timeout_s:g} s"
                except httpx.TransportError as exc:
                    error = f"network: {exc.__class__.__name__}"
                self.log.append(Attempt(ticket_id, call_id, attempt, status, error,
                                        "third-party" if error else "", time.time()))
                if status is not None and status < 400:
                    return
                if error.startswith("cancelled"):
                    log.warning("mock webhook for %s cancelled (over %g s)", ticket_id,
                                self.spec.timeout_s)
                    return
                if status is not None and status < 500 and status != 429:
                    log.warning("mock webhook for %s refused with %d: not retried",
                                ticket_id, status)
                    return
                if attempt > len(RETRY_DELAYS_S):
                    log.warning("mock webhook for %s failed %d times: given up", ticket_id,
                                attempt)
                    return
                await asyncio.sleep(RETRY_DELAYS_S[attempt - 1] * scale)

    async def drain(self) -> None:
        """Wait for every delivery in flight (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
