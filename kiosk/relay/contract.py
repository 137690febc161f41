"""The webhook contract we publish: its body, its proofs (a JWT, or an HMAC), its templates.

The provider's "Notificación ticket QMS" webhook has no fixed body: the account's admin
pastes our template (``kiosk webhook-template``; the file ``webhook-template.json`` next
to this module) into the provider's console, and the provider renders it per call::

    {"event": "qms.ticket.assigned", "ticketId", "callId", "branch": {"id", "label"},
     "queue": {"id", "name"}, "poc": {"id", "label"}, "integrationData": {...}}

(:data:`SCHEMA` is its JSON Schema.)

**The JWT (the default template).** ``Authorization: Bearer {{#jwt}}...{{/jwt}}``: the
provider's ``#jwt`` helper signs, just before each request, a payload that names the call
(``branch``, ``ticketId``, ``callId``, ``queue``, ``poc: {id, label}``, and what the screens
show of it: ``lang``, ``priority``) with an RS256
private key held only in the provider's secret ``kioskJwtPrivateKey``, ``expiresIn: 1m``.
:func:`verify_jwt` checks it with the public key (``relay.jwt_public_key_file``; or HS256
with the webhook secret), then that it is *bound* (each claim equals the body's field) and
*fresh* (``iat`` within ``jwt_window_s`` of now, ``exp`` not past and at most
``jwt_max_lifetime_s`` after ``iat``); the store refuses a JWT it has seen in that window.
So a captured delivery cannot be altered, nor replayed after the window, nor within it.

**The HMAC (``webhook-template-hmac.json``, weaker).** No key pair (the relay holds the
signing secret) and no time in it: a captured delivery is "the same call" only for as long
as the relay remembers its ``callId`` (31 days). What it covers: the provider's ``hmac``
helper signs one value of the template's context (``{{hmac data secret}}``), not the
request body it is rendering: no variable holds the rendered body. So the template signs
the fields that matter with the helper nested (Handlebars subexpressions), each step keyed
by the previous one's hex::

    X-Kiosk-Signature: sha256={{hmac call.id (hmac poc.label (hmac segment.name
                        (hmac call.ticketId (hmac branch.id secrets.kioskWebhookSecret))))}}

that is ``H(H(H(H(H(secret, branch.id), ticketId), queue.name), poc.label), callId)``
with ``H(key, data) = hex(HMAC-SHA256(key, data))`` (:func:`field_signature`). It binds
the call, its queue and booth and the idempotency key; a repeated delivery is one call.
It does not bind the ``lang`` and ``priority`` the screens announce and mark (the chain
the installed templates sign: a longer one, accepted beside it, would protect nothing). A
sender that can sign the raw body (tests, other integrators) may instead send
``sha256=<hex HMAC-SHA256 of the raw body>`` (:func:`body_signature`, GitHub's form);
the relay accepts either, checked in constant time against each configured secret.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import hashlib
import hmac
import html
import json
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json

from kiosk.i18n import LANGUAGES

EVENT = "qms.ticket.assigned"
SIGNATURE_HEADER = "x-kiosk-signature"
_BRANCH_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
REASON_RE = re.compile(r"[a-z][a-z0-9_-]{0,23}")
"""A priority reason id as the kiosk's config names them (``senior``, ``pregnant``...)."""


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
    callId: str = Field("", max_length=128)
    """The provider's call id: a repeated delivery carries the same one. Empty when the
    sender has none (then the same ticket to the same booth within minutes is one call)."""
    branch: Ref
    queue: QueueRef = QueueRef(id="", name="")
    poc: Ref
    integrationData: Any = None

    def lang(self) -> str | None:
        """The customer's language from ``integrationData.lang``, if it is one we speak."""
        data = self.integrationData
        lang = data.get("lang") if isinstance(data, dict) else None
        return lang if isinstance(lang, str) and lang in LANGUAGES else None

    def rendered(self, name: str) -> str:
        """``integrationData[name]`` as text (:func:`rendered`): what the JWT's claim of
        that name must equal."""
        data = self.integrationData
        return rendered(data.get(name) if isinstance(data, dict) else None)

    def priority(self) -> str | bool | None:
        """A priority ticket's mark from ``integrationData.priority`` (the kiosk's reason id,
        or ``true`` where it asks none; the template renders either as text): the reason,
        True, or None for a regular ticket or anything else."""
        data = self.integrationData
        value = data.get("priority") if isinstance(data, dict) else None
        if value is True or value == "true":
            return True
        return value if isinstance(value, str) and REASON_RE.fullmatch(value) else None


SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/kiosk/kiosk/relay/webhook.schema.json",
    "title": "kiosk relay: the QMS ticket-assigned webhook",
    "type": "object",
    "required": ["event", "ticketId", "branch", "poc"],
    "properties": {
        "event": {"const": EVENT},
        "ticketId": {"type": "string", "minLength": 1, "maxLength": 50,
                     "description": "the number on the customer's ticket, e.g. A-042"},
        "callId": {"type": "string", "maxLength": 128,
                   "description": "the provider's call id: the idempotency key (without "
                   "it, the same ticket to the same booth within 5 minutes is one call)"},
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
                            "kiosk, day, priority (lang one of es, en, pt picks the "
                            "announcement; priority, a reason id or true, marks the call)"},
    },
}


def rendered(value: Any) -> str:
    """A value as the template puts it in a JSON string: a string as it is, ``true`` or
    ``false``, "" for none; anything else as JSON (the template only renders strings:
    this is for bodies and JWTs made by hand, where both sides are read alike)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


class Malformed(ValueError):
    """The body is not a call we can ever accept (answered 400)."""


def _unescape(value: Any) -> Any:
    """Undo Handlebars' HTML escaping of ``{{var}}`` in every string (the provider may or
    may not escape: both render the same call)."""
    if isinstance(value, str):
        try:
            return html.unescape(value)
        except ValueError:  # &#<over 4,300 digits>; is past int()'s limit (was a 500)
            raise Malformed("a character reference too long to read") from None
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value


def _json_object(body: bytes) -> dict[str, Any]:
    """``body`` as a JSON object, read as UTF-8 only (as pydantic-core reads the other
    path: ``json.loads`` of bytes would also guess UTF-16 and UTF-32)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise Malformed("not JSON") from None
    if not isinstance(data, dict):
        raise Malformed("not a JSON object")
    return data


def parse(body: bytes) -> Webhook:
    """The call in ``body``; :class:`Malformed` with the reason otherwise."""
    body = body.removeprefix(codecs.BOM_UTF8)  # JSON is UTF-8; a BOM may be ignored
    try:
        if b"&" in body or b"\\u0026" in body:  # an & in some text (as is, or written
            # \u0026): maybe HTML-escaped by the template: parsed, unescaped, checked.
            # Every text is read unescaped, so one text has one reading however written
            call = Webhook.model_validate(_unescape(_json_object(body)))
        else:  # the common case: parsed and checked in one pass (pydantic-core)
            call = Webhook.model_validate_json(body)
    except RecursionError:
        raise Malformed("nested too deep") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "json_invalid":
            raise Malformed("nested too deep" if "recursion" in err["msg"]
                            else "not JSON") from None
        if err["type"] == "model_type" and not err["loc"]:
            raise Malformed("not a JSON object") from None
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


# --------------------------------------------------------------------------- the JWT

JWT_LEEWAY_S = 30
"""Clock difference tolerated on ``exp`` (the provider signs just before sending)."""
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
EC_ALGORITHMS = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
RSA_ALGORITHMS = ("RS256", "RS384", "RS512")


