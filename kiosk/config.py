"""The kiosk's one YAML config file, validated at load into typed models.

Where the file is: ``--config PATH``, else the environment variable ``KIOSK_CONFIG``, else
``/etc/kiosk/kiosk.yaml`` (:data:`DEFAULT_CONFIG_PATH`). Every key is documented below,
one docstring per field; ``config/*.yaml`` are commented examples.

The API key is never in the YAML body: it comes from the environment variable
``VIDESK_API_KEY`` or from the file named by ``api.key_file`` (which must not be readable
by group or others). It is held as a :class:`pydantic.SecretStr`, so it never shows in a
repr, a log line or an error message.

A bad file stops start-up with :class:`kiosk.errors.ConfigError`, naming the file, the key
path and what was expected.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from kiosk.colours import contrast
from kiosk.errors import ConfigError
from kiosk.netloc import is_loopback_url
from kiosk.redaction import redact_url
from kiosk.secretfile import read_private

DEFAULT_CONFIG_PATH = Path("/etc/kiosk/kiosk.yaml")
CONFIG_ENV = "KIOSK_CONFIG"
API_KEY_ENV = "VIDESK_API_KEY"

Language = Literal["es", "en", "pt"]
LANGUAGES: tuple[Language, ...] = ("es", "en", "pt")

DEFAULT_VOICES: dict[Language, str] = {"es": "es-419", "en": "en-us", "pt": "pt-br"}
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9]{1,4}$")
_FORMAT_FIELDS = {"prefix", "seq", "kiosk"}
TICKET_ID_MAX = 50
_SUGGESTED = {"numbering.format": "{prefix}-{seq:03d}",
              "numbering.priority_format": "{prefix}P-{seq:03d}",
              "numbering.offline_format": "{prefix}{kiosk}-{seq:03d}",
              "numbering.offline_priority_format": "{prefix}P{kiosk}-{seq:03d}"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiConfig(_Model):
    """How to reach the Videsk QMS API."""

    base_url: str = "https://api.videsk.io"
    """Root URL of the API; the client appends ``/public/video-contact-center/...``."""
    timeout_s: float = Field(5.0, gt=0, le=60)
    """Seconds to wait for each answer before giving up on it."""
    key_file: Path | None = None
    """File holding the API key (mode 0600). Used when ``VIDESK_API_KEY`` is not set."""
    wait_unit: Literal["minutes", "seconds"] = "minutes"
    """Unit of the API's ``avgWaitingTime`` (the provider does not document it)."""

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return base_url(v, "the API key")


_BASE_URL = re.compile(r"^(https?)://(\[[0-9A-Fa-f:.]+\]|[^\s/:?#@\[\]]+)(?::(\d{1,5}))?"
                       r"(/[^\s?#@]*)?$")


def base_url(v: str, credential: str) -> str:
    """``v`` if it is a base URL that may carry ``credential`` (scheme, host, optional port
    and path: no ``user:password@``, ``?query`` or ``#fragment``, which would end up in
    logs and on the staff screen; ``http://`` only to a loopback host), without a trailing
    slash. ValueError saying what is expected (never quoting ``v``)."""
    scheme = v.partition("://")[0].lower() if "://" in v else ""
    if scheme not in ("http", "https"):
        raise ValueError("an http:// or https:// URL")
    authority = v.partition("://")[2].split("/", 1)[0]
    if "@" in authority or ("@" in v and not _BASE_URL.match(v)):
        raise ValueError(f"a URL without user:password@ ({credential} is what "
                         "authenticates; put no password in the URL)")
    if "?" in v or "#" in v:
        raise ValueError("a base URL without ?query or #fragment")
    m = _BASE_URL.match(v)
    if not m:
        raise ValueError("an http:// or https:// URL: scheme, host, optional port and path")
    if m.group(3) is not None and not 0 < int(m.group(3)) < 65536:
        raise ValueError("an http:// or https:// URL with a port from 1 to 65535")
    if m.group(1) == "http" and not is_loopback_url(v):
        raise ValueError(f"an https:// URL (http:// only for a loopback host such as "
                         f"127.0.0.1 or localhost: {credential} would travel in clear)")
    return v.rstrip("/")


class KioskSection(_Model):
    """This device."""

    id: str
    """Unique within the branch; letters, digits, ``_ . -``, at most 32 characters."""
    data_dir: Path = Path("/var/lib/kiosk")
    """Folder for the journal (SQLite) and the ticket counters."""
    mode: Literal["kiosk", "tablet", "display"] = "kiosk"
    """``kiosk``: fullscreen lobby dispenser; ``tablet``: the greeter's tablet;
    ``display``: a calling screen on a lobby TV (needs ``calls``; no API key, printer or
    queues)."""
    language: Language = "es"
    """Default language of customer text: es, en or pt."""
    timezone: str = "UTC"
    """The branch's IANA time zone; ticket numbers restart at its local midnight."""

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID_RE.match(v):
            raise ValueError("1-32 letters, digits, '_', '.' or '-', "
                             "starting with a letter or digit")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("an IANA time zone such as 'America/Santiago'") from exc
        return v

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()


