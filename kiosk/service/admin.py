"""What staff can do at the kiosk: the admin PIN, and the admin screen's facts.

The PIN is never stored: ``ui.admin_pin_hash`` holds ``pbkdf2_sha256$<iterations>$<salt>$
<hash>`` (``kiosk hash-pin`` prints one), and checks run in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from kiosk.errors import ConfigError

ITERATIONS = 200_000
SCHEME = "pbkdf2_sha256"
MIN_DIGITS = 6
"""Shortest PIN: 10^6 guesses, against 5 tries before the pad locks (see staff.py)."""


def hash_pin(pin: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """A storable hash of ``pin`` (:data:`MIN_DIGITS` to 12 digits)."""
    if not (pin.isdigit() and MIN_DIGITS <= len(pin) <= 12):
        raise ValueError(f"a PIN is {MIN_DIGITS} to 12 digits (0-9)")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    b64 = base64.urlsafe_b64encode
    return f"{SCHEME}${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_pin(pin: str, stored: str) -> bool:
    """Whether ``pin`` matches ``stored`` (a :func:`hash_pin` result)."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != SCHEME:
            raise ValueError(scheme)
        want = base64.urlsafe_b64decode(digest)
        got = hashlib.pbkdf2_hmac("sha256", pin.encode(), base64.urlsafe_b64decode(salt),
                                  int(iterations))
    except (ValueError, TypeError) as exc:
        raise ConfigError("(config)", "ui.admin_pin_hash",
                          "a hash printed by `kiosk hash-pin`") from exc
    return hmac.compare_digest(got, want)