class JwtRefused(Exception):
    """A bearer JWT the relay will not accept; ``reason`` is the refusal's kind."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        """``bad_jwt`` (not ours, malformed, wrong algorithm), ``stale_jwt`` (outside its
        time window) or ``unbound_jwt`` (its claims are not this call)."""


@dataclass(slots=True)
class JwtAccepted:
    """A JWT that passed: the store keeps ``replay_key`` for ``replay_ttl_s`` and refuses
    it a second time. (Not frozen: one is made on every webhook, and a frozen dataclass
    costs three times as much to make.)"""

    replay_key: str
    replay_ttl_s: int


def bearer(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


_URLSAFE = bytes.maketrans(b"-_", b"+/")
_PAD = (b"", b"===", b"==", b"=")


def _b64(segment: str) -> bytes:
    """A base64url JWS segment, strictly: only the URL-safe alphabet, no padding.
    (``+``, ``/`` and ``=`` are refused here; after ``-_`` become ``+/``, binascii's strict
    mode refuses any other character, a misplaced pad and an impossible length.)"""
    if "+" in segment or "/" in segment or "=" in segment or not segment.isascii():
        raise ValueError("not base64url")
    return binascii.a2b_base64(segment.encode("ascii").translate(_URLSAFE)
                               + _PAD[len(segment) % 4], strict_mode=True)


_HEADER_CACHED = 512
"""The longest JWS header segment :func:`_algorithm` remembers (the template's is ~36)."""


def _algorithm(segment: str) -> str:
    """The accepted algorithm a JWS protected header names; :class:`JwtRefused` else.
    The provider's header is the same on every delivery: a short one is read once."""
    if len(segment) <= _HEADER_CACHED:
        return _cached_algorithm(segment)
    return _read_algorithm(segment)


def _read_algorithm(segment: str) -> str:
    try:
        header = json.loads(_b64(segment))
    except (ValueError, RecursionError):
        raise JwtRefused("bad_jwt", "not a JWT") from None
    alg = header.get("alg") if isinstance(header, dict) else None
    if not isinstance(alg, str) or alg not in (*HMAC_ALGORITHMS, *EC_ALGORITHMS,
                                               *RSA_ALGORITHMS):
        raise JwtRefused("bad_jwt", f"algorithm {str(alg)[:10]!r} not accepted here")
    if "crit" in header or "b64" in header:  # extensions we do not implement
        raise JwtRefused("bad_jwt", "a JWS extension (crit, b64) not accepted here")
    return alg


_cached_algorithm = functools.lru_cache(maxsize=32)(_read_algorithm)


@functools.cache
def _crypto() -> Any:
    """``cryptography``'s pieces the JWT needs, imported once (the relay's extra)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
    # each signature is checked over a digest hashlib made (cryptography's own hashing of
    # the input costs 5 us more a check: an OpenSSL digest looked up each time)
    digests = {bits: utils.Prehashed(d) for bits, d in (
        ("256", hashes.SHA256()), ("384", hashes.SHA384()), ("512", hashes.SHA512()))}
    return types.SimpleNamespace(
        InvalidSignature=InvalidSignature, ec=ec, rsa=rsa, dss=utils.encode_dss_signature,
        pkcs1=padding.PKCS1v15(), digests=digests,
        ecdsa={bits: ec.ECDSA(d) for bits, d in digests.items()})


def _kind(key: Any) -> str:
    """``ec``, ``rsa`` or ``secret`` for a key :func:`_verify_signature` takes, else ``""``
    (known by the key's class, once: an ``isinstance`` on cryptography's abstract classes
    costs a microsecond a call)."""
    kind = _KINDS.get(type(key))
    if kind is None:
        c = _crypto()
        kind = _KINDS[type(key)] = (
            "secret" if isinstance(key, bytes) else "ec" if isinstance(
                key, c.ec.EllipticCurvePublicKey) else "rsa" if isinstance(
                key, c.rsa.RSAPublicKey) else "")
    return kind


_KINDS: dict[type, str] = {}


def _verify_signature(alg: str, key: Any, signing_input: bytes, signature: bytes,
                      digest: bytes | None = None) -> bool:
    """Whether ``signature`` is ``alg``'s over ``signing_input`` with ``key`` (a secret for
    HS*, an EC or RSA public key object otherwise; a key of another kind never is).
    ``digest``: ``signing_input`` already hashed with ``alg``'s hash, if it was."""
    bits = alg[2:]
    kind = _kind(key)
    if alg in HMAC_ALGORITHMS:
        return kind == "secret" and hmac.compare_digest(
            hmac.new(key, signing_input, _HASHES[bits]).digest(), signature)
    if digest is None:
        digest = _HASHES[bits](signing_input).digest()
    c = _crypto()
    try:
        if alg in EC_ALGORITHMS:
            if not (kind == "ec" and key.curve.name == EC_ALGORITHMS[alg]):
                return False
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:  # JWS: r || s, fixed width
                return False
            der = c.dss(int.from_bytes(signature[:size], "big"),
                        int.from_bytes(signature[size:], "big"))
            key.verify(der, digest, c.ecdsa[bits])
            return True
        if kind == "rsa" and alg in RSA_ALGORITHMS:
            key.verify(signature, digest, c.pkcs1, c.digests[bits])
            return True
    except c.InvalidSignature:
        return False
    return False