class QueueConfig(_Model):
    """One queue shown on this kiosk."""

    id: str
    """The provider's queue (segment) id or its integrationId."""
    prefix: str | None = None
    """Letters before the ticket number (``A`` gives ``A-042``); default: from the name."""
    names: dict[Language, str] = Field(default_factory=dict)
    """Per-language display names overriding the API's name, e.g. ``{en: Customer care}``."""
    priority_queue: str | None = None
    """The bank's preferential segment for this queue in Videsk (its id), where priority
    tickets go; unset: priority tickets join this same queue. Either way the ticket carries
    ``integrationData.priority``."""

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        if v is not None and not _PREFIX_RE.match(v):
            raise ValueError("1-4 letters or digits")
        return v


def ticket_format(v: str) -> str:
    """``v`` if it is a ticket number format (``{prefix}``, ``{seq}`` required, ``{kiosk}``)
    whose numbers fit the API; ValueError saying what is expected."""
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
    except ValueError as exc:
        raise ValueError(f"a valid Python format string ({exc})") from exc
    if names - _FORMAT_FIELDS:
        extra = ", ".join(sorted(names - _FORMAT_FIELDS))
        raise ValueError(f"only the fields {{prefix}}, {{seq}}, {{kiosk}} (not {extra})")
    if "seq" not in names:
        raise ValueError("a format that contains {seq}")
    try:
        sample = v.format(prefix="WXYZ", seq=99999, kiosk="k" * 32)
    except (ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"a format that renders ({exc})") from exc
    if len(sample) > TICKET_ID_MAX:
        raise ValueError(f"a format whose numbers fit the API's {TICKET_ID_MAX} characters")
    return v


class NumberingConfig(_Model):
    """How ticket numbers read."""

    format: str = "{prefix}-{seq:03d}"
    """Python format with ``{prefix}``, ``{seq}`` (required) and ``{kiosk}`` (this kiosk's id)."""
    priority_format: str = "{prefix}P-{seq:03d}"
    """The same for priority tickets (``priority.enabled``): ``AP-007``, a sequence of its
    own per prefix. Start-up refuses a format whose numbers could equal ``format``'s."""
    block: int = Field(10, ge=1, le=1000)
    """With a hub: how many numbers of a sequence are leased at a time (the next block is
    asked for when half is used)."""
    offline_format: str = "{prefix}{kiosk}-{seq:03d}"
    """With a hub: how numbers read when the hub cannot be reached and the leased block is
    used up (a sequence of this device's own: ``{kiosk}`` keeps two devices apart).
    Start-up refuses one whose numbers could equal another format's."""
    offline_priority_format: str = "{prefix}P{kiosk}-{seq:03d}"
    """The same for priority tickets."""

    @field_validator("format", "priority_format", "offline_format", "offline_priority_format")
    @classmethod
    def _format(cls, v: str) -> str:
        return ticket_format(v)


def espeak_voices(v: dict[Language, str]) -> dict[Language, str]:
    """``v`` if every voice is an espeak-ng voice name; ValueError otherwise."""
    for voice in v.values():
        if not re.fullmatch(r"[A-Za-z0-9_+-]{1,40}", voice):
            raise ValueError("espeak-ng voice names such as 'es-419'")
    return v


def _is_pin_hash(value: str) -> bool:
    """Whether ``value`` reads like ``kiosk hash-pin``'s output (checked at load: a broken
    hash would otherwise surface only when staff first enter the PIN)."""
    import base64
    import binascii
    parts = value.split("$")
    if len(parts) != 4 or parts[0] != "pbkdf2_sha256" or not parts[1].isdigit():
        return False
    if not 100_000 <= int(parts[1]) <= 10_000_000:  # too weak, or minutes per check
        return False
    try:
        salt = base64.urlsafe_b64decode(parts[2].encode("ascii"))
        digest = base64.urlsafe_b64decode(parts[3].encode("ascii"))
    except (binascii.Error, ValueError):
        return False
    return len(salt) >= 8 and len(digest) == 32


KEY_NAMES = "Kivy key codes: the keypad's 0-9 are 256-265, its / * - + are 267-270 and its " \
    "Enter 271; Escape 27, Backspace 8, F1-F12 282-293"


