"""The device's state in one place (issue 19): composed by the core from what it knows,
the same in status.json, ``kiosk check``, the staff screen and the heartbeat, and never
carrying a secret, a customer value or a form field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiosk.core import status
from kiosk.core.diagnostics import state_line
from kiosk.core.runtime import Runtime, open_runtime
from kiosk.core.state import compose, printer_word
from kiosk.mock import MockState, create_app
from kiosk.mock.scenario import default_scenario_path, load_scenario
from kiosk.printing import Paper, PrinterStatus, State
from kiosk.tickets.formflow import submit_and_issue
from kiosk.view.devicestate import PRINTER, DeviceState
from kiosk.view.forms import values_by_id
from kiosk.view.outcomes import IssueResult, Outcome

from .conftest import ATENCION, FAST_RETRY, SEGUROS, FakeClock, make_config

SECRET_KEY = "eyJhbGciOiJIUzI1NiJ9.SUPERsecretKEY0123456789.c2lnbmF0dXJlLWFiY2RlZg"
TYPED = {"firstname": "Ana Pérez", "email": "ana.perez@example.com", "insurance": "hogar"}


@pytest.fixture
def state(clock: FakeClock) -> MockState:
    """The mock, taking only our recognisable key."""
    scenario = load_scenario(default_scenario_path())
    return MockState(scenario.model_copy(update={"api_keys": [SECRET_KEY]}), clock=clock)


@pytest.fixture
async def rt(tmp_path: Path, state: MockState) -> AsyncIterator[Runtime]:
    config = make_config(tmp_path, priority={"enabled": True})
    runtime = open_runtime(config, SECRET_KEY, retry=FAST_RETRY,
                           transport=httpx.ASGITransport(app=create_app(state)))
    await runtime.monitor.poll_once()
    yield runtime
    await runtime.aclose()


@pytest.mark.parametrize(("status", "word"), [
    (PrinterStatus(State.READY, paper=Paper.OK), "ok"),
    (PrinterStatus(State.READY, paper=Paper.UNKNOWN), "unknown"),  # sensor silent
    (PrinterStatus(State.PAPER_NEAR_END, paper=Paper.NEAR_END), "paper_low"),
    (PrinterStatus(State.PAPER_OUT, paper=Paper.OUT), "paper_out"),
    (PrinterStatus(State.COVER_OPEN), "cover_open"),
    (PrinterStatus(State.OFFLINE), "offline"),
    (PrinterStatus(State.UNREACHABLE), "offline"),
    (PrinterStatus(State.UNKNOWN), "unknown"),      # no answer: never "ok"
    (PrinterStatus(State.NOT_QUERIED), "unknown"),  # cannot be asked: never "ok"
    (PrinterStatus(State.NONE), "none"),
])
def test_the_printer_in_the_hubs_words(status: PrinterStatus, word: str) -> None:
    assert printer_word(status) == word
    assert word in PRINTER


@pytest.mark.parametrize(("changes", "reason"), [
    ({}, None),
    ({"printer": "paper_low"}, None),                  # a warning: still issuing
    ({"printer": "unknown"}, None),
    ({"clock": "skewed"}, None),
    ({"journal": "fault"}, None),
    ({"numbers": "offline"}, None),
    ({"printer": "paper_out"}, "printer"),
    ({"printer": "cover_open"}, "printer"),
    ({"api": "refused"}, "api"),
    ({"api": "unreachable", "printer": "paper_out"}, "api"),
    ({"clock": "wrong"}, "clock"),
    ({"journal": "unavailable"}, "journal"),
])
def test_in_service_or_out_and_why(changes: dict[str, str], reason: str | None) -> None:
    s = DeviceState(**{"role": "kiosk", "version": "1", "printer": "ok", **changes})
    assert s.reason == reason and s.in_service is (reason is None)
    body = s.heartbeat()
    assert (body["in_service"], body["reason"]) == (reason is None, reason)
    assert DeviceState.from_json(json.loads(json.dumps(s.to_json()))) == s


def test_the_heartbeat_is_the_contracts_body() -> None:
    s = DeviceState(role="kiosk", version="0.9.0", printer="ok", clock_skew_s=0.43,
                    tickets={"issued": 41, "no_agents": 2, "unprinted": 1},
                    priority_today={"senior": 2}, forms_sent=3,
                    last_ticket_at="2026-12-02T12:14:03+00:00", uptime_s=5231,
                    details={"printer": "a path /var/lib/kiosk that stays here"})
    body = s.heartbeat()
    assert body == {"role": "kiosk", "version": "0.9.0", "in_service": True, "reason": None,
                    "printer": "ok", "api": "ok", "clock": "ok", "clock_skew_s": 0.4,
                    "journal": "ok", "numbers": "local", "tickets_today": 41,
                    "forms_today": 3, "priority_today": {"senior": 2},
                    "last_ticket_at": "2026-12-02T12:14:03+00:00", "uptime_s": 5231}
    assert len(json.dumps(body)) < 8192  # the hub's limit


async def test_composed_from_what_the_core_knows(rt: Runtime, state: MockState) -> None:
    before = compose(rt)
    assert (before.role, before.api, before.journal, before.clock) == (
        "kiosk", "ok", "ok", "ok")
    assert before.printer == "unknown"  # a file printer cannot be asked: never "ok"
    assert before.tickets_today == 0 and before.last_ticket_at is None
    r = await rt.service.issue(ATENCION, language="es", priority="senior")
    assert r.outcome is Outcome.ISSUED
    after = compose(rt)
    assert after.tickets_today == 1 and after.tickets["issued"] == 1
    assert after.priority_today == {"senior": 1}
    assert after.last_ticket_at is not None
    assert abs(datetime.fromisoformat(after.last_ticket_at) - datetime.now(UTC)) \
        < timedelta(minutes=1)
    assert after.clock_skew_s is None or abs(after.clock_skew_s) < 5
    assert after.uptime_s >= 0


async def test_faults_take_the_device_out_of_service(rt: Runtime) -> None:
    rt.service.health.set("clock", "it is 2026-12-01 here but the journal has 2026-12-02")
    s = compose(rt)
    assert (s.clock, s.reason) == ("wrong", "clock") and "journal has" in s.details["clock"]
    rt.service.health.clear("clock")
    rt.service.health.set("journal", "3 record(s) not written")
    s = compose(rt)
    assert (s.journal, s.in_service) == ("fault", True)  # tickets still issued
    s = compose(rt, PrinterStatus(State.PAPER_OUT, paper=Paper.OUT))
    assert (s.printer, s.reason) == ("paper_out", "printer")
    s = compose(rt, PrinterStatus(State.PAPER_NEAR_END, paper=Paper.NEAR_END))
    assert (s.printer, s.in_service) == ("paper_low", True)


async def test_an_api_that_refuses_the_key_is_out_of_service(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": "bad key"})
    rt = open_runtime(make_config(tmp_path), SECRET_KEY, retry=FAST_RETRY,
                      transport=httpx.MockTransport(refuse))
    try:
        await rt.monitor.poll_once()
        s = compose(rt)
        assert (s.api, s.reason) == ("refused", "api")
    finally:
        await rt.aclose()


async def test_no_secret_customer_value_or_form_field_anywhere(rt: Runtime) -> None:
    """A recognisable key, a form's typed values and the customer's integration data go
    through the kiosk; none of them is in the heartbeat, status.json or `kiosk check`."""
    assert rt.forms is not None
    form = await rt.forms.fetch(SEGUROS)
    assert form is not None
    r = await submit_and_issue(rt.service, rt.forms, SEGUROS, values_by_id(form, TYPED)[0],
                               language="es", integration_data={"rut": "12.345.678-5"})
    assert isinstance(r, IssueResult) and r.outcome is Outcome.ISSUED
    s = compose(rt)
    assert s.forms_sent == 1
    status.write(path := rt.config.kiosk.data_dir / "status.json", status.snapshot(rt))
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written["state"]["forms_sent"] == 1  # the same state, in status.json
    assert DeviceState.from_json(written["state"]).heartbeat() == s.heartbeat() | {
        "uptime_s": written["state"]["uptime_s"]}
    texts = {"heartbeat": json.dumps(s.heartbeat(), ensure_ascii=False),
             "status.json": path.read_text(encoding="utf-8"),
             "check": " ".join(state_line(written["state"])[1:])}
    field_ids = [f.id for f in form.fields]
    for where, text in texts.items():
        for value in (SECRET_KEY, "SUPERsecret", "Ana Pérez", "ana.perez@example.com",
                      "hogar", "12.345.678-5", *field_ids):
            assert value not in text, (where, value)


def test_kiosk_checks_line_says_in_service_or_why_not() -> None:
    ok = state_line(DeviceState(role="kiosk", version="1", printer="paper_low").to_json())
    assert ok[0] and ok[1] == "state" and ok[2].startswith("in service")
    out = state_line(DeviceState(role="kiosk", version="1", printer="paper_out").to_json())
    assert not out[0] and "OUT OF SERVICE (printer)" in out[2]


def test_a_state_from_an_older_or_newer_core_is_read() -> None:
    data: dict[str, Any] = {"role": "tablet", "version": "2", "printer": "none",
                            "something_new": 1}
    assert DeviceState.from_json(data).role == "tablet"
