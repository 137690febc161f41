"""The link's messages (:mod:`kiosk.link.protocol`) as lines of JSON, and back.

Light on purpose (no asyncio): the core sends its hello from here before it loads
anything else. Reading is strict: a line that is not one of the protocol's messages
raises :class:`~kiosk.link.protocol.BadMessage` (or ``ValueError``/``KeyError``/
``TypeError`` for a broken one), and the reader decides what that ends.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kiosk import errors
from kiosk.errors import ApiError, ApiStatusError, MalformedResponse
from kiosk.link.protocol import (
    EVENTS,
    ApiProblem,
    BadMessage,
    Calls,
    Event,
    Fatal,
    Forms,
    Hello,
    Printed,
    Queues,
    Request,
    Settings,
    UiSettings,
    request_args,
)
from kiosk.view.calling import call_from_json, call_to_json
from kiosk.view.forms import FormDef
from kiosk.view.outcomes import IssueResult, Outcome, QueueSnapshot, QueueView

if TYPE_CHECKING:
    import asyncio


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


# --------------------------------------------------------------------------- requests


def request_line(rid: int, request: Request) -> bytes:
    return encode({"id": rid, "op": request.op, "args": request_args(request)})


# --------------------------------------------------------------------------- events


def event_to_json(event: Event) -> dict[str, Any]:
    """``{"event": name, ...its fields}``, nested values as JSON."""
    out: dict[str, Any] = {"event": event.name}
    if isinstance(event, Hello | Settings):
        out["settings"] = asdict(event.settings)
        if isinstance(event, Hello):
            out["note"] = event.note
    elif isinstance(event, Fatal):
        out["status"] = event.status
    elif isinstance(event, Queues):
        out.update(age_s=event.age_s, failures=event.failures,
                   error=None if event.error is None else asdict(event.error),
                   views={lang: [asdict(v) for v in views]
                          for lang, views in event.views.items()},
                   priority_views={lang: [asdict(v) for v in views]
                                   for lang, views in event.priority_views.items()})
    elif isinstance(event, Forms):
        out["forms"] = {qid: f.to_json() if f else None for qid, f in event.forms.items()}
    elif isinstance(event, Printed):
        out.update({"for": event.for_id, "printed": event.printed, "error": event.error})
    elif isinstance(event, Calls):
        out.update(calls=[call_to_json(c) for c in event.calls], connected=event.connected,
                   announce=[call_to_json(c) for c in event.announce])
    else:  # pragma: no cover - every event class is listed above
        raise BadMessage(f"no encoding for {type(event).__name__}")
    return out


def event_line(event: Event) -> bytes:
    return encode(event_to_json(event))


def event_from_json(msg: dict[str, Any]) -> Event:
    """The event ``msg`` carries; :class:`BadMessage` for one the protocol does not know."""
    name = msg.get("event")
    cls = EVENTS.get(name) if isinstance(name, str) else None
    if cls is Hello:
        return Hello(UiSettings.from_json(msg["settings"]), str(msg.get("note", "")))
    if cls is Settings:
        return Settings(UiSettings.from_json(msg["settings"]))
    if cls is Fatal:
        return Fatal(int(msg["status"]))
    if cls is Queues:
        e = msg["error"]
        return Queues(
            age_s=msg["age_s"], failures=int(msg["failures"]),
            error=None if e is None else ApiProblem(**{f.name: e[f.name]
                                                      for f in fields(ApiProblem)}),
            views={str(lang): [view_from_json(v) for v in views]
                   for lang, views in msg["views"].items()},
            priority_views={str(lang): [view_from_json(v) for v in views]
                            for lang, views in msg.get("priority_views", {}).items()})
    if cls is Forms:
        return Forms({str(qid): FormDef.from_json(f) if f else None
                      for qid, f in msg["forms"].items()})
    if cls is Printed:
        return Printed(int(msg["for"]), bool(msg["printed"]), str(msg["error"]))
    if cls is Calls:
        return Calls([call_from_json(c) for c in msg["calls"]], bool(msg["connected"]),
                     [call_from_json(c) for c in msg["announce"]])
    raise BadMessage(f"unknown event {str(msg.get('event'))[:40]!r}")


def hello_line(settings: UiSettings, note: str = "") -> bytes:
    """The core's first message: its config is good (the UI's settings from it)."""
    return event_line(Hello(settings, note))


def fatal_line(status: int) -> bytes:
    """The core's only message when it cannot start (it says why on stderr)."""
    return event_line(Fatal(status))


