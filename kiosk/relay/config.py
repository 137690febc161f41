"""The relay's settings: the ``relay:`` section of the kiosk's YAML file, validated here.

The relay stands apart from the kiosk (of the rest of ``kiosk`` it imports only the
foundation: errors, secret files, loopback checks, redaction, i18n), so it validates its
own section with its own models, and reads only two keys besides it:
``kiosk.data_dir`` (where the SQLite store goes by default) and ``kiosk.timezone`` (the
day a call belongs to). Every other key of the file is the kiosk's business and ignored.

::

    relay:
      listen: 127.0.0.1:8787              # host:port (behind the TLS proxy)
      webhook_secret_file: /etc/kiosk/webhook-secret   # 0600; one secret a line (two: rotation)
                                          # (the HMAC template's; or jwt_public_key_file)
      store: sqlite                       # or redis://host:port/db
      sqlite_sync: normal                 # full: also survive a power cut (slower)
      require_jwt: false                  # only calls with the template's bound, fresh JWT
      history: 10                         # calls a screen gets when it connects afresh
      keepalive_s: 15                     # SSE comment this often on a quiet stream
      max_streams_per_token: 8            # streams one device may hold (429 beyond)
      max_numbers_per_hour: 3000          # a device's reserve of numbers, refilled at this
                                          # many an hour (429 beyond; kiosk.relay.quota)
      max_reports_per_hour: 3000          # the same for its ticket reports (429: sent later)
      send_timeout_s: 30                  # a send waiting this long resets the stream (a send
                                          # waits only once the buffers on both ends are full)
      metrics_token_file: /etc/kiosk/metrics-token   # 0600; /metrics then needs this bearer
                                          # token (without one: loopback peers only)
      # connections (kiosk.relay.guard): nobody holds the relay down
      max_connections: null               # default: the open-file limit less 192
      header_timeout_s: 10                # from accept (or the last answer) to whole headers
      body_timeout_s: 10                  # from the headers to the whole body
      keepalive_idle_s: 5                 # an idle keep-alive connection is closed after this
      gc_freeze_s: 5                      # long-lived objects frozen out of the garbage
                                          # collector's way this often (0: Python's default)
      gc_full_pass_s: 3600                # everything collected this often (kiosk.relay.collector)
      devices:                            # the branch's devices, one token each (docs/hub.md)
        - {id: lobby-1, branch: 652720d479497a1b62df288b, role: kiosk,
           token_file: /etc/kiosk/device-lobby-1}
        - {id: greeter, branch: 652720d479497a1b62df288b, role: tablet,
           token_file: /etc/kiosk/device-greeter}
      displays:                           # still read: calling screens (role display,
        - {branch: 652720d479497a1b62df288b, token_file: /etc/kiosk/display-providencia}
                                          # ids display-0, display-1, ...)
      fleet_token_file: /etc/kiosk/fleet-token   # 0600; the operations team's bearer token
      heartbeat_s: 30                     # the devices' heartbeat interval (offline: 3 missed)
      # who may send calls, and whose day it is
      jwt_public_key_file: /etc/kiosk/webhook-jwt.pub  # PEM public key(s) of the provider's
                                          # #jwt (RS256/ES256); the private key stays there
      jwt_window_s: 300                   # a JWT's iat within this of now; replays kept as long
      jwt_max_lifetime_s: 900             # exp at most this long after iat
      allow_unsigned: false               # development only: unsigned calls from this machine
      branches:                           # a branch's own time zone (its day of calls)
        - {id: 652720d479497a1b62df288b, timezone: America/Santiago}

The relay refuses to start without a key to check calls with (``webhook_secret_file`` or
``jwt_public_key_file``) unless ``allow_unsigned`` (loopback only), and with
``require_jwt`` but no key for the JWT (:func:`check_keys`).

A bad file raises :class:`RelayConfigError` naming the file, the key and what was
expected; ``kiosk relay`` prints it and exits 2. Secrets and tokens are read into
:class:`RelaySettings` and never appear in a repr or a message.
"""

from __future__ import annotations

