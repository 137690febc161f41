"""The queue monitor: one request per poll, backoff on errors, last good state with its age."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from kiosk.api import QmsClient
from kiosk.errors import ServerError, Unauthorized
from kiosk.mock import MockState, ScriptedFault, create_app
from kiosk.tickets.queues import AUTH_BACKOFF_S, MAX_BACKOFF_S, QueueMonitor
from kiosk.view.outcomes import QueueSnapshot

from .conftest import BRANCH, FakeClock


def polls(state: MockState) -> int:
    return sum(1 for r in state.requests if r[1].endswith("/queues"))


async def test_one_request_per_poll_even_when_failing(api: QmsClient, state: MockState) -> None:
    m = QueueMonitor(api, BRANCH, period_s=5)
    await m.poll_once()
    state.push_faults(ScriptedFault(on="queues", answer=503, times=5))
    await m.poll_once()
    assert polls(state) == 2


async def test_keeps_last_good_state_and_its_age(api: QmsClient, state: MockState,
                                                 clock: FakeClock) -> None:
    m = QueueMonitor(api, BRANCH, period_s=5, clock=clock)
    snap = await m.poll_once()
    assert len(snap.queues) == 4 and snap.error is None
    clock.advance(40)
    state.push_faults(ScriptedFault(on="queues", answer=503))
    snap = await m.poll_once()
    assert len(snap.queues) == 4                 # still shown
    assert isinstance(snap.error, ServerError)
    assert snap.age(clock()) == 40
    assert snap.is_stale(5, clock())
    assert not QueueSnapshot((), clock(), None, 0).is_stale(5, clock())


async def test_backoff_doubles_and_caps_then_recovers(api: QmsClient, state: MockState) -> None:
    m = QueueMonitor(api, BRANCH, period_s=5)
    state.push_faults(ScriptedFault(on="queues", answer=503, times=10))
    delays = []
    for _ in range(5):
        await m.poll_once()
        delays.append(m.next_delay())
    assert delays == [10, 20, 40, MAX_BACKOFF_S, MAX_BACKOFF_S]
    state.push_faults()  # the script runs out after 10 failures
    for _ in range(5):
        await m.poll_once()
    await m.poll_once()
    assert m.snapshot.failures == 0 and m.next_delay() == 5


async def test_refused_key_polls_slowly(state: MockState) -> None:
    async with QmsClient("http://m", "mock.expired.key",
                         transport=httpx.ASGITransport(app=create_app(state))) as c:
        m = QueueMonitor(c, BRANCH, period_s=5)
        await m.poll_once()
    assert isinstance(m.snapshot.error, Unauthorized)
    assert m.next_delay() == AUTH_BACKOFF_S


async def test_runs_in_background_and_notifies(api: QmsClient, state: MockState) -> None:
    m = QueueMonitor(api, BRANCH, period_s=1)
    seen: list[QueueSnapshot[Any]] = []
    m.subscribe(seen.append)
    m.start()
    await asyncio.sleep(0.05)
    m.poll_soon()  # e.g. after a 406
    await asyncio.sleep(0.05)
    await m.stop()
    assert len(seen) == 2 and polls(state) == 2


async def test_polled_waits_for_the_first_answer_even_a_failed_one(api: QmsClient,
                                                                   state: MockState) -> None:
    m = QueueMonitor(api, BRANCH, period_s=5)
    waiting = asyncio.ensure_future(m.polled())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # nothing asked yet: the window would wait (at most 0.3 s)
    state.push_faults(ScriptedFault(on="queues", answer=503))
    await m.poll_once()
    await asyncio.wait_for(waiting, 1)  # a failure answers too: the window need not wait
    assert m.snapshot.error is not None


async def test_a_queue_missing_from_an_answer_keeps_its_data_and_its_own_age(
        api: QmsClient, state: MockState, clock: FakeClock) -> None:
    """A queue whose item the API answered unreadable keeps its last good data, with its
    own age (its card says how old), while the others are fresh; gone for 10 min: dropped."""
    from kiosk.tickets.queues import KEEP_MISSING_S
    m = QueueMonitor(api, BRANCH, period_s=5, clock=clock)
    first = {q.id: q for q in (await m.poll_once()).queues}
    clock.advance(40)
    state.push_faults(ScriptedFault(on="queues", answer="bad_queue_items"))
    snap = await m.poll_once()
    ages = m.ages()
    old = {qid for qid, age in ages.items() if age == 40}
    assert old and old < set(first)  # some were unreadable this time...
    assert all(ages[qid] == 0 for qid in set(first) - old)  # ...the others are fresh
    kept = {q.id: q for q in snap.queues}
    assert all(kept[qid] == first[qid] for qid in old)  # their last good data, still shown
    clock.advance(KEEP_MISSING_S)
    state.push_faults(ScriptedFault(on="queues", answer="bad_queue_items"))
    snap = await m.poll_once()
    assert not old & {q.id for q in snap.queues}  # gone too long: dropped
