"""The link's protocol: one class per request and per event, written and read back; the
core's table of handlers, one per request, shared by the kiosk's and the display's."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from pathlib import Path
from typing import ClassVar

import pytest

from kiosk.core.server import CoreServer, DisplayServer, KioskServer
from kiosk.link import protocol as p
from kiosk.link.codec import event_from_json, event_line, request_line
from kiosk.view.calling import Call
from kiosk.view.forms import FormDef
from kiosk.view.outcomes import QueueView

VIEW = QueueView(id="q1", name="Atención", api_name="Atención", users=2,
                 avg_waiting_time=60.0, wait_minutes=1.0, prefix="A")
CALL = Call(event_id="3", ticket_id="A-042", poc="Cabina 3", queue="Atención",
            at="2026-12-02T10:00:00Z", lang="es")
RECALL = Call(event_id="4", ticket_id="A-042", poc="Cabina 5", queue="Atención",
              at="2026-12-02T10:05:00Z", lang="es", recall=True)
SETTINGS = p.UiSettings(kiosk_id="k1", mode="kiosk", language="es", fullscreen=False,
                        touchscreen=True, idle_timeout_s=30, refresh_s=10,
                        brand_color="#0B3D91", accent_color="#FFB300", admin=True)
FORM = FormDef.from_api("q1", {"_id": "f1", "version": 2, "fields": [
    {"_id": "n1", "name": "name", "type": "text", "label": "Nombre", "required": True}]})

REQUESTS: list[p.Request] = [
    p.Issue("q1", "es", {"customer": "Ana"}), p.Issue("q1", "pt"), p.GetForm("q1"),
    p.Issue("q1", "es", None, "senior"), p.Issue("q1", "en", None, ""),  # priority
    p.SubmitForm("q1", "en", {"n1": "Ana"}, None), p.SubmitForm("q1", "es", {}, None, "infant"),
    p.BranchLabel(), p.PollSoon(),
    p.WarmUp(), p.CheckPin("123456"), p.Admin("refresh", "es"), p.AdminClose(),
    p.Reload(), p.Ping()]
EVENTS: list[p.Event] = [
    p.Hello(SETTINGS, "demo"), p.Fatal(2), p.Settings(SETTINGS),
    p.Settings(dataclasses.replace(
        SETTINGS, priority=True, priority_ask=False, priority_reasons={"senior": {"es": "x"}},
        reach="low", audio=True, audio_device="hw:1,0", audio_volume=0.5,
        audio_voices={"es": "es-419"}, audio_keys={"hold_start": [261]})),
    p.Queues(1.5, 0, None, {"es": [VIEW], "en": []}),
    p.Queues(1.5, 0, None, {"es": [VIEW]}, {"es": [dataclasses.replace(VIEW, users=0)]}),
    p.Queues(None, 3, p.ApiProblem("Unauthorized", "HTTP 401", 401, "bad key"), {}),
    p.Forms({"q1": FORM, "q2": None}), p.Printed(7, False, "paper out"),
    p.Calls([CALL], True, [CALL]), p.Calls([RECALL, CALL], False, []),
    p.Calls([dataclasses.replace(CALL, ticket_id="AP-001", priority="senior")], True)]


def test_every_request_class_is_listed_and_tested() -> None:
    assert {type(r) for r in REQUESTS} == set(p.REQUESTS.values())
    assert {type(e) for e in EVENTS} == set(p.EVENTS.values())


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_a_request_crosses_the_link_whole(request_: p.Request) -> None:
    msg = json.loads(request_line(7, request_))
    assert msg["id"] == 7 and msg["op"] == request_.op
    assert p.request_from_json(msg["op"], msg["args"]) == request_


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_an_event_crosses_the_link_whole(event: p.Event) -> None:
    assert event_from_json(json.loads(event_line(event))) == event


@pytest.mark.parametrize(("op", "args", "why"), [
    ("nonsense", {}, "unknown request 'nonsense'"),
    (None, {}, "unknown request 'None'"),
    ("issue", {"language": "es"}, "issue: queue_id is missing"),
    ("issue", {"queue_id": 42, "language": "es"}, "issue: queue_id must be a string"),
    ("issue", {"queue_id": "q", "language": "es", "integration_data": "x"},
     "integration_data must be an object or null"),
    ("issue", {"queue_id": "q", "language": "es", "priority": True},
     "issue: priority must be a string or null"),
    ("submit_form", {"queue_id": "q", "language": "es", "values": ["Ana"]},
     "values must be an object"),
    ("check_pin", {"pin": 123456}, "check_pin: pin must be a string"),
    ("check_pin", [], "check_pin: args must be an object"),
])
def test_a_request_that_is_not_the_protocols_is_refused_by_name(op: object, args: object,
                                                                why: str) -> None:
    with pytest.raises(p.BadMessage, match=why) as info:
        p.request_from_json(op, args)
    assert "Ana" not in str(info.value)  # a field is named, never its value


def test_an_unknown_event_is_a_bad_message() -> None:
    with pytest.raises(p.BadMessage):
        event_from_json({"event": "surprise"})


def test_each_core_answers_its_requests_and_shares_the_staff_ones() -> None:
    """One handler per request class: the kiosk's core answers all of them; a display's
    answers all but tickets and forms; the PIN, the staff session and the watchdog's ping
    are the same handlers in both (not copies)."""
    def table(cls: type[CoreServer]) -> dict[type[p.Request], object]:
        server = cls.__new__(cls)
        return server.handlers()
    kiosk, display = table(KioskServer), table(DisplayServer)
    assert set(kiosk) == set(p.REQUESTS.values())
    assert set(p.REQUESTS.values()) - set(display) == {p.Issue, p.GetForm, p.SubmitForm}
    for shared in (p.Ping, p.CheckPin, p.AdminClose):
        k, d = kiosk[shared], display[shared]
        assert k.__func__ is d.__func__ is getattr(CoreServer, k.__name__)  # type: ignore[attr-defined]


async def test_a_display_refuses_a_ticket_request_and_stays_up(tmp_path: Path) -> None:
    from kiosk.config import config_from_mapping
    from kiosk.link.client import CoreUnavailable, RemoteCore

    class Feed:
        calls: ClassVar[list[Call]] = []
        connected = False

        def subscribe(self, listener: object) -> None: ...
        def fresh(self, call: Call) -> bool: return False
        def start(self) -> None: ...

    token = tmp_path / "token"
    token.write_text("t" * 32)
    token.chmod(0o600)
    config = config_from_mapping({
        "branch": "b1", "kiosk": {"id": "tv", "mode": "display", "data_dir": str(tmp_path)},
        "calls": {"url": "http://127.0.0.1:9/", "token_file": str(token)}}, "x.yaml")
    ui_end, core_end = socket.socketpair()
    server = await DisplayServer.connect(core_end)
    served = asyncio.ensure_future(server.serve_display(config, Feed()))  # type: ignore[arg-type]
    core = await RemoteCore.connect(ui_end)
    try:
        await core.ready()
        with pytest.raises(CoreUnavailable, match="issue is not answered by this core"):
            await core.issue("q1", language="es")
        assert await core.ping()
    finally:
        await core.aclose()
        await asyncio.wait_for(served, 10)


def test_a_re_call_is_read_off_the_relays_event_and_only_a_true_says_so() -> None:
    from kiosk.view.calling import parse_call
    base = '{"ticketId": "A-042", "poc": {"label": "Cabina 5"}, "at": "2026-12-02T10:05:00Z"'
    again = parse_call("4", base + ', "recall": true}')
    assert again is not None and again.recall
    for other in ("}", ', "recall": false}', ', "recall": "true"}', ', "recall": 1}'):
        call = parse_call("4", base + other)
        assert call is not None and not call.recall, other