class AudioKeys(_Model):
    """The keys of audio guidance (Kivy key codes: the keypad's 0-9 are 256-265, its
    ``/ * - +`` are 267-270; Escape 27, Backspace 8; F1-F12 282-293). The arrows, Tab,
    Enter and Space work as always; a key may have one role only."""

    hold_start: list[int] = Field(default_factory=lambda: [261])
    """Held for ``hold_s``: audio guidance starts (default: the keypad's 5, which has a
    raised dot). Pressed briefly while guidance is on: the item in focus is chosen."""
    start: list[int] = Field(default_factory=list)
    """Pressed once: audio guidance starts (a dedicated key, e.g. a keypad's headphone
    key)."""
    previous: list[int] = Field(default_factory=lambda: [264, 260])
    """The item before (besides the arrows): the keypad's 8 and 4."""
    next: list[int] = Field(default_factory=lambda: [258, 262])
    """The item after (besides the arrows): the keypad's 2 and 6."""
    repeat: list[int] = Field(default_factory=lambda: [256, 268])
    """Say the screen and the item in focus again: the keypad's 0 and ``*``."""
    back: list[int] = Field(default_factory=lambda: [27, 8, 267])
    """Back (as the screen's Back button): Escape, Backspace, the keypad's ``/``."""
    volume_up: list[int] = Field(default_factory=lambda: [270])
    """Louder: the keypad's ``+``."""
    volume_down: list[int] = Field(default_factory=lambda: [269])
    """Softer: the keypad's ``-``."""

    @model_validator(mode="after")
    def _one_role_each(self) -> AudioKeys:
        seen: dict[int, str] = {}
        for role in type(self).model_fields:
            for code in getattr(self, role):
                if not 0 < code < 0x110000:
                    raise ValueError(f"ui.audio.keys.{role}: {code} is not a key code "
                                     f"({KEY_NAMES})")
                if code in seen:
                    raise ValueError(f"key {code} has two roles ({seen[code]} and {role})")
                seen[code] = role
        return self


class AudioConfig(_Model):
    """Audio guidance (EN 301 549 5.1.3, ADA 707.5): every screen and each item in focus
    spoken (espeak-ng, offline), started from a key or a large on-screen button. With no
    sound output the mode is offered nowhere, and ``kiosk check`` says why."""

    enabled: bool = True
    """Offer audio guidance (where a sound device and espeak-ng are there)."""
    device: str = ""
    """The sound output, as ALSA names it (``hw:1,0``, ``plughw:CARD=Device``; ``aplay -L``
    lists them): SDL reads it from ``AUDIODEV``. Empty: the system's default output."""
    volume: float = Field(0.8, ge=0.1, le=1.0)
    """Volume at the start of each guided visit (0.1 to 1); the keys change it by tenths."""
    hold_s: float = Field(1.5, ge=0.5, le=5.0)
    """How long ``keys.hold_start`` is held to start guidance."""
    voices: dict[Language, str] = Field(default_factory=lambda: dict(DEFAULT_VOICES))
    """espeak-ng voice per language (``espeak-ng --voices`` lists them)."""
    keys: AudioKeys = AudioKeys()
    """Which key does what."""

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v and not re.fullmatch(r"[A-Za-z0-9_.,:=@/+-]{1,80}", v):
            raise ValueError("an ALSA device name such as 'hw:1,0' or 'plughw:CARD=Device'")
        return v

    @field_validator("voices")
    @classmethod
    def _voices(cls, v: dict[Language, str]) -> dict[Language, str]:
        return espeak_voices(v)