import ipaddress
import re
import resource
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kiosk.errors import ConfigError
from kiosk.netloc import Network, is_loopback
from kiosk.redaction import redact_url
from kiosk.relay.devices import DEVICE_ID, MIN_TOKEN, Device, Role
from kiosk.relay.quota import MAX_COUNT, MIN_REPORTS
from kiosk.secretfile import read_private_lines

DEFAULT_LISTEN = "127.0.0.1:8787"
MAX_BODY = 64 * 1024
"""Largest webhook body accepted (413 above)."""
FD_RESERVE = 192
"""Open files kept for everything but client connections: the store (SQLite's files, the
Redis connections), logs, the listening socket, the event loop's own, and the connections
evicted in one turn of the loop, whose files close on the next (at most
``kiosk.relay.guard.ACCEPT_BATCH``). ``relay.max_connections`` may be at most the
open-file limit less this."""
MIN_CONNECTIONS = 16
"""The fewest connections a relay can work with."""


class RelayConfigError(ConfigError):
    """The relay's config is unusable: names the file, the key and what was expected."""


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _branch_id(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", v):
        raise ValueError("a branch id: 1-64 letters, digits, '_', '.' or '-'")
    return v


def _timezone(v: str | None) -> str | None:
    if v is not None:
        _zone(v)
    return v


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
"""IPv4 addresses as an IPv6 socket shows them."""


def _trusted_network(item: str) -> Network:
    """One ``relay.trusted_proxies`` entry as a network; ValueError saying what is wrong
    with it (not an address, an IPv4-mapped form, wider than a /16 or an IPv6 /48)."""
    try:
        net = ipaddress.ip_network(item.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{item!r} is not an address or a network (10.0.0.2, "
                         "10.0.0.0/24, fd00::/64)") from None
    if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(_MAPPED):
        raise ValueError(f"{item!r}: write an IPv4 proxy as IPv4 (10.0.0.2)")
    if net.prefixlen < (16 if net.version == 4 else 48):
        raise ValueError(f"{item!r} is too wide (at most a /16, or an IPv6 /48): "
                         "anyone in it could name any address and dodge the limits")
    return net


def _networks(v: list[str]) -> list[str]:
    for item in v:
        _trusted_network(item)
    return v


class DisplayConfig(_M):
    """One calling screen's access: its token sees only its branch."""

    branch: str
    """The branch's provider id, as the webhook's ``branch.id`` carries it."""
    token_file: Path
    """File holding the screen's token (mode 0600; one token a line, two during a change)."""
    timezone: str | None = None
    """The branch's IANA time zone (its day of calls), if ``relay.branches`` does not say."""

    _branch = field_validator("branch")(_branch_id)
    _tz = field_validator("timezone")(_timezone)


class DeviceConfig(_M):
    """One device of a branch (docs/hub.md): its token opens only its branch, and only what
    its role may do."""

    id: str
    """Unique in the relay: 1-40 letters, digits, '_' or '-' (``lobby-1``)."""
    branch: str
    """The branch's provider id."""
    role: Role
    """``kiosk``, ``tablet`` or ``display`` (a display takes no numbers)."""
    token_file: Path
    """File holding the device's token (mode 0600; one token a line, two during a change)."""

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not DEVICE_ID.fullmatch(v):
            raise ValueError("a device id: 1-40 letters, digits, '_' or '-'")
        return v

    _branch = field_validator("branch")(_branch_id)


class BranchConfig(_M):
    """A branch's own settings: the time zone whose midnight starts its day of calls."""

    id: str
    """The branch's provider id (``branch.id`` in the webhook)."""
    timezone: str
    """IANA zone, e.g. ``America/Bogota``: a call's day (history, replay, re-calls) is the
    branch's local day."""

    _id = field_validator("id")(_branch_id)
    _tz = field_validator("timezone")(_timezone)


class RelaySection(_M):
    """The ``relay:`` section."""

    listen: str = DEFAULT_LISTEN
    """``host:port`` to listen on; ``--host``/``--port`` override it."""
    webhook_secret_file: Path | None = None
    """File with the webhook secret(s), one a line, mode 0600: the HMAC template's key (and
    HS256 JWTs'). The relay needs it or ``jwt_public_key_file`` (else it will not start)."""
    store: str = "sqlite"
    """``sqlite`` (a file in ``kiosk.data_dir``) or ``redis://host:port/db`` for replicas."""
    sqlite_path: Path | None = None
    """The SQLite file; default ``<kiosk.data_dir>/relay.sqlite3``."""
    sqlite_sync: Literal["normal", "full"] = "normal"
    """``normal``: every call is committed to the WAL before its 2xx, so it survives a
    crash or a kill -9 of the relay (not a power cut of its machine); ``full``: also
    flushed to the disk before the 2xx (survives a power cut; each batch of calls then
    waits for the disk: see benchmarks/bench_relay.py)."""
    require_jwt: bool = False
    """Take only calls with a bound, fresh bearer JWT (the default template's, checked with
    ``jwt_public_key_file`` or, HS256, the webhook secret): an HMAC signature alone is
    refused. Needs one of those keys (else the relay will not start)."""
    history: int = Field(10, ge=0, le=200)
    """How many of the day's last calls a screen gets when it connects without
    ``Last-Event-ID``."""
    keepalive_s: float = Field(15.0, gt=0, le=300)
    """Seconds between SSE keep-alive comments on a quiet stream."""
    client_buffer: int = Field(256, ge=8, le=100_000)
    """Calls queued for one slow screen before it is disconnected (it then resumes with
    ``Last-Event-ID``, losing nothing)."""
    max_streams_per_token: int = Field(8, ge=1, le=10_000)
    """Streams one device (its token) may hold open at once; one more is answered 429 with
    ``Retry-After``. Per relay process: with Redis and N replicas a token may hold up to N
    times this many."""
    max_numbers_per_hour: int = Field(3000, ge=MAX_COUNT, le=10_000_000)
    """A device's reserve of ticket numbers (:mod:`kiosk.relay.quota`): full at start and
    refilled at this many an hour; a lease beyond it is answered 429 with ``Retry-After``
    (the device numbers from its blocks, then offline). Its first block of each sequence
    each day is not charged. At least one largest lease (1,000). Per relay process, like
    ``max_streams_per_token``."""
    max_reports_per_hour: int = Field(3000, ge=MIN_REPORTS, le=10_000_000)
    """A device's reserve of ticket reports (:class:`kiosk.relay.quota.ReportQuota`), one
    a report: full at start and refilled at this many an hour; a report beyond it is
    answered 429 with ``Retry-After`` and the device's outbox sends it later (a kiosk sends
    one or two a ticket). Per relay process."""
    send_timeout_s: float = Field(30.0, gt=0, le=3600)
    """Seconds one send to a screen may wait before its stream is reset. A send waits only
    once the socket's send buffer, the screen's receive window and the server's buffer are
    full, so a screen that stopped reading is reset that long after they filled (at
    keep-alive rate that can take days), not that long after it stopped."""
    timezone: str | None = None
    """IANA zone whose midnight starts a new day of calls; default ``kiosk.timezone``,
    else UTC."""
    devices: list[DeviceConfig] = Field(default_factory=list)
    """The branch's devices: ``{id, branch, role, token_file}`` each, one token each."""
    displays: list[DisplayConfig] = Field(default_factory=list)
    """The calling screens: ``{branch, token_file}`` each (devices of role ``display``, ids
    ``display-<n>``, ``n`` the entry's index)."""
    fleet_token_file: Path | None = None
    """File with the operations team's bearer token (mode 0600; one a line, two during a
    change): ``/v1/fleet``, ``/fleet`` and every branch's ledger. Without it, nobody reads
    the fleet."""
    heartbeat_s: float = Field(30.0, gt=0, le=3600)
    """The devices' heartbeat interval in seconds: a device is offline after three missed."""
    metrics_token_file: Path | None = None
    """File with the bearer token ``/metrics`` demands (mode 0600; one token a line, two
    during a change). Without it ``/metrics`` answers only loopback peers whose request no
    proxy forwarded."""

    # -- who may send calls, and whose day it is --
    jwt_public_key_file: Path | None = None
    """PEM file with the public key(s) the provider's ``#jwt`` helper signs with (RS256 on a
    2048+ bit RSA key, as ``kiosk webhook-keys`` makes it, or ES256 on P-256; two keys, one
    after the other, during a change). The relay holds only the public key: a private key
    here stops start-up."""
    jwt_window_s: int = Field(300, ge=30, le=3600)
    """A JWT's ``iat`` must be within this many seconds of the relay's clock (either way),
    and a JWT is refused once it is older: so a captured one can be replayed only in this
    window, and the replay cache (in the store) keeps every JWT seen that long."""
    jwt_max_lifetime_s: int = Field(900, ge=10, le=3600)
    """A JWT whose ``exp`` is more than this many seconds after its ``iat`` is refused."""
    trusted_proxies: list[str] = Field(default_factory=list, max_length=64)
    """Addresses (or networks, ``10.0.0.0/24``) of the reverse proxies in front of the
    relay on other machines (replicas behind Caddy on the front machine; at most a /16 or
    an IPv6 /48 each): the last
    ``X-Forwarded-For`` entry they add is the client's address for the per-address limits
    (the phone pages' rate, the fleet page's wrong tokens). This machine's own proxy is
    always believed. It never makes a request "local" (``allow_unsigned``, ``/metrics``)."""
    allow_unsigned: bool = False
    """Development only: accept unsigned webhooks from this machine (a loopback peer whose
    request carries no ``Forwarded``, ``X-Forwarded-For`` or ``X-Real-IP``). Only on a
    loopback ``listen``; logged loudly at start."""
    branches: list[BranchConfig] = Field(default_factory=list)
    """Per-branch settings, ``{id, timezone}``: a branch not listed (nor given a
    ``timezone`` in ``displays``) uses ``relay.timezone``."""

    # ---- connections: nobody holds the relay down (kiosk.relay.guard)
    max_connections: int | None = Field(None, ge=MIN_CONNECTIONS, le=1_000_000)
    """Open connections at most (screens' streams, webhooks, health checks, and those
    still sending their request). Default: the process's open-file limit (systemd's
    ``LimitNOFILE``) less 192; more than that stops start-up. At the cap a new connection
    takes the place of the one that has waited longest for its request to arrive; when
    every connection is busy it is answered 503."""
    header_timeout_s: float = Field(10.0, gt=0, le=300)
    """Seconds from a connection's accept (or the end of its last answer) to the end of
    its request's headers; a connection that sends them slower is closed."""
    body_timeout_s: float = Field(10.0, gt=0, le=300)
    """Seconds from the end of a request's headers to the end of its body (a webhook's);
    a slower body closes the connection."""
    keepalive_idle_s: float = Field(5.0, gt=0, le=300)
    """Seconds an idle keep-alive connection is kept open after an answer."""
    gc_freeze_s: float = Field(5.0, ge=0, le=3600)
    """Seconds between two freezes of the long-lived objects out of the garbage
    collector's way (:mod:`kiosk.relay.collector`); 0: Python's default collection."""
    gc_full_pass_s: float = Field(3600.0, ge=60, le=86400)
    """Seconds between two full garbage-collection passes (frozen objects included)."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        if v != "sqlite" and not re.fullmatch(  # [user:password@]host[:port][/db]
                r"rediss?://([^\s/@]*@)?(\[[0-9A-Fa-f:.]+\]|[^\s:/@?#\[\]]+)(:\d{1,5})?(/\d+)?",
                v):
            raise ValueError("'sqlite' or a Redis URL like redis://127.0.0.1:6379/0")
        return v

    _proxies = field_validator("trusted_proxies")(_networks)
    _tz = field_validator("timezone")(_timezone)


class _KioskPart(BaseModel):
    """The two keys of the kiosk's own section the relay reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    data_dir: Path = Path("/var/lib/kiosk")
    timezone: str = "UTC"


class _File(BaseModel):
    """The whole file as the relay sees it: its section and two kiosk keys."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    relay: RelaySection = RelaySection()
    kiosk: _KioskPart = _KioskPart()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("an IANA time zone such as 'America/Santiago'") from exc


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8787`` for IPv6) into its parts; ValueError when malformed."""
    m = re.fullmatch(r"\[?([^\[\]\s]*?)\]?:(\d{1,5})", value.strip())
    if not m or not m.group(1) or not 0 < int(m.group(2)) < 65536:
        raise ValueError("host:port, e.g. 127.0.0.1:8787")
    return m.group(1), int(m.group(2))


@dataclass(frozen=True)
class RelaySettings:
    """Everything a relay needs, secrets read. Build it with :func:`load_settings` from a
    file, or directly in tests."""

    secrets: tuple[bytes, ...] = field(default=(), repr=False)
    """Webhook secrets (two during a rotation): the HMAC signature's keys and HS256's."""
    displays: dict[str, str] = field(default_factory=dict, repr=False)
    """Display token -> the branch it may read (each a device of role ``display``, named
    ``display-<n>``, unless :attr:`devices` holds its token)."""
    devices: dict[str, Device] = field(default_factory=dict, repr=False)
    """Device token -> its device (``relay.devices`` and ``relay.displays``)."""
    fleet_tokens: tuple[bytes, ...] = field(default=(), repr=False)
    """The fleet's bearer tokens (two during a rotation); empty: no fleet access."""
    heartbeat_s: float = 30.0
    """The devices' heartbeat interval (offline after three missed)."""
    metrics_tokens: tuple[bytes, ...] = field(default=(), repr=False)
    """Bearer tokens ``/metrics`` accepts; empty: it answers loopback peers only."""
    store: str = "sqlite"
    """``sqlite`` or a Redis URL."""
    sqlite_path: Path = Path("relay.sqlite3")
    """The SQLite store's file."""
    sqlite_sync: str = "normal"
    """``normal`` or ``full`` (see ``relay.sqlite_sync``)."""
    require_jwt: bool = False
    """Demand a bound, fresh bearer JWT (an HMAC signature alone is refused)."""
    history: int = 10
    """Calls a fresh screen gets."""
    keepalive_s: float = 15.0
    """Seconds between SSE keep-alive comments."""
    client_buffer: int = 256
    """Calls queued for one screen before it is dropped as too slow."""
    max_streams_per_token: int = 8
    """Streams one device may hold open at once (this process)."""
    max_numbers_per_hour: int = 3000
    """A device's reserve of numbers, refilled at this many an hour (this process)."""
    max_reports_per_hour: int = 3000
    """A device's reserve of ticket reports, refilled at this many an hour (this process)."""
    send_timeout_s: float = 30.0
    """Seconds one send may wait (buffers full on both ends) before the stream is reset."""
    timezone: str = "UTC"
    """The zone whose midnight starts a new day (a branch without its own)."""
    max_connections: int | None = None
    """Open connections at most; None: the open-file limit less :data:`FD_RESERVE`."""
    header_timeout_s: float = 10.0
    """Accept (or last answer) to the end of the request's headers, at most."""
    body_timeout_s: float = 10.0
    """End of headers to the end of the body, at most."""
    keepalive_idle_s: float = 5.0
    """An idle keep-alive connection is closed after this."""
    gc_freeze_s: float = 5.0
    """Long-lived objects frozen out of the collector's way this often (``kiosk relay``)."""
    gc_full_pass_s: float = 3600.0
    """A full garbage-collection pass this often."""
    host: str = "127.0.0.1"
    """Where ``kiosk relay`` listens."""
    port: int = 8787
    """Its port."""

    # -- who may send calls, and whose day it is --
    jwt_keys: tuple[Any, ...] = field(default=(), repr=False)
    """Public keys (``cryptography`` EC or RSA key objects) of the provider's ``#jwt``."""
    jwt_window_s: int = 300
    """A JWT's ``iat`` within this of now; seen JWTs are kept this long (replays)."""
    jwt_max_lifetime_s: int = 900
    """Longest ``exp - iat`` accepted."""
    allow_unsigned: bool = False
    """Development: unsigned webhooks from a local peer (no forwarding header) accepted."""
    trusted_proxies: tuple[Network, ...] = ()
    """The reverse proxies on other machines whose ``X-Forwarded-For`` names the client
    (``relay.trusted_proxies``; this machine's is always believed)."""
    zones: dict[str, str] = field(default_factory=dict)
    """Branch id -> its IANA time zone (others: :attr:`timezone`)."""

    def zone_of(self, branch: str) -> str:
        """The time zone whose midnight starts ``branch``'s day."""
        return self.zones.get(branch, self.timezone)


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def settings_from_mapping(data: Any, file: str) -> RelaySettings:
    """Validate parsed YAML (the whole kiosk file) into :class:`RelaySettings`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RelayConfigError(file, "", "a YAML mapping of keys at the top")
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        kind = err.get("type", "")
        msg = ("unknown key (check its spelling and place)" if kind == "extra_forbidden"
               else "a value (this key is required)" if kind == "missing"
               else str(err.get("msg", "invalid value")).removeprefix("Value error, "))
        value = err.get("input")
        if kind not in ("extra_forbidden", "missing") and isinstance(value, str | int | float):
            if err["loc"][-1:] == ("store",) and isinstance(value, str):
                value = redact_url(value, url=True)  # a Redis URL's password never echoed
            msg += f" (got {value!r})"
        raise RelayConfigError(file, _key_path(err["loc"]) or "(top level)", msg) from None
    r = parsed.relay
    tz = r.timezone or parsed.kiosk.timezone
    try:
        _zone(tz)
    except ValueError as exc:
        raise RelayConfigError(file, "kiosk.timezone", str(exc)) from None
    secrets: tuple[bytes, ...] = ()
    if r.webhook_secret_file is not None:
        lines = read_private_lines(file, "relay.webhook_secret_file",
                                   r.webhook_secret_file.expanduser(), "webhook secret",
                                   error=RelayConfigError)
        if len(lines) > 2:
            raise RelayConfigError(file, "relay.webhook_secret_file",
                                   f"one or two secrets, one a line (found {len(lines)})")
        if any(len(s) < 16 for s in lines):
            raise RelayConfigError(file, "relay.webhook_secret_file",
                                   "secrets of at least 16 characters")
        secrets = tuple(s.encode() for s in lines)
    displays, devices = _devices(file, r)
    metrics_tokens: tuple[bytes, ...] = ()
    if r.metrics_token_file is not None:
        lines = read_private_lines(file, "relay.metrics_token_file",
                                   r.metrics_token_file.expanduser(), "metrics token",
                                   error=RelayConfigError)
        if len(lines) > 2 or any(len(t) < 16 for t in lines):
            raise RelayConfigError(file, "relay.metrics_token_file",
                                   "one or two tokens of at least 16 characters, one a line")
        metrics_tokens = tuple(t.encode() for t in lines)
    fleet_tokens: tuple[bytes, ...] = ()
    if r.fleet_token_file is not None:
        key = "relay.fleet_token_file"
        lines = read_private_lines(file, key, r.fleet_token_file.expanduser(), "fleet token",
                                   error=RelayConfigError)
        if len(lines) > 2 or any(len(t) < MIN_TOKEN for t in lines):
            raise RelayConfigError(file, key, f"one or two tokens of at least {MIN_TOKEN} "
                                   "characters, one a line")
        if any(t in devices for t in lines):
            raise RelayConfigError(file, key, "a token of its own (a device uses the same "
                                   "one: it would open the whole fleet)")
        fleet_tokens = tuple(t.encode() for t in lines)
    jwt_keys: tuple[Any, ...] = ()
    if r.jwt_public_key_file is not None:
        jwt_keys = read_public_keys(file, "relay.jwt_public_key_file",
                                    r.jwt_public_key_file.expanduser())
    zones: dict[str, str] = {}
    for key, branch, zone in [*((f"relay.branches[{i}].timezone", b.id, b.timezone)
                                for i, b in enumerate(r.branches)),
                              *((f"relay.displays[{i}].timezone", d.branch, d.timezone)
                                for i, d in enumerate(r.displays) if d.timezone)]:
        if zones.setdefault(branch, zone) != zone:
            raise RelayConfigError(file, key, f"one time zone per branch ({branch} is "
                                   f"{zones[branch]} elsewhere in the file)")
    host, port = parse_listen(r.listen)
    sqlite = (r.sqlite_path or parsed.kiosk.data_dir / "relay.sqlite3").expanduser()
    return RelaySettings(secrets=secrets, displays=displays, devices=devices,
                         fleet_tokens=fleet_tokens, heartbeat_s=r.heartbeat_s,
                         metrics_tokens=metrics_tokens,
                         store=r.store, sqlite_path=sqlite,
                         sqlite_sync=r.sqlite_sync,
                         require_jwt=r.require_jwt, history=r.history,
                         keepalive_s=r.keepalive_s, client_buffer=r.client_buffer,
                         max_streams_per_token=r.max_streams_per_token,
                         max_numbers_per_hour=r.max_numbers_per_hour,
                         max_reports_per_hour=r.max_reports_per_hour,
                         send_timeout_s=r.send_timeout_s,
                         max_connections=r.max_connections,
                         header_timeout_s=r.header_timeout_s,
                         body_timeout_s=r.body_timeout_s,
                         keepalive_idle_s=r.keepalive_idle_s,
                         gc_freeze_s=r.gc_freeze_s, gc_full_pass_s=r.gc_full_pass_s,
                         timezone=tz, host=host, port=port,
                         jwt_keys=jwt_keys, jwt_window_s=r.jwt_window_s,
                         jwt_max_lifetime_s=r.jwt_max_lifetime_s,
                         allow_unsigned=r.allow_unsigned, zones=zones,
                         trusted_proxies=tuple(map(_trusted_network, r.trusted_proxies)))


def _devices(file: str, r: RelaySection) -> tuple[dict[str, str], dict[str, Device]]:
    """The display tokens (token -> branch) and every device's tokens (token -> device)
    of ``relay.devices`` and ``relay.displays``: ids unique, no token shared by two
    devices (two displays of one branch may share one: one screen, as before)."""
    entries = [(f"relay.devices[{i}]", Device(d.id, d.branch, d.role), d.token_file)
               for i, d in enumerate(r.devices)]
    entries += [(f"relay.displays[{i}]", Device(f"display-{i}", d.branch, "display"),
                 d.token_file) for i, d in enumerate(r.displays)]
    displays: dict[str, str] = {}
    devices: dict[str, Device] = {}
    ids: dict[str, str] = {}
    owner: dict[str, str] = {}  # token -> the entry that holds it
    for where, device, token_file in entries:
        if device.id in ids:
            raise RelayConfigError(file, f"{where}.id" if where.startswith("relay.devices")
                                   else where, f"a device id of its own ({device.id!r} is "
                                   f"also {ids[device.id]}'s)")
        ids[device.id] = where
        key = f"{where}.token_file"
        for token in read_private_lines(file, key, token_file.expanduser(), "device token",
                                        error=RelayConfigError):
            if len(token) < MIN_TOKEN:
                raise RelayConfigError(file, key, f"tokens of at least {MIN_TOKEN} characters")
            other = devices.get(token)
            if other is not None and not (other.id.startswith("display-")  # both displays:
                                          and where.startswith("relay.displays")  # one screen
                                          and owner[token].startswith("relay.displays")
                                          and other.branch == device.branch):
                raise RelayConfigError(file, key, f"a token of its own (device {other.id!r} "
                                       "uses the same one)")
            if other is None:
                devices[token] = device
                owner[token] = where
            if device.role == "display" and where.startswith("relay.displays"):
                displays[token] = device.branch
    return displays, devices


def load_settings(path: str | Path) -> RelaySettings:
    """Read the kiosk's YAML file at ``path`` and validate its ``relay:`` section."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RelayConfigError(str(p), "", "a config file here (none found)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RelayConfigError(str(p), "",
                               f"a readable UTF-8 file ({exc.__class__.__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RelayConfigError(str(p), where, "valid YAML") from None
    return settings_from_mapping(data, str(p))


def read_public_keys(file: str, key: str, path: Path) -> tuple[Any, ...]:
    """The PEM public keys in ``path`` (EC P-256/384/521 or RSA of 2048+ bits), for the
    JWT; :class:`RelayConfigError` naming ``key`` otherwise (and for a private key: the
    relay must never hold the provider's signing key)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise RelayConfigError(file, key, f"a readable PEM file at {path} "
                               f"({exc.__class__.__name__})") from None
    if "PRIVATE KEY" in text:
        raise RelayConfigError(file, key, f"a public key: {path} holds a private key (keep "
                               "it in the provider's secret only; see packaging/README.md)")
    blocks = re.findall(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", text,
                        flags=re.S)
    if not 1 <= len(blocks) <= 2:
        raise RelayConfigError(file, key, f"one or two PEM public keys ('-----BEGIN PUBLIC "
                               f"KEY-----') in {path} (found {len(blocks)})")
    keys: list[Any] = []
    for block in blocks:
        try:
            public = load_pem_public_key(block.encode())
        except ValueError:
            raise RelayConfigError(file, key, f"a valid PEM public key in {path}") from None
        if isinstance(public, rsa.RSAPublicKey) and public.key_size < 2048:
            raise RelayConfigError(file, key, "an RSA key of at least 2048 bits")
        if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise RelayConfigError(file, key, "an EC (ES256) or RSA (RS256) public key")
        keys.append(public)
    return tuple(keys)


def check_keys(settings: RelaySettings, file: str) -> None:
    """Refuse settings that would let unsigned calls in: no key to check a call with
    (unless ``allow_unsigned``), or ``require_jwt`` with no key for the JWT."""
    has_key = bool(settings.secrets or settings.jwt_keys)
    if settings.require_jwt and not has_key:
        raise RelayConfigError(file, "relay.require_jwt",
                               "a key to check the JWT with: relay.jwt_public_key_file "
                               "(ES256/RS256) or relay.webhook_secret_file (HS256)")
    if not has_key and not settings.allow_unsigned:
        raise RelayConfigError(file, "relay.webhook_secret_file",
                               "a webhook secret file (or relay.jwt_public_key_file): the "
                               "relay accepts only signed calls (relay.allow_unsigned: "
                               "true is for development on this machine only)")


def check_listen(settings: RelaySettings, file: str) -> None:
    """Refuse unsafe start-up settings: those of :func:`check_keys`, and unsigned calls
    allowed on a non-loopback address."""
    check_keys(settings, file)
    if settings.allow_unsigned and not is_loopback(settings.host):
        raise RelayConfigError(file, "relay.allow_unsigned",
                               f"false to listen on {settings.host} (unsigned calls are for "
                               "development on a loopback address only)")


def open_file_limit() -> int:
    """This process's open-file limit (the soft ``RLIMIT_NOFILE``: systemd's
    ``LimitNOFILE``, a shell's ``ulimit -n``)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def connection_cap(max_connections: int | None, nofile: int) -> int:
    """The relay's cap on open connections for the setting ``max_connections`` (None: as
    many as the open-file limit ``nofile`` leaves, less :data:`FD_RESERVE`); ValueError
    saying what would do when the setting does not fit under the limit."""
    room = nofile - FD_RESERVE
    if max_connections is None:
        if room < MIN_CONNECTIONS:
            raise ValueError(f"an open-file limit of at least {MIN_CONNECTIONS + FD_RESERVE}"
                             f" (it is {nofile}: raise LimitNOFILE or ulimit -n)")
        return room
    if max_connections > room:
        raise ValueError(f"at most {room} with the open-file limit of {nofile} (that less "
                         f"{FD_RESERVE} for the relay's own files): lower it, or raise "
                         "LimitNOFILE (ulimit -n)")
    return max_connections


def check_limits(settings: RelaySettings, file: str) -> int:
    """The connection cap for this process, or :class:`RelayConfigError` naming
    ``relay.max_connections`` when it does not fit under the open-file limit."""
    try:
        return connection_cap(settings.max_connections, open_file_limit())
    except ValueError as exc:
        raise RelayConfigError(file, "relay.max_connections", str(exc)) from None
