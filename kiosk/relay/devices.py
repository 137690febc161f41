"""Who is who at the hub: the branch's devices, their roles, and the fleet token.

Every device of a branch (kiosk, greeter's tablet, calling screen) has one token, given in
``relay.devices`` (``relay.displays`` entries are devices of role ``display``, ids
``display-<n>``). A token opens one device and only its branch, and only what its role may
do (docs/hub.md, "Who is who")::

    route                                  kiosk  tablet  display  fleet token
    GET  /v1/branches/{b}/calls  (SSE)     yes    yes     yes      no
    POST /v1/branches/{b}/leases           yes    yes     403      no
    POST /v1/branches/{b}/tickets          yes    yes     403      no
    GET  /v1/branches/{b}/tickets?date=    yes    yes     yes      yes
    PUT  /v1/devices/{id}/state            own id only, any role   no
    GET  /v1/fleet, /fleet                 no     no      no       yes

The routes call :meth:`Access.device` (a device's request: the :class:`Device`, or
:class:`Refused` with 401 for no or an unknown token, 403 for another branch, another
device or a role that may not), :meth:`Access.reader` (the ledger: a device of the branch
or the fleet token) and :meth:`Access.fleet` (the fleet token only).

A device token is found by its SHA-256 (a lookup whose timing can only say something of
the hash, and a hash's neighbour tells nothing of a token without a preimage: constant time
in the token, and as fast with 2,000 devices as with 2); the fleet tokens (one, or two
during a rotation) are compared with :func:`hmac.compare_digest`, all of them. Tokens are
never logged, never in a repr, never in an answer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Literal

Role = Literal["kiosk", "tablet", "display"]
"""A device's role."""
ROLES: tuple[Role, ...] = ("kiosk", "tablet", "display")
"""Every role, as the config spells it."""
DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
"""What a device id looks like."""
MIN_TOKEN = 16
"""The shortest device or fleet token accepted (characters)."""


class Action(Enum):
    """What a request asks the hub to do (one per route of the table above)."""

    CALLS = "read the calls"
    LEASE = "take numbers"
    REPORT = "report tickets"
    LEDGER = "read the tickets"
    STATE = "report its state"
    FLEET = "read the fleet"


MAY: Mapping[Role, frozenset[Action]] = {
    "kiosk": frozenset({Action.CALLS, Action.LEASE, Action.REPORT, Action.LEDGER,
                        Action.STATE}),
    "tablet": frozenset({Action.CALLS, Action.LEASE, Action.REPORT, Action.LEDGER,
                         Action.STATE}),
    "display": frozenset({Action.CALLS, Action.LEDGER, Action.STATE}),
}
"""What each role may do (:data:`Action.STATE` only for the device's own id)."""


@dataclass(frozen=True)
class Device:
    """One device of a branch, as the relay's config names it."""

    id: str
    """Unique in the relay: ``[A-Za-z0-9_-]{1,40}``."""
    branch: str
    """The branch it belongs to (the provider's branch id)."""
    role: Role
    """``kiosk``, ``tablet`` or ``display``."""

    def may(self, action: Action) -> bool:
        """Whether this device's role may do ``action``."""
        return action in MAY[self.role]


class Refused(Exception):
    """A request the hub does not serve: its HTTP status and our own words (never the
    token)."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def bearer(authorization: str | bytes | None) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    raw = authorization.encode("latin-1") if isinstance(authorization, str) else authorization
    scheme, _, token = raw.strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        return None
    return token


class Access:
    """The devices' and the fleet's tokens, and the one place a request is let in."""

    def __init__(self, devices: Mapping[str, Device], fleet_tokens: Iterable[bytes] = ()
                 ) -> None:
        self._devices: dict[bytes, Device] = {_digest(t.encode()): d
                                              for t, d in devices.items()}
        self._fleet = tuple(_digest(t) for t in fleet_tokens)
        self.by_id: dict[str, Device] = {d.id: d for d in devices.values()}
        """Every configured device by id (a device with two tokens appears once)."""

    def __repr__(self) -> str:
        return f"Access({len(self.by_id)} devices, fleet token: {bool(self._fleet)})"

    def _known(self, token: bytes | None) -> Device | None:
        if token is None:
            return None
        return self._devices.get(_digest(token))  # by SHA-256: no timing of the token

    def is_fleet(self, authorization: str | bytes | None) -> bool:
        """Whether the header bears the fleet token (every configured one compared)."""
        token = bearer(authorization)
        if token is None or not self._fleet:
            return False
        digest = _digest(token)
        ok = False
        for known in self._fleet:
            ok |= hmac.compare_digest(digest, known)
        return ok

    def device(self, authorization: str | bytes | None, action: Action, *,
               branch: str | None = None, device_id: str | None = None) -> Device:
        """The device a request comes from, allowed to do ``action`` on ``branch`` (or, for
        :data:`Action.STATE`, as ``device_id``); :class:`Refused` otherwise."""
        found = self._known(bearer(authorization))
        if found is None:
            raise Refused(401, "a device token is required")
        if branch is not None and found.branch != branch:
            raise Refused(403, "this token is for another branch")
        if device_id is not None and found.id != device_id:
            raise Refused(403, "this token is for another device")
        if not found.may(action):
            raise Refused(403, f"a {found.role} may not {action.value}")
        return found

    def reader(self, authorization: str | bytes | None, branch: str) -> Device | None:
        """A ledger reader of ``branch``: its device, or None for the fleet token;
        :class:`Refused` otherwise."""
        if self.is_fleet(authorization):
            return None
        return self.device(authorization, Action.LEDGER, branch=branch)

    def fleet(self, authorization: str | bytes | None) -> None:
        """Return when the header bears the fleet token; :class:`Refused` (401) otherwise
        (a device token is no fleet token: 403)."""
        if self.is_fleet(authorization):
            return
        if self._known(bearer(authorization)) is not None:
            raise Refused(403, "a device token does not open the fleet")
        raise Refused(401, "the fleet token is required")


def access_of(devices: Mapping[str, Device], displays: Mapping[str, str],
              fleet_tokens: Iterable[bytes] = ()) -> Access:
    """:class:`Access` for the settings' ``devices`` (token -> device) and the older
    ``displays`` (token -> branch; each a display ``display-<n>`` unless ``devices``
    already holds its token)."""
    merged = dict(devices)
    for n, (token, branch) in enumerate(displays.items()):
        merged.setdefault(token, Device(f"display-{n}", branch, "display"))
    return Access(merged, fleet_tokens)