class UiConfig(_Model):
    """Screens and the queue monitor."""

    refresh_s: float = Field(5.0, ge=1, le=300)
    """Seconds between two polls of the branch's queues."""
    idle_timeout_s: float = Field(30.0, ge=5, le=600)
    """Every screen goes back home (and to the default language) after this much idleness."""
    admin_pin_hash: SecretStr | None = None
    """Hash of the admin PIN from ``kiosk hash-pin``; never the PIN itself. Unset: no admin
    screen."""
    brand_color: str = "#0B2545"
    """Screen background (white text on it must reach 4.5:1 contrast)."""
    accent_color: str = "#0B6E4F"
    """Buttons and the chosen language (white text on it must reach 4.5:1)."""
    fullscreen: bool = True
    """Cover the whole display, borderless, no cursor (``kiosk run``); off for a window."""
    touchscreen: bool = False
    """Read a Linux touchscreen directly (mtdev on /dev/input/touchscreen) instead of
    through SDL's mouse events; see packaging/README.md."""
    calls: bool = False
    """Show a "now calling" strip on the kiosk's home screen, from the relay's stream
    (needs the ``calls`` section)."""
    reach: Literal["normal", "low"] = "normal"
    """``low``: every control a customer needs sits in the lower 55% of a portrait screen
    (a wheelchair user's forward reach, ADA 308.2.1: see README), the top kept for
    information."""
    audio: AudioConfig = AudioConfig()
    """Audio guidance: its sound output, volume, voices and keys."""

    @field_validator("admin_pin_hash")
    @classmethod
    def _pin_hash(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not _is_pin_hash(v.get_secret_value()):
            raise ValueError("a hash printed by `kiosk hash-pin` (pbkdf2_sha256$iterations"
                             "$salt$hash)")
        return v

    @field_validator("brand_color", "accent_color")
    @classmethod
    def _colour(cls, v: str) -> str:
        if not re.fullmatch(r"#[0-9A-Fa-f]{6}", v):
            raise ValueError("a colour like '#0B2545'")
        if contrast(v, "#FFFFFF") < 4.5:
            raise ValueError("a colour dark enough for white text (contrast at least 4.5:1)")
        return v


class PrinterConfig(_Model):
    """The receipt printer."""

    type: Literal["none", "file", "virtual", "network", "usb", "serial", "cups"] = "none"
    """none | file (raw bytes) | virtual (PNG per ticket) | network | usb | serial | cups."""
    path: Path | None = None
    """file: the file to append ESC/POS bytes to; virtual: the folder for ticket PNGs."""
    host: str | None = None
    """network: the printer's host name or address."""
    port: int = Field(9100, ge=1, le=65535)
    """network: TCP port (raw printing is 9100)."""
    timeout_s: float = Field(5.0, gt=0, le=60)
    """network, serial, usb: seconds before a write or a status query gives up."""
    usb_vendor: int | None = None
    """usb: vendor id, e.g. 0x04b8 for Epson."""
    usb_product: int | None = None
    """usb: product id."""
    device: str | None = None
    """serial: device path, e.g. /dev/ttyUSB0."""
    baudrate: int = 9600
    """serial: line speed."""
    cups_name: str | None = None
    """cups: the queue name."""
    status_query: bool = True
    """Ask the printer's status (DLE EOT) before and after every ticket (network, serial,
    usb). Turn off only for a printer that never answers."""
    profile: str = "default"
    """escpos-printer-db profile name, e.g. TM-T20II."""
    codepage: str = "CP858"
    """The one code page for all text (CP858 has every Spanish and Portuguese letter, and €)."""
    paper_mm: Literal[58, 80] = 80
    """Paper width in millimetres."""

    @field_validator("path")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None

    @model_validator(mode="after")
    def _needs(self) -> PrinterConfig:
        required = {"file": "path", "virtual": "path", "network": "host", "serial": "device",
                    "cups": "cups_name"}
        key = required.get(self.type)
        if key and getattr(self, key) is None:
            raise ValueError(f"printer.type {self.type!r} needs printer.{key}")
        if self.type == "usb" and (self.usb_vendor is None or self.usb_product is None):
            raise ValueError("printer.type 'usb' needs printer.usb_vendor and printer.usb_product")
        return self


class CallsConfig(_Model):
    """The calls for this branch's screens, from the hub (``hub:``; the relay, ``kiosk
    relay``). The branch is the config's ``branch``. ``url`` and ``token_file`` are still
    read here: with no ``hub:`` section they say where the hub is."""

    url: str | None = None
    """Still read: the hub's base URL when there is no ``hub:`` section (use ``hub.url``)."""
    token_file: Path | None = None
    """Still read: this device's token file when there is no ``hub:`` section (use
    ``hub.token_file``)."""
    keep: int = Field(6, ge=1, le=20)
    """How many recent calls the screen lists under the latest one."""
    chime: bool = True
    """Play a chime on each new call (display mode)."""
    speech: bool = True
    """Announce each new call aloud, in the ticket's language (display mode; espeak-ng)."""
    voices: dict[Language, str] = Field(default_factory=lambda: dict(DEFAULT_VOICES))
    """espeak-ng voice per language (``espeak-ng --voices`` lists them)."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else base_url(v, "the display token")

    @field_validator("token_file")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return None if v is None else v.expanduser()

    @field_validator("voices")
    @classmethod
    def _voices(cls, v: dict[Language, str]) -> dict[Language, str]:
        return espeak_voices(v)

    @model_validator(mode="after")
    def _both(self) -> CallsConfig:
        if (self.url is None) != (self.token_file is None):
            raise ValueError("calls.url and calls.token_file together (or neither, with a "
                             "hub section: hub.url, hub.token_file)")
        return self


class HubConfig(_Model):
    """The branch's hub (the relay, ``kiosk relay``): one connection per core for the
    calls, the ticket numbers (leased in blocks), the reports of the tickets issued and
    this device's state. The contract is docs/hub.md."""

    url: str
    """The hub's base URL, e.g. ``https://hub.example.com``; ``http://`` only to a loopback
    host (the device token must not cross a network in clear)."""
    token_file: Path
    """File holding this device's token (mode 0600), as listed in the relay's
    ``relay.devices`` (or ``relay.displays``)."""
    public_url: str | None = None
    """What a customer's phone opens (the QR on the ticket); default: ``url``."""
    heartbeat_s: float = Field(30.0, ge=5, le=600)
    """Seconds between two reports of this device's state to the hub."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return base_url(v, "the device token")

    @field_validator("public_url")
    @classmethod
    def _public(cls, v: str | None) -> str | None:
        return None if v is None else base_url(v, "a phone link")

    @field_validator("token_file")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @property
    def phone_url(self) -> str:
        """The base URL of the phone pages: ``public_url``, else ``url``."""
        return self.public_url or self.url


Lines = list[str] | dict[Language, list[str]]


class TicketConfig(_Model):
    """What the paper ticket says."""

    header: Lines = Field(default_factory=list)
    """Lines above the number (bank, branch); a list, or one list per language."""
    footer: Lines = Field(default_factory=list)
    """Lines at the bottom; a list, or one list per language."""
    qr: str | None = None
    """QR content template with ``{ticketId}``, ``{videskId}``, ``{queueId}``; omit for none."""
    logo: Path | None = None
    """Image printed at the top (PNG/JPEG), scaled to the paper; rasterised once at start-up."""
    branch_label: str | None = None
    """Branch name printed and shown; default: the API's label for the branch."""
    show_branch: bool = True
    """Print the branch name."""
    show_datetime: bool = True
    """Print the arrival time and the date ("Llegada 10:42 · 27 nov 2026", in the branch's
    time zone and the customer's language): the customer's proof of their wait (Brazil's
    "lei da fila")."""
    show_wait: bool = True
    """Print the estimated wait from the queue's average waiting time."""

    @field_validator("qr")
    @classmethod
    def _qr(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                v.format(ticketId="A-001", videskId="x", queueId="q")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError("a template using only {ticketId}, {videskId}, {queueId} "
                                 f"({exc})") from exc
        return v

    @field_validator("logo")
    @classmethod
    def _logo(cls, v: Path | None) -> Path | None:
        if v is not None and not v.expanduser().is_file():
            raise ValueError(f"an image file ({v} does not exist)")
        return v.expanduser() if v is not None else None

    def lines(self, which: Literal["header", "footer"], lang: str) -> list[str]:
        """The header or footer in ``lang`` (the default language's, else the first)."""
        value = getattr(self, which)
        if isinstance(value, list):
            return list(value)
        by_lang: dict[str, list[str]] = {str(k): v for k, v in value.items()}
        return by_lang.get(lang) or by_lang.get("es") or next(iter(by_lang.values()), [])


_REASON_RE = re.compile(r"^[a-z][a-z0-9_-]{0,23}$")
RESERVED_REASONS = frozenset({"true", "false"})
"""Reason ids a priority ticket may not have (the hub's ledger reads ``true`` as a priority
ticket without a reason)."""


class PriorityReason(_Model):
    """One reason for preferential attention, as the customer reads it."""

    id: str
    """Sent to Videsk as ``integrationData.priority`` and kept in the journal: lower-case
    letters, digits, ``_`` or ``-``, at most 24 characters."""
    texts: dict[Language, str]
    """What the button says, in es, en and pt (all three)."""

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _REASON_RE.match(v):
            raise ValueError("1-24 lower-case letters, digits, '_' or '-', starting with a "
                             "letter")
        if v in RESERVED_REASONS:
            raise ValueError(f"not {v!r}: a priority ticket without a reason is reported as "
                             "true, so a reason may not be named so")
        return v

    @field_validator("texts")
    @classmethod
    def _texts(cls, v: dict[Language, str]) -> dict[Language, str]:
        missing = [lang for lang in LANGUAGES if not v.get(lang, "").strip()]
        if missing:
            raise ValueError(f"a text in each of es, en and pt (missing: {', '.join(missing)})")
        if any(len(text) > 80 for text in v.values()):
            raise ValueError("texts of at most 80 characters")
        return v


DEFAULT_REASONS: tuple[tuple[str, dict[Language, str]], ...] = (
    ("senior", {"es": "Persona mayor (60 años o más)", "en": "Older person (60 or over)",
                "pt": "Pessoa idosa (60 anos ou mais)"}),
    ("pregnant", {"es": "Embarazada o en lactancia", "en": "Pregnant or breastfeeding",
                  "pt": "Gestante ou lactante"}),
    ("disability", {"es": "Persona con discapacidad", "en": "Person with a disability",
                    "pt": "Pessoa com deficiência"}),
    ("infant", {"es": "Con un niño pequeño", "en": "With a small child",
                "pt": "Com criança de colo"}),
)


class PriorityConfig(_Model):
    """Preferential attention (Chile's Ley 21.768, Brazil's Lei 10.048): a "priority"
    button on the home screen (a toggle on the greeter's tablet). A priority ticket is
    numbered with ``numbering.priority_format``, goes to the queue's ``priority_queue``
    (else the queue itself) and carries ``integrationData.priority``: the reason's id, or
    ``true`` when no reason is asked."""

    enabled: bool = False
    """Offer priority tickets."""
    ask_reason: bool = True
    """Ask the customer why (one of ``reasons``); ``false``: no question asked (the bank
    prefers not to), ``integrationData.priority`` is ``true``."""
    reasons: list[PriorityReason] = Field(default_factory=lambda: [
        PriorityReason(id=i, texts=dict(texts)) for i, texts in DEFAULT_REASONS])
    """The reasons offered, in order (default: ``senior``, ``pregnant``, ``disability``,
    ``infant``)."""

    @model_validator(mode="after")
    def _reasons(self) -> PriorityConfig:
        ids = [r.id for r in self.reasons]
        if len(set(ids)) != len(ids):
            raise ValueError("priority reasons with different ids")
        if self.ask_reason and not self.reasons:
            raise ValueError("at least one priority reason (or ask_reason: false)")
        if len(self.reasons) > 8:
            raise ValueError("at most 8 priority reasons (one screen of buttons)")
        return self

    def offered(self, reason: str | None) -> bool:
        """Whether ``reason`` may be asked for here: a reason id of ours when reasons are
        asked, ``""`` (no reason) when they are not."""
        if not self.enabled or reason is None:
            return False
        if self.ask_reason:
            return any(r.id == reason for r in self.reasons)
        return reason == ""

    def text(self, reason: str, lang: str) -> str:
        """What ``reason`` reads in ``lang`` (its id when it is not one of ours)."""
        for r in self.reasons:
            if r.id == reason:
                return next((v for k, v in r.texts.items() if k == lang), reason)
        return reason


class Config(_Model):
    """The whole kiosk config."""

    api: ApiConfig = ApiConfig()
    """How to reach the Videsk API."""
    branch: str
    """The branch's provider id or integrationId."""
    kiosk: KioskSection
    """This device."""
    queues: list[QueueConfig] = Field(default_factory=list)
    """Which queues to show, in which order, how labelled; empty: all of the branch's."""
    numbering: NumberingConfig = NumberingConfig()
    """How ticket numbers read."""
    ui: UiConfig = UiConfig()
    """Screens and the queue monitor."""
    printer: PrinterConfig = PrinterConfig()
    """The receipt printer."""
    ticket: TicketConfig = TicketConfig()
    """What the paper ticket says."""
    relay: dict[str, Any] | None = None
    """Read by ``kiosk relay`` (validated there, in kiosk/relay/config.py); the kiosk
    ignores it."""
    calls: CallsConfig | None = None
    """How the calls are shown (with a hub, the defaults when unset); its ``url`` and
    ``token_file`` are still read as the hub's when there is no ``hub:`` section."""
    hub: HubConfig | None = None
    """The branch's hub (docs/hub.md): needed by ``kiosk.mode: display`` and by the
    kiosk's "now calling" strip (``ui.calls``); with it, numbers are shared by the
    branch's devices, each ticket is reported to the hub, and the kiosk journals when each
    of its tickets was called. Unset: the device numbers on its own, as before."""
    priority: PriorityConfig = PriorityConfig()
    """Preferential attention: priority tickets, their reasons."""

    @model_validator(mode="before")
    @classmethod
    def _hub_from_calls(cls, data: Any) -> Any:
        """Today's ``calls: {url, token_file}`` with no ``hub:`` is the hub; a ``hub:``
        with no ``calls:`` shows the calls with the defaults."""
        if not isinstance(data, dict):
            return data
        calls, hub = data.get("calls"), data.get("hub")
        if hub is None and isinstance(calls, dict) and calls.get("url") is not None \
                and calls.get("token_file") is not None:
            return {**data, "hub": {"url": calls["url"], "token_file": calls["token_file"]}}
        if isinstance(hub, dict) and calls is None:
            return {**data, "calls": {}}
        return data

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a branch id")
        return v

    @model_validator(mode="after")
    def _unique_queues(self) -> Config:
        seen: set[str] = set()
        for q in self.queues:
            if q.id in seen:
                raise ValueError(f"queue {q.id!r} listed twice")
            seen.add(q.id)
        return self

    @model_validator(mode="after")
    def _calls_needed(self) -> Config:
        where = "a hub section (hub.url, hub.token_file; or calls.url, calls.token_file)"
        if self.hub is None and self.kiosk.mode == "display":
            raise ValueError(f"kiosk.mode 'display' needs {where}")
        if self.hub is None and self.ui.calls:
            raise ValueError(f"ui.calls needs {where}")
        calls = self.calls
        if self.hub is not None and calls is not None and calls.url is not None and (
                calls.url != self.hub.url or calls.token_file != self.hub.token_file):
            raise ValueError("calls.url and calls.token_file left out when there is a hub "
                             "section (the hub's are hub.url, hub.token_file)")
        return self

    def queue(self, queue_id: str) -> QueueConfig | None:
        """The configured entry for ``queue_id``, if any."""
        return next((q for q in self.queues if q.id == queue_id), None)

    def numbering_problem(self) -> tuple[str, str]:
        """``(key, why)`` when two of the formats in use could give one number (``("",
        "")`` when none can). Checked at load: the journal would skip such a number, but
        a customer or an agent would read two tickets with one number. In use: ``format``;
        ``priority_format`` with priority tickets; with a hub, ``offline_format`` (and
        ``offline_priority_format``), which must also name ``{kiosk}``: two devices may
        number offline at once."""
        n = self.numbering
        formats = [("numbering.format", n.format)]
        if self.priority.enabled:
            formats.append(("numbering.priority_format", n.priority_format))
        if self.hub is not None:
            formats.append(("numbering.offline_format", n.offline_format))
            if self.priority.enabled:
                formats.append(("numbering.offline_priority_format", n.offline_priority_format))
            for key, fmt in formats[-2 if self.priority.enabled else -1:]:
                if "kiosk" not in {f for _, f, _, _ in string.Formatter().parse(fmt)}:
                    return key, ("a format with {kiosk} (two devices may number offline at "
                                 "once): e.g. \"{prefix}{kiosk}-{seq:03d}\"")
        prefixes: list[str | None] = [*sorted({q.prefix for q in self.queues if q.prefix})]
        if not self.queues or any(q.prefix is None for q in self.queues):
            prefixes.append(None)  # a prefix derived from a queue's name: one letter
        for i, (key, fmt) in enumerate(formats):
            for other_key, other in formats[:i]:
                example = formats_collide(other, fmt, prefixes, self.kiosk.id)
                if example is not None:
                    kinds = {"numbering.format": "a regular",
                             "numbering.priority_format": "a priority",
                             "numbering.offline_format": "an offline",
                             "numbering.offline_priority_format": "an offline priority"}
                    return key, (f"a format whose numbers differ from {other_key}'s "
                                 f"({example!r} could be {kinds[other_key]} and "
                                 f"{kinds[key]} number): e.g. "
                                 f"\"{_SUGGESTED[key]}\"")
        return "", ""


# --------------------------------------------------------------------------- numbers

_Token = tuple[frozenset[str], bool]
"""One part of a number: the characters it may be, and whether it repeats (one or more)."""
_ANY_PREFIX = frozenset(string.ascii_uppercase + string.digits)
"""What a prefix derived from a queue's name may be (one letter or digit)."""


def _tokens(fmt: str, prefix: str | None, kiosk: str) -> list[_Token]:
    """``fmt`` as parts: literal characters, the prefix and the kiosk id as they render,
    ``{seq}`` as a run of the characters it renders with (digits, padding)."""
    f = string.Formatter()
    out: list[_Token] = []
    for literal, name, given_spec, conversion in f.parse(fmt):
        out += [(frozenset(c), False) for c in literal]
        if name is None:
            continue
        spec = given_spec or ""
        if name == "seq":  # as many characters as it renders at least, then more
            shown = [f.format_field(f.convert_field(n, conversion), spec)
                     for n in (0, 1, 9, 42, 99999, 0xABCDEF)]
            chars = frozenset("".join(shown))
            out += [(chars, False)] * (min(map(len, shown)) - 1) + [(chars, True)]
        elif name == "prefix" and prefix is None:
            out.append((_ANY_PREFIX, False))
        else:
            value = f.convert_field(prefix if name == "prefix" else kiosk, conversion)
            out += [(frozenset(c), False) for c in f.format_field(value, spec)]
    return out


def _closure(states: frozenset[tuple[int, bool]], tokens: list[_Token]
             ) -> frozenset[tuple[int, bool]]:
    """``(k, True)`` (inside a run) may also have left it."""
    return states | {(k + 1, False) for k, inside in states if inside}


def _step(states: frozenset[tuple[int, bool]], tokens: list[_Token], c: str
          ) -> frozenset[tuple[int, bool]]:
    nxt: set[tuple[int, bool]] = set()
    for k, _inside in states:  # inside a run or not, the run's characters go on
        if k < len(tokens) and c in tokens[k][0]:
            repeats = tokens[k][1]
            nxt.add((k, True) if repeats else (k + 1, False))
    return _closure(frozenset(nxt), tokens)


def formats_collide(a: str, b: str, prefixes: list[str | None], kiosk: str) -> str | None:
    """A number that format ``a`` and format ``b`` could both give, for any two of
    ``prefixes`` (None: a prefix derived from a queue's name) and any sequence numbers;
    None when there is none. Exact for the parts' shapes (a search over both formats as
    automata), so it never refuses formats that cannot collide."""
    for pa in prefixes:
        for pb in prefixes:
            ta, tb = _tokens(a, pa, kiosk), _tokens(b, pb, kiosk)
            alphabet = sorted(set().union(*(t[0] for t in ta + tb)))
            start = (_closure(frozenset({(0, False)}), ta),
                     _closure(frozenset({(0, False)}), tb))
            seen = {start: ""}
            todo = [start]
            while todo:
                sa, sb = state = todo.pop(0)
                if (len(ta), False) in sa and (len(tb), False) in sb:
                    return seen[state]
                for c in alphabet:
                    nxt = (_step(sa, ta, c), _step(sb, tb, c))
                    if nxt[0] and nxt[1] and nxt not in seen:
                        seen[nxt] = seen[state] + c
                        todo.append(nxt)
    return None


# --------------------------------------------------------------------------- loading


def resolve_path(cli_path: str | os.PathLike[str] | None,
                 environ: Mapping[str, str] | None = None) -> Path:
    """``--config`` wins, then ``KIOSK_CONFIG``, then :data:`DEFAULT_CONFIG_PATH`."""
    env = os.environ if environ is None else environ
    if cli_path:
        return Path(cli_path)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return DEFAULT_CONFIG_PATH


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(err: Mapping[str, Any], model: type[BaseModel]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key (check its spelling and place)"
    if kind == "missing":
        return "a value (this key is required)"
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    value = err.get("input")
    secret = err.get("loc", ())[-1:] in (("admin_pin_hash",),)  # may hold a pasted PIN
    if kind not in ("model_type",) and isinstance(value, str | int | float | bool) \
            and not secret:
        # a URL's user:password@, ?token= or #fragment never reaches the message
        shown = redact_url(value) if isinstance(value, str) else value
        msg += f" (got {shown!r})"
    return msg


def config_from_mapping(data: Any, file: str) -> Config:
    """Validate already-parsed YAML into a :class:`Config`, naming ``file`` in errors."""
    if not isinstance(data, dict):
        raise ConfigError(file, "", "a YAML mapping of keys (api, branch, kiosk, ...) at the top")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(file, _key_path(first["loc"]) or "(top level)",
                          _describe(first, Config)) from None
    key, problem = config.numbering_problem()
    if problem:
        raise ConfigError(file, key, problem)
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the config file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(p), "",
                          "a config file here (none found; see config/kiosk.yaml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(p), "", f"a readable UTF-8 file ({exc.__class__.__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(str(p), where, f"valid YAML ({problem})") from None
    return config_from_mapping(data, str(p))


def read_secret_file(config_file: str, key: str, path: Path, what: str) -> SecretStr:
    """The secret in ``path`` (named by config key ``key``), which must be private."""
    return SecretStr(read_private(config_file, key, path, what))


def load_display_token(config: Config, config_file: str) -> SecretStr:
    """The token the hub knows this device by, from ``hub.token_file`` (or today's
    ``calls.token_file``)."""
    if config.hub is None:
        raise ConfigError(config_file, "hub", "a hub section (hub.url, hub.token_file)")
    from_calls = config.calls is not None and config.calls.token_file is not None
    return read_secret_file(config_file, "calls.token_file" if from_calls else
                            "hub.token_file", config.hub.token_file,
                            "display token" if from_calls else "device token")


load_hub_token = load_display_token


def load_api_key(config: Config, config_file: str,
                 environ: Mapping[str, str] | None = None) -> SecretStr:
    """The API key: ``VIDESK_API_KEY``, else ``api.key_file`` (which must be private).

    One token is accepted (printable ASCII, nothing inside that is whitespace or a
    control character; surrounding whitespace is dropped); an error names where the key
    came from, never the key. Read from this process's environment, the variable is then
    removed from it, so no child process inherits the key. Once loaded, the key is
    redacted from this process's logs (:func:`kiosk.logs.protect`)."""
    from kiosk.logs import protect
    from kiosk.redaction import token_problem
    env = os.environ if environ is None else environ
    if env.get(API_KEY_ENV, "").strip():
        key = env[API_KEY_ENV].strip()
        if env is os.environ:
            os.environ.pop(API_KEY_ENV, None)
        where = f"the environment variable {API_KEY_ENV}"
        problem = token_problem(key)
        protect(key)
        if problem:
            raise ConfigError(config_file, API_KEY_ENV, f"one API key in {where}; {problem}")
        return SecretStr(key)
    kf = config.api.key_file
    if kf is None:
        raise ConfigError(config_file, "api.key_file",
                          f"a key file, or the environment variable {API_KEY_ENV}")
    key = read_private(config_file, "api.key_file", kf, "key")
    protect(key)
    problem = token_problem(key)
    if problem:
        raise ConfigError(config_file, "api.key_file", f"one API key in {kf}; {problem}")
    return SecretStr(key)
