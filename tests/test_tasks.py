"""kiosk.tasks.cancel: a background task is stopped even when something below it loses a
cancellation (Python 3.11's ``asyncio.wait_for``, which redis-py sends every command
through, returns the result of an operation that finished in the same turn and drops the
cancellation: the relay's shutdown then waited for good)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from kiosk import tasks
from kiosk.tasks import cancel, in_thread


async def _loses_cancellations(lost: list[int]) -> None:
    """Loops like a store's background loop; its next ``lost[0]`` cancellations are lost
    the way a library loses them (caught, and the loop goes on)."""
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if lost[0] == 0:
                raise
            lost[0] -= 1


@pytest.mark.parametrize("lost", [0, 1, 3])
def test_a_task_that_loses_cancellations_is_still_stopped(lost: int) -> None:
    async def scenario() -> bool:
        left = [lost]
        task = asyncio.create_task(_loses_cancellations(left))
        await asyncio.sleep(0.05)
        closer = asyncio.create_task(cancel(task))
        await asyncio.wait((closer,), timeout=5)
        stopped = closer.done() and task.cancelled()
        left[0] = 0  # whatever happened, this test's loop ends now
        for t in (task, closer):
            t.cancel()
        await asyncio.wait((task, closer), timeout=5)
        return stopped
    assert asyncio.run(scenario())


def test_a_task_that_ended_with_an_error_raises_it_and_none_is_nothing() -> None:
    async def fails() -> None:
        raise ValueError("the loop's own error")

    async def scenario() -> None:
        await cancel(None)
        task = asyncio.create_task(fails())
        await asyncio.sleep(0)
        with pytest.raises(ValueError, match="own error"):
            await cancel(task)
        done = asyncio.create_task(asyncio.sleep(0))
        await done
        await cancel(done)  # ended well: nothing to raise
    asyncio.run(scenario())


def test_the_caller_cancelled_meanwhile_is_cancelled_itself() -> None:
    """A close() that is itself cancelled stops waiting (it does not hang on the task),
    and cancels the task once more on its way out."""
    async def scenario() -> tuple[bool, bool, bool]:
        lost = [10**9]
        stubborn = asyncio.create_task(_loses_cancellations(lost))
        closer = asyncio.create_task(cancel(stubborn))
        await asyncio.sleep(0.2)
        lost[0] = 1  # it loses one more: the one its closer gives it when cancelled
        closer.cancel()
        await asyncio.wait((closer,), timeout=5)
        closed = closer.done() and closer.cancelled()
        running = not stubborn.done()
        stubborn.cancel()  # nothing more is lost: it stops now
        await asyncio.wait((stubborn,), timeout=5)
        return closed, running, stubborn.cancelled()
    assert asyncio.run(scenario()) == (True, True, True)


def test_a_task_that_never_stops_is_named_once_in_the_log(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "STUBBORN_S", 0.2)

    async def scenario() -> bool:
        lost = [10**9]
        stubborn = asyncio.create_task(_loses_cancellations(lost), name="hub-ledger-seed")
        closer = asyncio.create_task(cancel(stubborn))
        await asyncio.sleep(0.6)
        lost[0] = 0
        await asyncio.wait((closer,), timeout=5)
        return closer.done() and stubborn.cancelled()
    caplog.set_level(logging.WARNING, "kiosk.tasks")
    assert asyncio.run(scenario())
    named = [r.getMessage() for r in caplog.records if r.name == "kiosk.tasks"]
    assert len(named) == 1 and "'hub-ledger-seed' has not stopped" in named[0], named


def test_a_thread_call_cancelled_holds_its_lock_until_the_thread_has_ended() -> None:
    """A write on a worker thread under a lock, its task cancelled meanwhile (a relay
    shutting down): whoever takes the lock next (close()) finds the write done."""
    wrote = threading.Event()

    def write() -> None:
        time.sleep(0.3)
        wrote.set()

    async def scenario() -> tuple[bool, bool]:
        lock = asyncio.Lock()

        async def holder() -> None:
            async with lock:
                await in_thread(write)
        task = asyncio.create_task(holder())
        await asyncio.sleep(0.05)  # the write is under way
        await cancel(task)
        async with lock:
            return wrote.is_set(), task.cancelled()
    assert asyncio.run(scenario()) == (True, True)


def test_a_thread_call_gives_its_result_and_its_error() -> None:
    def fails() -> None:
        raise ValueError("the thread's own error")

    async def scenario() -> int:
        with pytest.raises(ValueError, match="own error"):
            await in_thread(fails)
        return await in_thread(sum, [1, 2, 3])
    assert asyncio.run(scenario()) == 6
