"""The webhook contract we publish: its body, its signature, its template.

The provider's "Notificación ticket QMS" webhook has no fixed body: the account's admin
pastes our template (``kiosk webhook-template``; the file ``webhook-template.json`` next
to this module) into the provider's console, and the provider renders it per call::

    {"event": "qms.ticket.assigned", "ticketId", "callId", "branch": {"id", "label"},
     "queue": {"id", "name"}, "poc": {"id", "label"}, "integrationData": {...}}

(:data:`SCHEMA` is its JSON Schema.)

**What the signature covers.** The provider's ``hmac`` helper signs one value of the
template's context (``{{hmac data secret}}``), not the request body it is rendering: no
variable holds the rendered body. So the template signs the fields that matter with the
helper nested (Handlebars subexpressions), each step keyed by the previous one's hex::

    X-Kiosk-Signature: sha256={{hmac call.id (hmac poc.label (hmac segment.name
                        (hmac call.ticketId (hmac branch.id secrets.kioskWebhookSecret))))}}

that is ``H(H(H(H(H(secret, branch.id), ticketId), queue.name), poc.label), callId)``
with ``H(key, data) = hex(HMAC-SHA256(key, data))`` (:func:`field_signature`). It binds
everything a screen shows and the idempotency key; a repeated delivery is one call. A
sender that can sign the raw body (tests, other integrators) may instead send
``sha256=<hex HMAC-SHA256 of the raw body>`` (:func:`body_signature`, GitHub's form);
the relay accepts either, checked in constant time against each configured secret.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kiosk.i18n import LANGUAGES

EVENT = "qms.ticket.assigned"
SIGNATURE_HEADER = "x-kiosk-signature"
_BRANCH_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class _M(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Ref(_M):
    """An id and a label (branch, poc)."""

    id: str = Field("", max_length=128)
    label: str = Field("", max_length=200)


class QueueRef(_M):
    """The queue (the provider's segment)."""

    id: str = Field("", max_length=128)
    name: str = Field("", max_length=200)


class Webhook(_M):
    """One call, as the published template renders it."""

    event: Literal["qms.ticket.assigned"]
    ticketId: str = Field(min_length=1, max_length=50)
    callId: str = Field(min_length=1, max_length=128)
    branch: Ref
    queue: QueueRef = QueueRef(id="", name="")
    poc: Ref
    integrationData: Any = None

    def lang(self) -> str | None:
        """The customer's language from ``integrationData.lang``, if it is one we speak."""
        data = self.integrationData
        lang = data.get("lang") if isinstance(data, dict) else None
        return lang if isinstance(lang, str) and lang in LANGUAGES else None


SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/kiosk/kiosk/relay/webhook.schema.json",
    "title": "kiosk relay: the QMS ticket-assigned webhook",
    "type": "object",
    "required": ["event", "ticketId", "callId", "branch", "poc"],
    "properties": {
        "event": {"const": EVENT},
        "ticketId": {"type": "string", "minLength": 1, "maxLength": 50,
                     "description": "the number on the customer's ticket, e.g. A-042"},
        "callId": {"type": "string", "minLength": 1, "maxLength": 128,
                   "description": "the provider's call id: the idempotency key"},
        "branch": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 64},
            "label": {"type": "string", "maxLength": 200}}},
        "queue": {"type": "object", "properties": {
            "id": {"type": "string", "maxLength": 128},
            "name": {"type": "string", "maxLength": 200}}},
        "poc": {"type": "object", "required": ["label"], "properties": {
            "id": {"type": "string", "maxLength": 128},
            "label": {"type": "string", "minLength": 1, "maxLength": 200,
                      "description": "the booth the customer goes to, e.g. Cabina 3"}}},
        "integrationData": {"description": "what the kiosk sent at enqueue: lang, source, "
                            "kiosk, day (lang one of es, en, pt picks the announcement)"},
    },
}


class Malformed(ValueError):
    """The body is not a call we can ever accept (answered 400)."""


def _unescape(value: Any) -> Any:
    """Undo Handlebars' HTML escaping of ``{{var}}`` in every string (the provider may or
    may not escape: both render the same call)."""
    if isinstance(value, str):
        return html.unescape(value)
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value


def parse(body: bytes) -> Webhook:
    """The call in ``body``; :class:`Malformed` with the reason otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("not JSON") from None
    except RecursionError:  # "[[[[..." within the size limit: not a call, never a 500
        raise Malformed("nested too deep") from None
    if not isinstance(data, dict):
        raise Malformed("not a JSON object")
    try:
        call = Webhook.model_validate(_unescape(data) if b"&" in body else data)
    except RecursionError:
        raise Malformed("nested too deep") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "body"
        raise Malformed(f"{where}: {err['msg']}") from None
    if not _BRANCH_RE.fullmatch(call.branch.id):
        raise Malformed("branch.id: 1-64 letters, digits, '_', '.' or '-'")
    if not call.poc.label.strip():
        raise Malformed("poc.label: empty")
    return call


def _h(key: bytes, data: str) -> bytes:
    return hmac.new(key, data.encode(), hashlib.sha256).hexdigest().encode()


def field_signature(secret: bytes, branch_id: str, ticket_id: str, queue_name: str,
                    poc_label: str, call_id: str) -> str:
    """What the published template's ``X-Kiosk-Signature`` carries (without ``sha256=``)."""
    key = secret
    for value in (branch_id, ticket_id, queue_name, poc_label, call_id):
        key = _h(key, value)
    return key.decode()


def body_signature(secret: bytes, body: bytes) -> str:
    """Hex HMAC-SHA256 of the raw body (the other accepted form)."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _given(header: str | None) -> bytes | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition("=")
    if scheme.lower() != "sha256" or len(value) != 64:
        return b""
    return value.lower().encode()


def body_signed(header: str | None, body: bytes, secrets: tuple[bytes, ...]) -> bool:
    """Whether ``header`` is a raw-body signature under one of ``secrets``."""
    given = _given(header)
    ok = False
    for s in secrets:  # every secret is tried: the time does not tell which one matched
        ok |= hmac.compare_digest(given or b"-", body_signature(s, body).encode())
    return ok


def fields_signed(header: str | None, call: Webhook, secrets: tuple[bytes, ...]) -> bool:
    """Whether ``header`` is the template's field signature of ``call``."""
    given = _given(header)
    ok = False
    for s in secrets:
        want = field_signature(s, call.branch.id, call.ticketId, call.queue.name,
                               call.poc.label, call.callId)
        ok |= hmac.compare_digest(given or b"-", want.encode())
    return ok


def template() -> dict[str, Any]:
    """The published webhook template (``webhook-template.json``)."""
    text = resources.files(__package__).joinpath("webhook-template.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
