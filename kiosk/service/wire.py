"""What crosses the link between the UI and the core (:mod:`kiosk.service.link`), as
JSON: the UI's settings, queue views, tickets, queue snapshots. Light on purpose (no
asyncio): the core sends its hello from here before it loads anything else."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kiosk import errors
from kiosk.deadlines import DEFAULT, Deadlines
from kiosk.errors import ApiError, ApiStatusError, MalformedResponse
from kiosk.service.outcomes import IssueResult, Outcome, QueueSnapshot, QueueView

if TYPE_CHECKING:
    import asyncio

    from kiosk.config import Config


@dataclass(frozen=True)
class UiSettings:
    """What the screen needs from the config (nothing secret)."""

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

    @classmethod
    def of(cls, config: Config) -> UiSettings:
        ui = config.ui
        calls = config.calls
        return cls(kiosk_id=config.kiosk.id, mode=config.kiosk.mode,
                   language=config.kiosk.language, fullscreen=ui.fullscreen,
                   touchscreen=ui.touchscreen, idle_timeout_s=ui.idle_timeout_s,
                   refresh_s=ui.refresh_s, brand_color=ui.brand_color,
                   accent_color=ui.accent_color, admin=ui.admin_pin_hash is not None,
                   calls=calls is not None and (ui.calls or config.kiosk.mode == "display"),
                   calls_keep=calls.keep if calls else 6,
                   chime=calls.chime if calls else False,
                   speech=calls.speech if calls else False,
                   voices={str(k): v for k, v in calls.voices.items()} if calls else {},
                   **deadline_settings(config))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UiSettings:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def deadlines_of(config: Config) -> Deadlines:
    """The kiosk's time limits for ``config`` (see :mod:`kiosk.deadlines`)."""
    return Deadlines(timeout_s=config.api.timeout_s,
                     printer_timeout_s=config.printer.timeout_s)


def deadline_settings(config: Config) -> dict[str, float]:
    """The UI's time limits, for :class:`UiSettings`."""
    d = deadlines_of(config)
    return {"tap_deadline_s": d.ui_tap_s, "print_deadline_s": d.ui_print_s,
            "stop_wait_s": d.stop_wait_s}


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def hello_line(config: Config, note: str = "") -> bytes:
    """The core's first message: its config is good (the UI's settings from it)."""
    return encode({"event": "hello", "settings": asdict(UiSettings.of(config)),
                    "note": note})


def fatal_line(status: int) -> bytes:
    """The core's only message when it cannot start (it says why on stderr)."""
    return encode({"event": "fatal", "status": status})


def view_from_json(data: dict[str, Any]) -> QueueView:
    return QueueView(**{f.name: data[f.name] for f in fields(QueueView)})


def result_to_json(r: IssueResult) -> dict[str, Any]:
    """An IssueResult as the link sends it (the printing future travels as an event)."""
    return {"outcome": r.outcome.value, "ticket_id": r.ticket_id, "queue": asdict(r.queue),
            "message": r.message, "language": r.language, "videsk_id": r.videsk_id,
            "printed": r.printed, "print_error": r.print_error,
            "alternatives": [asdict(q) for q in r.alternatives], "uncertain": r.uncertain,
            "detail": r.detail, "qr": r.qr,
            "issued_at": r.issued_at.isoformat() if r.issued_at else None}


def result_from_json(d: dict[str, Any],
                     printing: asyncio.Future[tuple[bool, str]] | None) -> IssueResult:
    return IssueResult(
        outcome=Outcome(d["outcome"]), ticket_id=d["ticket_id"], queue=view_from_json(d["queue"]),
        message=d["message"], language=d["language"], videsk_id=d["videsk_id"],
        printed=d["printed"], print_error=d["print_error"],
        alternatives=tuple(view_from_json(q) for q in d["alternatives"]), uncertain=d["uncertain"],
        detail=d["detail"], qr=d["qr"], printing=printing,
        issued_at=datetime.fromisoformat(d["issued_at"]) if d["issued_at"] else None)


def snapshot_to_json(s: QueueSnapshot) -> dict[str, Any]:
    err = s.error
    return {"age_s": s.age(), "failures": s.failures,
            "error": None if err is None else {
                "type": type(err).__name__, "message": str(err),
                "status": err.status_code if isinstance(err, ApiStatusError | MalformedResponse)
                else None,
                "api_message": err.api_message if isinstance(err, ApiStatusError) else ""}}


def _error_from_json(e: dict[str, Any]) -> ApiError:
    """The same kind of error, with its message (and status); a plain ApiError for a kind
    it cannot make (a message the UI cannot read must never end the link)."""
    cls = getattr(errors, e["type"], None)
    status = e["status"]
    try:
        if isinstance(cls, type) and issubclass(cls, ApiStatusError) and status:
            return cls(status, e["api_message"])
        if isinstance(cls, type) and issubclass(cls, MalformedResponse) and status:
            return cls(e["message"].removeprefix(f"HTTP {status}: "), status_code=status)
        if isinstance(cls, type) and issubclass(cls, ApiError) \
                and not issubclass(cls, ApiStatusError | MalformedResponse):
            return cls(e["message"])
    except TypeError:
        pass
    return ApiError(e["message"])


def snapshot_from_json(d: dict[str, Any], now: float) -> QueueSnapshot:
    """The UI's copy: the same age and error, without the queue list (the views travel
    beside it)."""
    error = None if d["error"] is None else _error_from_json(d["error"])
    age = d["age_s"]
    return QueueSnapshot((), None if age is None else now - age, error, d["failures"])
