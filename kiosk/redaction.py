"""Secrets as text: what a usable API key looks like, and every form in which a secret
could leak into a line of text (so that it can be blotted out).

Light on purpose (standard library only): the logging set-up of every process, the config
loader and the API client use it.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Iterable

REDACTED = "[redacted]"
MIN_SECRET = 6
"""Shorter strings are not redacted (they would blot out ordinary words)."""
_TOKEN = re.compile(r"^[\x21-\x7e]+$")


def token_problem(value: str) -> str | None:
    """Why ``value`` is not a usable bearer token (one run of printable ASCII, no
    whitespace or control character inside), or None. Never quotes the value."""
    if not value:
        return "it is empty"
    if _TOKEN.match(value):
        return None
    if any(ch in "\r\n" for ch in value):
        return "it has a line break inside (one key, on one line, is expected)"
    if any(ch.isspace() for ch in value):
        return "it has a space or tab inside (one key, without spaces, is expected)"
    if not value.isascii():
        return "it has a non-ASCII character inside (a key is plain ASCII)"
    return "it has a control character inside"


def forms(secret: str) -> list[str]:
    """``secret`` and the escaped forms it takes in text: ``repr``, JSON, URL encoding,
    bytes' repr, base64 (with and without padding), longest first."""
    if len(secret) < MIN_SECRET:
        return []
    out = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1],
           urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
           urllib.parse.quote(secret)}
    raw = secret.encode("utf-8", "surrogatepass")
    out.add(repr(raw)[2:-1])
    b64 = base64.b64encode(raw).decode()
    out |= {b64, b64.rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    # each line of a multi-line secret is a secret too (an error may quote one line)
    out |= {part for part in re.split(r"[\r\n]+", secret) if len(part) >= MIN_SECRET}
    return sorted((s for s in out if len(s) >= MIN_SECRET), key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret replaced by :data:`REDACTED`."""
    for s in secrets:
        if s in text:
            text = text.replace(s, REDACTED)
    return text


def all_forms(*secrets: str) -> list[str]:
    """:func:`forms` of several secrets, longest first."""
    out: set[str] = set()
    for s in secrets:
        out.update(forms(s))
    return sorted(out, key=len, reverse=True)


def redact_url(value: str, *, url: bool = False) -> str:
    """``value`` as it may be quoted back (a config error): a URL without what may hold a
    secret: the user and password before ``@`` (``https://…@host``), the ``?query`` and the
    ``#fragment``. Also a malformed one: everything before the last ``@`` goes, so a
    password with a stray ``/`` or space in it goes too. Anything else is left alone,
    unless ``url`` says it is meant as a URL (a store's ``host:s3cret`` loses its "port")."""
    if "://" not in value and "@" not in value and not url:
        return value
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "", value
    if "@" in rest:
        rest = "…@" + rest.rpartition("@")[2]
    for mark in "?#":
        if mark in rest:
            rest = rest.partition(mark)[0] + mark + "…"
    # a port that is not a number may be a password (``https://user:s3cret``, no ``@``)
    authority, slash, path = rest.partition("/")
    host, colon, port = authority.rpartition(":")
    inside_ipv6 = "[" in host and "]" not in host  # that colon is the address's own
    if colon and port and not (port.isascii() and port.isdigit()) and not inside_ipv6:
        authority = f"{host}:…"
    return f"{scheme}{sep}{authority}{slash}{path}"


__all__ = ["MIN_SECRET", "REDACTED", "all_forms", "forms", "redact_url", "scrub",
           "token_problem"]
