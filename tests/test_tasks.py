"""kiosk.tasks.cancel: a background task is stopped even when something below it loses a
cancellation (Python 3.11's ``asyncio.wait_for``, which redis-py sends every command
through, returns the result of an operation that finished in the same turn and drops the
cancellation: the relay's shutdown then waited for good)."""

from __future__ import annotations

import asyncio

import pytest

from kiosk.tasks import cancel


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
    """A close() that is itself cancelled stops waiting (it does not hang on the task)."""
    async def scenario() -> None:
        lost = [10**9]
        stubborn = asyncio.create_task(_loses_cancellations(lost))
        closer = asyncio.create_task(cancel(stubborn))
        await asyncio.sleep(0.2)
        closer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(closer, timeout=5)
        assert not stubborn.done()
        lost[0] = 0
        stubborn.cancel()
        await asyncio.wait((stubborn,), timeout=5)
        assert stubborn.cancelled()
    asyncio.run(scenario())
