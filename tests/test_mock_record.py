"""The mock's record of every enqueue (what the soak reconciles the journal with), and the
faults that take a ticket and then spoil the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from kiosk.api import QmsClient
from kiosk.api.client import NO_RETRY
from kiosk.errors import AcceptedUnreadable, ApiTimeout, ConnectionLost, NoAgents, Unprocessable
from kiosk.mock import MockServer, MockState, ScriptedFault, default_scenario_path, load_scenario

from .conftest import ATENCION, BRANCH, FAST_RETRY, KEY


@pytest.fixture
def live() -> Iterator[MockServer]:
    """The default scenario on loopback, on the real clock (slow answers really wait)."""
    scenario = load_scenario(default_scenario_path())
    scenario.faults.slow_s = 1.0
    scenario.faults.trickle_s = 0.5
    with MockServer(MockState(scenario)) as srv:
        yield srv


def client(url: str, timeout_s: float = 5.0) -> QmsClient:
    return QmsClient(url, KEY, timeout_s=timeout_s, retry=FAST_RETRY)


def records(srv: MockServer) -> list[dict[str, object]]:
    state = httpx.get(srv.url + "/_mock/state").json()
    return list(state["enqueues"])


async def settle(srv: MockServer, n: int) -> list[dict[str, object]]:
    """The record once ``n`` enqueues are in it and the last answer is over."""
    for _ in range(100):
        got = await asyncio.to_thread(records, srv)
        if len(got) >= n:
            await asyncio.sleep(0.2)  # an answer still being sent
            return await asyncio.to_thread(records, srv)
        await asyncio.sleep(0.05)
    raise AssertionError("the mock did not record the enqueues")


async def test_a_plain_answer_and_a_422_are_recorded_as_delivered(live: MockServer) -> None:
    live.state.push_faults(ScriptedFault(on="enqueue", answer=422))
    async with QmsClient(live.url, KEY, retry=NO_RETRY) as c:
        with pytest.raises(Unprocessable):
            await c.enqueue(BRANCH, ATENCION, "A-001")
        await c.enqueue(BRANCH, ATENCION, "A-002")
    got = await settle(live, 2)
    assert [(r["ticketId"], r["answer"], r["accepted"], r["delivered"]) for r in got] == [
        ("A-001", 422, False, True), ("A-002", 201, True, True)]
    assert [t.ticket_id for t in live.state.tickets] == ["A-002"]


async def test_accept_drop_takes_the_ticket_and_cuts_the_answer(live: MockServer) -> None:
    live.state.push_faults(ScriptedFault(on="enqueue", answer="accept_drop"))
    async with client(live.url) as c:
        with pytest.raises(ConnectionLost):
            await c.enqueue(BRANCH, ATENCION, "A-001")
    (r,) = await settle(live, 1)
    assert (r["answer"], r["accepted"], r["delivered"]) == ("accept_drop", True, False)
    assert [t.ticket_id for t in live.state.tickets] == ["A-001"]  # it is in the queue


async def test_a_plain_drop_takes_nothing(live: MockServer) -> None:
    live.state.push_faults(ScriptedFault(on="enqueue", answer="drop"))
    async with client(live.url) as c:
        with pytest.raises(ConnectionLost):
            await c.enqueue(BRANCH, ATENCION, "A-001")
    (r,) = await settle(live, 1)
    assert (r["answer"], r["accepted"], r["delivered"]) == ("drop", False, False)
    assert live.state.tickets == []


@pytest.mark.parametrize("answer", ["empty", "garbage", "malformed"])
async def test_a_201_with_a_bad_body_took_the_ticket(live: MockServer, answer: str) -> None:
    live.state.push_faults(ScriptedFault(on="enqueue", answer=answer))  # type: ignore[arg-type]
    async with client(live.url) as c:
        with pytest.raises(AcceptedUnreadable):
            await c.enqueue(BRANCH, ATENCION, "A-001")
    (r,) = await settle(live, 1)
    assert (r["answer"], r["accepted"], r["delivered"]) == (answer, True, True)
    assert [t.ticket_id for t in live.state.tickets] == ["A-001"]


async def test_a_bad_body_on_a_refusal_takes_nothing(live: MockServer) -> None:
    live.state.set_agents(ATENCION, 0)
    live.state.push_faults(ScriptedFault(on="enqueue", answer="garbage"))
    async with client(live.url) as c:
        with pytest.raises(NoAgents):
            await c.enqueue(BRANCH, ATENCION, "A-001")
    (r,) = await settle(live, 1)
    assert (r["answer"], r["accepted"], r["delivered"]) == (406, False, True)


@pytest.mark.slow
@pytest.mark.parametrize(("answer", "error"), [("slow", ApiTimeout),
                                               ("trickle", AcceptedUnreadable)])
async def test_an_answer_the_client_gave_up_on_is_not_delivered(
        live: MockServer, answer: str, error: type[Exception]) -> None:
    """A slow answer: no status in time. A trickle: a 201 whose body never ends."""
    live.state.push_faults(ScriptedFault(on="enqueue", answer=answer))  # type: ignore[arg-type]
    async with client(live.url, timeout_s=0.3) as c:
        with pytest.raises(error):
            await c.enqueue(BRANCH, ATENCION, "A-001")
    await asyncio.sleep(1.2)  # the slow answer goes on after the client left
    (r,) = await settle(live, 1)
    assert (r["answer"], r["accepted"], r["delivered"]) == (answer, True, False)
    assert [t.ticket_id for t in live.state.tickets] == ["A-001"]


async def test_a_drop_sends_no_status_line(live: MockServer) -> None:
    """Served over a socket, a drop is a connection closed with no answer at all (never
    a 201 for a ticket the mock did not take)."""
    live.state.push_faults(ScriptedFault(on="enqueue", answer="drop"))
    async with httpx.AsyncClient(base_url=live.url) as http:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await http.post(f"/public/video-contact-center/branches/{BRANCH}/queues/"
                            f"{ATENCION}", json={"ticketId": "A-001"},
                            headers={"Authorization": f"Bearer {KEY}"})
