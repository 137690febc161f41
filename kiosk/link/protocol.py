"""The messages between the UI and the core: one class per request and one per event.

Over a socketpair, one JSON object per line (:mod:`kiosk.link.codec` writes and reads them)::

    UI -> core   {"id": 7, "op": "issue", "args": {...}}     a request (the classes below
                                                             whose ``op`` it names)
    core -> UI   {"id": 7, "result": ...}                    its answer
                 {"id": 7, "error": "..."}                   or why there is none
                 {"event": "queues", ...}                    an event, at any time

A request's answer is read by the client method that sent it (:class:`RemoteCore`); the
core answers each request from its handler (:mod:`kiosk.core.server`, one per class).
Nothing secret crosses: the PIN is checked in the core, against a hash the UI never sees;
what a customer types crosses only inside :class:`SubmitForm` and is never logged.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from kiosk.deadlines import DEFAULT
from kiosk.view.calling import Call
from kiosk.view.forms import FormDef
from kiosk.view.outcomes import QueueView

LINE_LIMIT = 1 << 20
"""Longest message accepted (bytes); a ticket's answer is well under 4 KB."""
MAX_CARDS = 60
"""Most queues sent to the UI per language (a screen shows far fewer; a branch with more
needs ``queues:`` in the config). Names are capped at the API's edge, so the queues
message stays far below :data:`LINE_LIMIT`."""


