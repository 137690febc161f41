"""Background tasks of the service layer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

CANCEL_AGAIN_S = 0.05
"""How long :func:`cancel` waits before it cancels a task that is still running again."""
STUBBORN_S = 2.0
"""A task still running this long after it was first cancelled is named in the log."""


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has stopped; its own error, if it ended
    with one, is raised here. If the caller is cancelled meanwhile, the task is cancelled
    once more and the caller's cancellation goes on.

    A cancellation can be lost below our code: on Python 3.11 ``asyncio.wait_for`` returns
    the result of an operation that finished in the same turn as the cancellation and
    drops the cancellation (redis-py sends every command through it, so a loop that
    talks to Redis went on as if never asked to stop, and the relay's shutdown waited for
    good). So the task is cancelled again until it has stopped."""
    if task is None:
        return
    began = time.monotonic()
    named = False
    try:
        while not task.done():
            task.cancel()
            await asyncio.wait((task,), timeout=CANCEL_AGAIN_S)
            if not named and not task.done() and time.monotonic() - began > STUBBORN_S:
                named = True
                log.warning("task %r has not stopped %.0f s after it was cancelled "
                            "(cancelling it again)", task.get_name(), STUBBORN_S)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not task.cancelled() and (error := task.exception()) is not None:
        raise error


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a worker thread (as :func:`asyncio.to_thread`); a cancellation
    meanwhile waits for the thread to end before it goes on. A thread cannot be stopped:
    with ``to_thread`` the caller's ``async with lock`` let go while the thread still
    wrote, and a ``close()`` could close the connection under it."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait((future,))
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not future.cancelled():
            future.exception()  # its outcome is not used: retrieved, so never logged
        raise asyncio.CancelledError
    return future.result()
