"""Background tasks of the service layer."""

from __future__ import annotations

import asyncio
from typing import Any

CANCEL_AGAIN_S = 0.05
"""How long :func:`cancel` waits before it cancels a task that is still running again."""


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has stopped; its own error, if it ended
    with one, is raised here.

    A cancellation can be lost below our code: on Python 3.11 ``asyncio.wait_for`` returns
    the result of an operation that finished in the same turn as the cancellation and
    drops the cancellation (redis-py sends every command through it, so a loop that
    talks to Redis went on as if never asked to stop, and the relay's shutdown waited for
    good). So the task is cancelled again until it has stopped."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=CANCEL_AGAIN_S)
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error
