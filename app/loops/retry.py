"""Waiting after a failure, and cancelling a helper task, without ever swallowing the caller's
own cancellation.

Why this exists: a leader that loses its database lock cancels its loops, most likely while
they sleep in their retry pause (the failure that cost the lock failed their pass too). A
loop that wraps that sleep in `suppress(CancelledError)` keeps running on a replica that no
longer leads: two cullers once the database is back, and a shutdown that waits. Every loop
waits through `retry_pause`, and every helper task is stopped through `cancel_and_wait`.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def retry_pause(seconds: float) -> None:
    """Sleep `seconds` after a failed pass. Cancellation propagates, always: a loop that was
    cancelled while pausing ends there."""
    await asyncio.sleep(seconds)


async def cancel_and_wait(task: asyncio.Task[Any] | asyncio.Future[Any]) -> None:
    """Cancel a task this coroutine started and wait for it to end.

    The task's own CancelledError (and any error it ends with) stays here; but if the *caller*
    is cancelled while it waits (`Task.cancelling()`, Python 3.11), that cancellation is passed
    on, so a loop that cleans up its helpers still ends when it is cancelled itself.
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:  # noqa: S110 - the task's failure was its own to log; it is over now
        pass
