"""The mock's hostile answer kinds, read as raw HTTP over loopback: what a test or the soak
gets when it asks for them by rate or by script."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import httpx
import pytest

from kiosk.mock import MockServer, MockState, ScriptedFault, default_scenario_path, load_scenario
from kiosk.mock.hostile import BAD_QUEUE_VARIANTS, HOSTILE_NAME, HUGE_NAME, MALFORMED_BODIES

from .conftest import ATENCION, BRANCH, CUENTAS, KEY

PREFIX = "/public/video-contact-center"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _get(srv: MockServer, path: str, **params: str) -> httpx.Response:
    return httpx.get(srv.url + PREFIX + path, headers=AUTH, params=params, timeout=10)


def _loads(response: httpx.Response) -> Any:
    # NaN and 1e999 are what the kind is for; Python's json reads both.
    return json.loads(response.content)


def test_bad_queue_items_keeps_the_first_queue_and_spoils_the_rest(server: MockServer) -> None:
    server.state.push_faults(ScriptedFault(on="queues", answer="bad_queue_items"))
    r = _get(server, f"/branches/{BRANCH}/queues")
    assert r.status_code == 200
    assert b"1e999" in r.content and b"NaN" in r.content
    items = _loads(r)
    assert items[0]["id"] == ATENCION and items[0]["name"] == "Atención a clientes"
    assert items[1]["id"] == CUENTAS and items[1]["name"] == HOSTILE_NAME
    assert items[2]["avgWaitingTime"] is None
    assert math.isinf(items[3]["avgWaitingTime"])
    extras = items[4:]
    assert len(extras) == len(BAD_QUEUE_VARIANTS)
    assert any(e.get("users") == -3 for e in extras)
    assert any(e.get("name") == HUGE_NAME for e in extras)
    assert any("id" not in e for e in extras)
    assert any(isinstance(e.get("avgWaitingTime"), float)
               and math.isnan(e["avgWaitingTime"]) for e in extras)
    # used once: the next answer is clean again
    assert _loads(_get(server, f"/branches/{BRANCH}/queues"))[1]["name"] == "Apertura de cuenta"


def test_bad_queue_items_on_branches_gives_hostile_labels(server: MockServer) -> None:
    server.state.push_faults(ScriptedFault(on="branches", answer="bad_queue_items"))
    labels = [b["label"] for b in _get(server, "/branches").json()]
    assert HOSTILE_NAME in labels and HUGE_NAME in labels


def test_many_queues(server: MockServer) -> None:
    server.state.push_faults(ScriptedFault(on="queues", answer="many_queues"))
    items = _get(server, f"/branches/{BRANCH}/queues").json()
    assert len(items) == 2000
    assert items[0]["id"] == ATENCION
    assert len({q["id"] for q in items}) == 2000


def test_paginated_pages_and_follow_up_requests(server: MockServer) -> None:
    server.state.scenario.faults.page_size = 3
    server.state.push_faults(ScriptedFault(on="queues", answer="paginated"))
    first = _get(server, f"/branches/{BRANCH}/queues").json()
    assert first["total"] == 4 and first["limit"] == 3 and first["skip"] == 0
    assert len(first["data"]) == 3
    # the next page, asked with $skip, is a page too (no fault needed)
    second = _get(server, f"/branches/{BRANCH}/queues", **{"$skip": "3"}).json()
    assert second["skip"] == 3 and len(second["data"]) == 1
    # $limit above the page size is capped, as Feathers does
    assert _get(server, "/branches", **{"$limit": "500"}).json()["limit"] == 3


def test_malformed_cycles_bodies_and_keeps_the_status(server: MockServer) -> None:
    server.state.push_faults(ScriptedFault(on="queues", answer="malformed", times=2))
    a = _get(server, f"/branches/{BRANCH}/queues")
    b = _get(server, f"/branches/{BRANCH}/queues")
    assert (a.status_code, b.status_code) == (200, 200)
    assert [a.content, b.content] == list(MALFORMED_BODIES[:2])


def test_malformed_enqueue_is_recorded(server: MockServer) -> None:
    server.state.push_faults(ScriptedFault(on="enqueue", answer="malformed"))
    r = httpx.post(server.url + PREFIX + f"/branches/{BRANCH}/queues/{ATENCION}",
                   headers=AUTH, json={"ticketId": "A-001"}, timeout=10)
    assert r.status_code == 201 and r.content == MALFORMED_BODIES[0]
    assert [t.ticket_id for t in server.state.tickets] == ["A-001"]
    assert server.state.requests[-1][2] == "malformed"


def test_trickle_sends_one_byte_at_a_time() -> None:
    scenario = load_scenario(default_scenario_path())
    scenario.faults.trickle_s = 0.3
    state = MockState(scenario)
    state.push_faults(ScriptedFault(on="queue", answer="trickle"))
    with MockServer(state) as srv, httpx.Client(timeout=5) as http, http.stream(
            "GET", srv.url + PREFIX + f"/branches/{BRANCH}/queues/{ATENCION}",
            headers=AUTH) as r:
        assert r.status_code == 200
        chunks = []
        start = time.monotonic()
        for chunk in r.iter_raw():
            chunks.append(chunk)
            if len(chunks) == 3:
                break
        elapsed = time.monotonic() - start
    assert all(len(c) == 1 for c in chunks)
    # three bytes need at least two pauses between them
    assert elapsed >= 2 * 0.3 * 0.9
    assert state.requests[-1][2] == "trickle"


def test_hostile_kinds_by_rate_load_from_yaml(tmp_path: Any) -> None:
    text = default_scenario_path().read_text(encoding="utf-8").replace(
        "rates: {}", "rates: {trickle: 0.1, malformed: 0.1, bad_queue_items: 0.1, "
        "many_queues: 0.1, paginated: 0.1}")
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    faults = load_scenario(path).faults
    assert set(faults.rates) == {"trickle", "malformed", "bad_queue_items", "many_queues",
                                 "paginated"}
    assert (faults.trickle_s, faults.many_queues, faults.page_size) == (1.5, 2000, 10)


@pytest.mark.parametrize("kind", ["bad_queue_items", "many_queues", "paginated"])
def test_list_kinds_leave_other_endpoints_alone(server: MockServer, kind: Any) -> None:
    server.state.push_faults(ScriptedFault(on="queue", answer=kind))
    r = _get(server, f"/branches/{BRANCH}/queues/{ATENCION}")
    assert r.status_code == 200 and r.json()["id"] == ATENCION