def _decode(token: str, secrets: Sequence[bytes], keys: Sequence[Any]
            ) -> tuple[dict[str, Any], bytes]:
    """A compact JWS's claims, once its signature verifies under one of ``keys`` (ES*,
    RS*) or ``secrets`` (HS*), and the SHA-256 of its signing input (what the replay
    cache keeps: the signature itself is malleable). :class:`JwtRefused` otherwise."""
    signed, dot, encoded_signature = token.rpartition(".")
    header, dot2, payload = signed.partition(".")
    if not (dot and dot2) or "." in payload or not signed.isascii():
        raise JwtRefused("bad_jwt", "not a JWT")
    alg = _algorithm(header)
    try:
        signature = _b64(encoded_signature)
    except ValueError:
        raise JwtRefused("bad_jwt", "not a JWT") from None
    signing_input = signed.encode("ascii")
    sha256 = hashlib.sha256(signing_input).digest()  # the replay key's, and RS256's or ES256's
    digest = sha256 if alg[2:] == "256" else None
    for key in secrets if alg in HMAC_ALGORITHMS else keys:
        if _verify_signature(alg, key, signing_input, signature, digest):
            break
    else:
        raise JwtRefused("bad_jwt", "JWT signature not valid")
    try:
        claims = from_json(_b64(payload))  # UTF-8 JSON (pydantic-core's parser: a third
    except (ValueError, RecursionError):  # of json.loads's time here)
        raise JwtRefused("bad_jwt", "a JWT payload that is not JSON") from None
    if type(claims) is not dict:
        raise JwtRefused("bad_jwt", "a JWT payload that is not an object")
    return claims, sha256


_NUMBERS = (int, float)


def _time(value: Any) -> bool:
    """A JWT time: a number (not a bool) within ±10^12 s (not NaN, not an int too large
    for the float arithmetic that follows)."""
    return type(value) in _NUMBERS and -1e12 < value < 1e12


def _same(claim: Any, value: str) -> bool:
    """A claim, unescaped, equals the body's field (Handlebars HTML-escapes both alike:
    the body is unescaped by :func:`parse`). Never the claim's escaped text as such: a
    body escaped twice (``&amp;amp;``) would then match it, a text the provider never
    sent shown on the screens, and the genuine delivery refused as a replay."""
    if not isinstance(claim, str):
        return False
    try:
        return html.unescape(claim) == value
    except ValueError:  # a character reference too long to read: not the body's field
        return False