# --------------------------------------------------------------------------- values


def view_from_json(data: dict[str, Any]) -> QueueView:
    return QueueView(**{f.name: data[f.name] for f in fields(QueueView)})


def result_to_json(r: IssueResult) -> dict[str, Any]:
    """An IssueResult as the link sends it (the printing future travels as an event)."""
    return {"outcome": r.outcome.value, "ticket_id": r.ticket_id, "queue": asdict(r.queue),
            "message": r.message, "language": r.language, "videsk_id": r.videsk_id,
            "printed": r.printed, "print_error": r.print_error,
            "alternatives": [asdict(q) for q in r.alternatives], "uncertain": r.uncertain,
            "detail": r.detail, "qr": r.qr, "qr_phone": r.qr_phone, "priority": r.priority,
            "issued_at": r.issued_at.isoformat() if r.issued_at else None}


def result_from_json(d: dict[str, Any],
                     printing: asyncio.Future[tuple[bool, str]] | None) -> IssueResult:
    return IssueResult(
        outcome=Outcome(d["outcome"]), ticket_id=d["ticket_id"], queue=view_from_json(d["queue"]),
        message=d["message"], language=d["language"], videsk_id=d["videsk_id"],
        printed=d["printed"], print_error=d["print_error"],
        alternatives=tuple(view_from_json(q) for q in d["alternatives"]), uncertain=d["uncertain"],
        detail=d["detail"], qr=d["qr"], qr_phone=bool(d.get("qr_phone")), printing=printing,
        priority=d.get("priority"),
        issued_at=datetime.fromisoformat(d["issued_at"]) if d["issued_at"] else None)


def problem_of(err: ApiError | None) -> ApiProblem | None:
    """The last poll's error, as the :class:`Queues` event carries it."""
    if err is None:
        return None
    return ApiProblem(
        type=type(err).__name__, message=str(err),
        status=err.status_code if isinstance(err, ApiStatusError | MalformedResponse) else None,
        api_message=err.api_message if isinstance(err, ApiStatusError) else "")


def queues_event(snapshot: QueueSnapshot[Any], views: dict[str, list[QueueView]],
                 priority_views: dict[str, list[QueueView]] | None = None) -> Queues:
    """The :class:`Queues` event for ``snapshot`` (its age taken now)."""
    return Queues(age_s=snapshot.age(), failures=snapshot.failures,
                  error=problem_of(snapshot.error), views=views,
                  priority_views=priority_views or {})


def error_from_problem(e: ApiProblem) -> ApiError:
    """The same kind of error, with its message (and status); a plain ApiError for a kind
    it cannot make (a message the UI cannot read must never end the link)."""
    cls = getattr(errors, e.type, None)
    status = e.status
    try:
        if isinstance(cls, type) and issubclass(cls, ApiStatusError) and status:
            return cls(status, e.api_message)
        if isinstance(cls, type) and issubclass(cls, MalformedResponse) and status:
            return cls(e.message.removeprefix(f"HTTP {status}: "), status_code=status)
        if isinstance(cls, type) and issubclass(cls, ApiError) \
                and not issubclass(cls, ApiStatusError | MalformedResponse):
            return cls(e.message)
    except TypeError:
        pass
    return ApiError(e.message)


def snapshot_of(event: Queues, now: float) -> QueueSnapshot[Any]:
    """The UI's copy of the core's snapshot: the same age and error, without the queue
    list (the views travel beside it)."""
    error = None if event.error is None else error_from_problem(event.error)
    age = event.age_s
    return QueueSnapshot((), None if age is None else now - age, error, event.failures)


def snapshot_to_json(s: QueueSnapshot[Any]) -> dict[str, Any]:
    """The snapshot's part of a :class:`Queues` event, as JSON (tests, the status file)."""
    err = problem_of(s.error)
    return {"age_s": s.age(), "failures": s.failures,
            "error": None if err is None else asdict(err)}


def snapshot_from_json(d: dict[str, Any], now: float) -> QueueSnapshot[Any]:
    """The inverse of :func:`snapshot_to_json`, as the UI reads it."""
    e = d["error"]
    problem = None if e is None else ApiProblem(**{f.name: e[f.name] for f in fields(ApiProblem)})
    return snapshot_of(Queues(d["age_s"], int(d["failures"]), problem, {}), now)