class BadMessage(ValueError):
    """A message that is not one of this module's, or whose fields have the wrong types."""


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class UiSettings:
    """What the screen needs from the config (nothing secret); made by the core
    (:func:`kiosk.core.settings.ui_settings`)."""

    kiosk_id: str
    mode: str
    language: str
    fullscreen: bool
    touchscreen: bool
    idle_timeout_s: float
    refresh_s: float
    brand_color: str
    accent_color: str
    admin: bool
    """An admin PIN is set (the hash stays in the core)."""
    calls: bool = False
    """Show the relay's calls: the whole screen (display mode) or the home's strip."""
    calls_keep: int = 6
    """How many recent calls the calling screen lists."""
    chime: bool = True
    """Chime on a new call (display mode)."""
    speech: bool = True
    """Say a new call aloud (display mode)."""
    voices: dict[str, str] = field(default_factory=dict)
    """espeak-ng voice per language."""
    tap_deadline_s: float = DEFAULT.ui_tap_s
    """How long the UI waits for the core's answer (then tells the customer what to do)."""
    print_deadline_s: float = DEFAULT.ui_print_s
    """How long the UI waits for the paper once the number is on screen."""
    stop_wait_s: float = DEFAULT.stop_wait_s
    """How long the UI waits for the core to exit once the link is closed."""
    priority: bool = False
    """Offer priority tickets (the home's button, the greeter's toggle)."""
    priority_ask: bool = True
    """Ask the customer for a reason (else priority tickets carry none)."""
    priority_reasons: dict[str, dict[str, str]] = field(default_factory=dict)
    """The reasons offered, in order: ``{id: {lang: text}}``."""
    reach: str = "normal"
    """``low``: every control in the lower part of a portrait screen (``ui.reach``)."""
    audio: bool = False
    """Offer audio guidance (``ui.audio.enabled``; the UI finds out if it can be heard)."""
    audio_device: str = ""
    """The sound output (ALSA's name; empty: the default)."""
    audio_volume: float = 0.8
    """Volume at the start of each guided visit (0.1 to 1)."""
    audio_hold_s: float = 1.5
    """How long the start key is held."""
    audio_voices: dict[str, str] = field(default_factory=dict)
    """espeak-ng voice per language, for guidance."""
    audio_keys: dict[str, list[int]] = field(default_factory=dict)
    """Kivy key codes by role (``hold_start``, ``start``, ``previous``, ``next``,
    ``repeat``, ``back``, ``volume_up``, ``volume_down``)."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UiSettings:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """A request of the UI; ``op`` names it on the wire, its fields are its ``args``."""

    op: ClassVar[str] = ""


@dataclass(frozen=True)
class Issue(Request):
    """A ticket for ``queue_id``: answered ``{"result": IssueResult, "printing": bool}``,
    then a :class:`Printed` event when the paper is out. The core takes only a queue this
    device offers, a language of ours, ``integration_data`` without its own keys, and a
    ``priority`` reason it offers (NotAllowed otherwise)."""

    op: ClassVar[str] = "issue"
    queue_id: str
    language: str
    integration_data: dict[str, Any] | None = None
    priority: str | None = None
    """A priority ticket, for this reason id (``""`` where no reason is asked); None: a
    regular ticket."""


@dataclass(frozen=True)
class GetForm(Request):
    """The queue's form (asked of the API now if the core does not know it: a 428):
    answered ``{"form": FormDef | null}``."""

    op: ClassVar[str] = "form"
    queue_id: str


@dataclass(frozen=True)
class SubmitForm(Request):
    """The customer's form, then the ticket: answered like :class:`Issue`, or with the
    form back: ``{"form", "problems": {field id: Problem}, "sent": bool}``."""

    op: ClassVar[str] = "submit_form"
    queue_id: str
    language: str
    values: dict[str, Any]
    """``{field id: "text" | ["option", ...]}``: never logged on either side."""
    integration_data: dict[str, Any] | None = None
    priority: str | None = None
    """As :attr:`Issue.priority`."""


@dataclass(frozen=True)
class BranchLabel(Request):
    """The branch's name for the screen's header: answered with a string."""

    op: ClassVar[str] = "branch_label"


@dataclass(frozen=True)
class PollSoon(Request):
    """Poll the queues now (a calling screen: reconnect to the relay now)."""

    op: ClassVar[str] = "poll_soon"


@dataclass(frozen=True)
class WarmUp(Request):
    """Load what the first ticket needs (the printer's set-up)."""

    op: ClassVar[str] = "warm_up"


@dataclass(frozen=True)
class CheckPin(Request):
    """Check the staff PIN: answered ``{"ok": bool, "locked_s": float}``. A correct PIN
    opens the staff session; five wrong ones lock the pad, with a growing wait."""

    op: ClassVar[str] = "check_pin"
    pin: str


@dataclass(frozen=True)
class Admin(Request):
    """A staff action (``test_print``, ``reprint_last``, ``reload``, ``refresh``):
    answered ``[note, state]`` (a :class:`~kiosk.view.devicestate.DeviceState`'s JSON,
    composed after the action, the printer asked); refused without a staff session.
    ``lang``: the staff's language, for the note."""

    op: ClassVar[str] = "admin"
    action: str
    lang: str


@dataclass(frozen=True)
class AdminClose(Request):
    """Staff left the staff screen: the core closes their session."""

    op: ClassVar[str] = "admin_close"


@dataclass(frozen=True)
class Reload(Request):
    """Reload the config file (as SIGHUP does): answered with what happened."""

    op: ClassVar[str] = "reload"


@dataclass(frozen=True)
class Ping(Request):
    """The watchdog's question (:mod:`kiosk.link.watchdog`): answered ``"pong"`` at once
    by the core's loop."""

    op: ClassVar[str] = "ping"


REQUESTS: dict[str, type[Request]] = {cls.op: cls for cls in (
    Issue, GetForm, SubmitForm, BranchLabel, PollSoon, WarmUp, CheckPin, Admin, AdminClose,
    Reload, Ping)}


def request_args(request: Request) -> dict[str, Any]:
    """A request's fields, as its ``args``."""
    return {f.name: getattr(request, f.name) for f in fields(request)}


def request_from_json(op: Any, args: Any) -> Request:
    """The request ``op`` names, its ``args`` checked against its fields' types;
    :class:`BadMessage` otherwise (naming the field, never quoting its value)."""
    cls = REQUESTS.get(op) if isinstance(op, str) else None
    if cls is None:
        raise BadMessage(f"unknown request {str(op)[:40]!r}")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise BadMessage(f"{op}: args must be an object")
    hints = typing.get_type_hints(cls)
    kept: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in args:
            if f.default is MISSING and f.default_factory is MISSING:  # required
                raise BadMessage(f"{op}: {f.name} is missing")
            continue
        value = args[f.name]
        if not _is_a(value, hints[f.name]):
            raise BadMessage(f"{op}: {f.name} must be {_kind(hints[f.name])}")
        kept[f.name] = value
    return cls(**kept)


def _is_a(value: Any, hint: Any) -> bool:
    if isinstance(hint, types.UnionType):
        return any(_is_a(value, h) for h in hint.__args__)
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint) or hint
    if origin is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, origin) and not (origin is int and isinstance(value, bool))