def verify_jwt(token: str, call: Webhook, *, secrets: Sequence[bytes], keys: Sequence[Any],
               now: float, window_s: int, max_lifetime_s: int) -> JwtAccepted:
    """Check a bearer JWT against ``call``: signed by one of ``keys`` (ES/RS) or
    ``secrets`` (HS), fresh, and bound to the call; :class:`JwtRefused` otherwise."""
    claims, sha256 = _decode(token, secrets, keys)
    for claim in ("exp", "iat"):
        if claim not in claims:
            raise JwtRefused("stale_jwt", f"no {claim!r} claim: not bounded in time")
    iat, exp, nbf = claims.get("iat"), claims.get("exp"), claims.get("nbf", 0)
    if not (_time(iat) and _time(exp) and _time(nbf)):
        raise JwtRefused("stale_jwt", "iat, exp and nbf must be times (seconds since 1970)")
    assert isinstance(iat, _NUMBERS) and isinstance(exp, _NUMBERS)
    if abs(now - iat) > window_s:
        raise JwtRefused("stale_jwt", f"issued {abs(now - iat):.0f} s "
                         f"{'before' if iat < now else 'after'} this machine's time (the "
                         f"window is ±{window_s} s; if every call says so, check this "
                         "machine's clock)")
    if exp - iat > max_lifetime_s:
        raise JwtRefused("stale_jwt", f"exp {exp - iat:.0f} s after iat (at most "
                         f"{max_lifetime_s} s)")
    if now > exp + JWT_LEEWAY_S:
        raise JwtRefused("stale_jwt", "expired")
    if now + JWT_LEEWAY_S < nbf:  # a time (checked above)
        raise JwtRefused("stale_jwt", "not valid yet (nbf)")
    poc = claims.get("poc")
    lang, priority = call.rendered("lang"), call.rendered("priority")
    # the common case at once: each claim the body's very text, or absent where it may be,
    # and no & in any (so unescaping changes none); anything else - an HTML-escaped claim,
    # one rendered from a value - is read below
    fields = (call.branch.id, call.ticketId, call.callId, call.poc.label, call.poc.id,
              call.queue.name, lang, priority)
    bound = type(poc) is dict and "&" not in "".join(fields) and (
        claims.get("branch"), claims.get("ticketId"), claims.get("callId", ""),
        poc.get("label"), poc.get("id", ""), claims.get("queue", call.queue.name),
        claims.get("lang", lang), claims.get("priority", priority)) == fields
    bound = bound or (
        _same(claims.get("branch"), call.branch.id)
        and _same(claims.get("ticketId"), call.ticketId)
        and _same(claims.get("callId", ""), call.callId)
        and isinstance(poc, dict) and _same(poc.get("label"), call.poc.label)
        and _same(poc.get("id", ""), call.poc.id)
        and ("queue" not in claims or _same(claims["queue"], call.queue.name))
        # what the screens show and say of it (templates before December 2026 leave them
        # out: then they are not bound)
        and ("lang" not in claims or _same(rendered(claims["lang"]), lang))
        and ("priority" not in claims or _same(rendered(claims["priority"]), priority)))
    if not bound:
        raise JwtRefused("unbound_jwt", "the JWT names another call (branch, ticketId, "
                         "callId, queue, poc, lang or priority differ from the body)")
    horizon = max(exp + JWT_LEEWAY_S, iat + window_s)
    return JwtAccepted("jwt:" + sha256.hex(),
                       max(1, int(horizon - now) + 1))


KEY_BITS = 2048
"""The template's RSA key: its PKCS#8 PEM as a JSON string fits the provider's 2,000
characters a secret (3072 bits would not), and checking RS256 costs the relay about a
third of ES256 (about 30 vs 90 us here: see benchmarks/bench_relay.py)."""


def new_key_pair() -> tuple[str, str]:
    """A new RS256 key pair (RSA, :data:`KEY_BITS`) as PEM: (private PKCS#8, public
    SubjectPublicKeyInfo)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


# --------------------------------------------------------------------------- templates

TEMPLATES = {"jwt": "webhook-template.json", "hmac": "webhook-template-hmac.json"}
"""The published templates: ``jwt`` (the default: bound and fresh) and ``hmac`` (weaker)."""


def template(kind: str = "jwt") -> dict[str, Any]:
    """A published webhook template (:data:`TEMPLATES`)."""
    text = resources.files(__package__).joinpath(TEMPLATES[kind]).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