def _kind(hint: Any) -> str:
    if isinstance(hint, types.UnionType):
        return " or ".join(_kind(h) for h in hint.__args__)
    origin = typing.get_origin(hint) or hint
    return {str: "a string", dict: "an object", list: "a list", type(None): "null",
            bool: "true or false", int: "a number", float: "a number"}.get(origin, str(hint))


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    """A message of the core's own; ``name`` is its ``event`` on the wire."""

    name: ClassVar[str] = ""


@dataclass(frozen=True)
class Hello(Event):
    """The core's config is loaded and good: the UI's settings, and a line for the
    person starting it (the demo says where its tickets go)."""

    name: ClassVar[str] = "hello"
    settings: UiSettings
    note: str = ""


@dataclass(frozen=True)
class Fatal(Event):
    """The core cannot start (it says why on stderr and exits with ``status``)."""

    name: ClassVar[str] = "fatal"
    status: int


@dataclass(frozen=True)
class Settings(Event):
    """The config was reloaded: the UI's new settings."""

    name: ClassVar[str] = "settings"
    settings: UiSettings


@dataclass(frozen=True)
class ApiProblem:
    """How the last poll of the queues failed: the error's class (of
    :mod:`kiosk.errors`), its message, and its HTTP status if any."""

    type: str
    message: str
    status: int | None = None
    api_message: str = ""


@dataclass(frozen=True)
class Queues(Event):
    """After every poll: how old the queues are, how the last poll went, and the cards
    as each language shows them (at most :data:`MAX_CARDS` a language)."""

    name: ClassVar[str] = "queues"
    age_s: float | None
    """Seconds since the last good poll, when sent (None: never)."""
    failures: int
    error: ApiProblem | None
    views: dict[str, list[QueueView]]
    priority_views: dict[str, list[QueueView]] = field(default_factory=dict)
    """The same cards as a priority customer sees them (their preferential segments'
    agents and waits), when priority tickets are offered."""


@dataclass(frozen=True)
class Forms(Event):
    """Which queues need a form, and their fields (never values): whenever that changes."""

    name: ClassVar[str] = "forms"
    forms: dict[str, FormDef | None]


@dataclass(frozen=True)
class Printed(Event):
    """The paper of the ticket asked for by request ``for_id`` is out (or is not)."""

    name: ClassVar[str] = "printed"
    for_id: int
    printed: bool
    error: str = ""


@dataclass(frozen=True)
class Calls(Event):
    """The relay's last calls, newest first, after every change; ``announce``: the ones
    just received that are new enough to chime and speak; ``connected``: the stream is
    open (display mode, and a kiosk with ``ui.calls``)."""

    name: ClassVar[str] = "calls"
    calls: list[Call]
    connected: bool
    announce: list[Call] = field(default_factory=list)


EVENTS: dict[str, type[Event]] = {cls.name: cls for cls in (
    Hello, Fatal, Settings, Queues, Forms, Printed, Calls)}
